//! The decision store: a sharded hash map of small fixed-size entries
//! keyed by `DecisionKey` (a 128-bit keyed hash), with per-entry expiry,
//! random eviction when full, and single flight for misses.
//!
//! Why not moka here: a moka entry costs about 500 bytes (entry info, deque
//! and timer nodes, key `Arc`), which put 100k decisions at ~54 MiB, and a
//! hit records an access into its maintenance queues. An entry here is
//! the key, a few scalars and an `Arc<Identity>` pointer (~80 bytes with
//! the table's overhead) and a hit is one read lock and one probe.
//! Identities stay in moka (one per token, far fewer).

use super::{DecisionKey, KeyIsHash};
use loggate_authz::Decision;
use loggate_model::Identity;
use loggate_model::types::ObjectType;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

const SHARDS: usize = 16;

type Map<V> = HashMap<DecisionKey, V, BuildHasherDefault<KeyIsHash>>;

/// One cached decision.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub decision: Decision,
    pub computed: Instant,
    pub object_type: ObjectType,
    pub object_id_hash: u64,
    /// For targeted invalidation by token and organization.
    pub identity: Arc<Identity>,
}

pub(super) struct Decisions {
    shards: Box<[RwLock<Map<Entry>>]>,
    per_shard: usize,
    ttl: Duration,
    negative_ttl: Duration,
    /// Keys being computed, and how to wait for them.
    inflight: Mutex<Map<Arc<Notify>>>,
    /// Bumped by every invalidation: a computation that started before one
    /// answers its caller but is not stored.
    generation: AtomicU64,
}

/// What a lookup found.
pub(super) enum Found {
    Hit {
        decision: Decision,
        computed: Instant,
    },
    /// Not cached: the caller computes and then calls `finish`.
    Lead(Leader),
    /// Someone else computes it: wait, then look again.
    Wait(Arc<Notify>),
}

impl Decisions {
    pub fn new(capacity: u64, ttl: Duration, negative_ttl: Duration) -> Self {
        let per_shard = (capacity as usize).div_ceil(SHARDS).max(1);
        Decisions {
            shards: (0..SHARDS).map(|_| RwLock::new(Map::default())).collect(),
            per_shard,
            ttl,
            negative_ttl,
            inflight: Mutex::new(Map::default()),
            generation: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: &DecisionKey) -> &RwLock<Map<Entry>> {
        &self.shards[(key.0 >> 120) as usize % SHARDS]
    }

    fn live(&self, e: &Entry, now: Instant) -> bool {
        let ttl = if e.decision.is_allow() { self.ttl } else { self.negative_ttl };
        now.saturating_duration_since(e.computed) < ttl
    }

    /// A live entry, or the right to compute it, or whom to wait for.
    pub fn lookup(&self, key: &DecisionKey) -> Found {
        {
            let shard = self.shard(key).read();
            if let Some(e) = shard.get(key)
                && self.live(e, Instant::now())
            {
                return Found::Hit { decision: e.decision, computed: e.computed };
            }
        }
        let mut inflight = self.inflight.lock();
        if let Some(n) = inflight.get(key) {
            return Found::Wait(n.clone());
        }
        inflight.insert(*key, Arc::new(Notify::new()));
        Found::Lead(Leader { key: *key, generation: self.generation.load(Ordering::SeqCst), done: false })
    }

    /// Stores what a leader computed (unless an invalidation happened
    /// meanwhile) and wakes its waiters.
    pub fn finish(&self, mut leader: Leader, entry: Entry) {
        self.insert_if_current(leader.key, leader.generation, entry);
        self.release(&leader.key);
        leader.done = true;
    }

    /// Gives up a lead (the computation failed or was dropped).
    pub fn abandon(&self, mut leader: Leader) {
        self.release(&leader.key);
        leader.done = true;
    }

    /// Whether `notify` still stands for a computation of `key` (else the
    /// leader finished before the waiter registered).
    pub fn is_inflight(&self, key: &DecisionKey, notify: &Arc<Notify>) -> bool {
        self.inflight.lock().get(key).is_some_and(|n| Arc::ptr_eq(n, notify))
    }

    fn release(&self, key: &DecisionKey) {
        if let Some(n) = self.inflight.lock().remove(key) {
            n.notify_waiters();
        }
    }

    /// Inserts unless an invalidation began after `generation` was read.
    /// The check is made under the shard lock: an invalidation bumps the
    /// generation before it takes the shard locks, so it either is seen
    /// here or removes the entry after this insert.
    fn insert_if_current(&self, key: DecisionKey, generation: u64, entry: Entry) {
        let mut shard = self.shard(&key).write();
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            let now = Instant::now();
            shard.retain(|_, e| self.live(e, now));
            if shard.len() >= self.per_shard {
                // Random eviction: the table's order is the keys' (keyed)
                // hash order. A sixteenth at a time keeps this amortized.
                let victims: Vec<DecisionKey> = shard.keys().take(self.per_shard.div_ceil(16)).copied().collect();
                for k in victims {
                    shard.remove(&k);
                }
            }
        }
        shard.insert(key, entry);
    }

    pub fn remove(&self, key: &DecisionKey) {
        self.shard(key).write().remove(key);
    }

    /// Drops every entry `drop` selects.
    pub fn invalidate_if(&self, drop: impl Fn(&Entry) -> bool) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        for shard in self.shards.iter() {
            shard.write().retain(|_, e| !drop(e));
        }
    }

    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        for shard in self.shards.iter() {
            let mut s = shard.write();
            s.clear();
            s.shrink_to_fit();
        }
    }

    /// Bumped by every invalidation (see the field).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }

    /// Makes sure a dropped leader (its request was cancelled) releases
    /// its waiters.
    pub fn guard<'a>(&'a self, leader: &'a mut Option<Leader>) -> LeadGuard<'a> {
        LeadGuard { decisions: self, leader }
    }
}

/// The right (and duty) to compute one key.
pub(super) struct Leader {
    key: DecisionKey,
    generation: u64,
    done: bool,
}

impl Drop for Leader {
    fn drop(&mut self) {
        debug_assert!(self.done || std::thread::panicking(), "a Leader must be finished or abandoned");
    }
}

/// Abandons the lead if the computing future is dropped midway.
pub(super) struct LeadGuard<'a> {
    decisions: &'a Decisions,
    leader: &'a mut Option<Leader>,
}

impl LeadGuard<'_> {
    pub fn take(&mut self) -> Leader {
        self.leader.take().expect("lead taken once")
    }
}

impl Drop for LeadGuard<'_> {
    fn drop(&mut self) {
        if let Some(leader) = self.leader.take() {
            self.decisions.abandon(leader);
        }
    }
}
