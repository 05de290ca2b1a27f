//! The decision store: a sharded hash map of small fixed-size entries
//! keyed by `DecisionKey` (a 128-bit keyed hash), with per-entry expiry,
//! random eviction when full, and single flight for misses.
//!
//! An entry is the key, a few scalars and an `Arc<Identity>` pointer, and a
//! hit is one read lock and one probe. Why this and not moka (which still
//! holds identities, one per token), with the paired memory and hit-latency
//! figures: docs/decisions/decision-cache.md.

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

#[cfg(test)]
mod tests {
    use super::*;
    use loggate_authz::DenyReason;

    const TTL: Duration = Duration::from_secs(60);
    const NEGATIVE_TTL: Duration = Duration::from_secs(5);
    const DENY: Decision = Decision::Deny(DenyReason::MissingPermission);

    fn store(capacity: u64) -> Decisions {
        Decisions::new(capacity, TTL, NEGATIVE_TTL)
    }

    /// Keys spread over the shards like keyed hashes are.
    fn key(i: u64) -> DecisionKey {
        DecisionKey((u128::from(i) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))
    }

    fn identity(token: &str) -> Arc<Identity> {
        Arc::new(Identity {
            token_id: token.into(),
            token_name: token.into(),
            org_id: "o1".into(),
            user_id: format!("u-{token}"),
            ..Identity::default()
        })
    }

    /// An entry computed `age` ago.
    fn entry(decision: Decision, token: &str, age: Duration) -> Entry {
        Entry {
            decision,
            computed: Instant::now().checked_sub(age).expect("the clock is past `age`"),
            object_type: ObjectType::ProjectLog,
            object_id_hash: 7,
            identity: identity(token),
        }
    }

    fn insert(d: &Decisions, k: DecisionKey, e: Entry) {
        match d.lookup(&k) {
            Found::Lead(leader) => d.finish(leader, e),
            Found::Hit { .. } => panic!("already cached"),
            Found::Wait(_) => panic!("already being computed"),
        }
    }

    /// The cached decision, or `None` (then the lead taken is given back).
    fn get(d: &Decisions, k: DecisionKey) -> Option<Decision> {
        match d.lookup(&k) {
            Found::Hit { decision, .. } => Some(decision),
            Found::Lead(leader) => {
                d.abandon(leader);
                None
            }
            Found::Wait(_) => panic!("nobody else computes in these tests"),
        }
    }

    #[test]
    fn a_stored_decision_is_found_with_its_computation_time() {
        let d = store(100);
        assert_eq!(get(&d, key(1)), None);
        let e = entry(DENY, "t1", Duration::ZERO);
        let computed = e.computed;
        insert(&d, key(1), e);
        insert(&d, key(2), entry(Decision::Allow, "t1", Duration::ZERO));
        match d.lookup(&key(1)) {
            Found::Hit { decision, computed: at } => assert_eq!((decision, at), (DENY, computed)),
            _ => panic!("expected a hit"),
        }
        assert_eq!(get(&d, key(2)), Some(Decision::Allow));
        assert_eq!(get(&d, key(3)), None);
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn allows_live_ttl_and_denials_negative_ttl() {
        let d = store(100);
        let between = NEGATIVE_TTL + Duration::from_secs(1);
        insert(&d, key(1), entry(Decision::Allow, "t1", between));
        insert(&d, key(2), entry(DENY, "t1", between));
        insert(&d, key(3), entry(Decision::Allow, "t1", TTL + Duration::from_secs(1)));
        insert(&d, key(4), entry(DENY, "t1", NEGATIVE_TTL - Duration::from_secs(1)));
        assert_eq!(get(&d, key(1)), Some(Decision::Allow), "an allow younger than ttl");
        assert_eq!(get(&d, key(2)), None, "a denial older than negative_ttl");
        assert_eq!(get(&d, key(3)), None, "an allow older than ttl");
        assert_eq!(get(&d, key(4)), Some(DENY), "a denial younger than negative_ttl");
    }

    #[test]
    fn an_expired_entry_is_recomputed_and_replaced() {
        let d = store(100);
        insert(&d, key(1), entry(Decision::Allow, "t1", TTL * 2));
        insert(&d, key(1), entry(DENY, "t1", Duration::ZERO));
        assert_eq!(get(&d, key(1)), Some(DENY));
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn invalidation_by_token_drops_exactly_that_tokens_decisions() {
        let d = store(100);
        for i in 0..10 {
            insert(&d, key(i), entry(Decision::Allow, if i % 2 == 0 { "t1" } else { "t2" }, Duration::ZERO));
        }
        d.invalidate_if(|e| *e.identity.token_id == *"t1");
        for i in 0..10 {
            assert_eq!(get(&d, key(i)).is_some(), i % 2 == 1, "key {i}");
        }
        assert_eq!(d.len(), 5);
    }

    #[test]
    fn clear_drops_everything() {
        let d = store(1000);
        for i in 0..500 {
            insert(&d, key(i), entry(Decision::Allow, "t1", Duration::ZERO));
        }
        d.clear();
        assert_eq!(d.len(), 0);
        assert!((0..500).all(|i| get(&d, key(i)).is_none()));
    }

    #[test]
    fn a_decision_computed_across_an_invalidation_is_not_stored() {
        let d = store(100);
        for invalidate in [(|d: &Decisions| d.clear()) as fn(&Decisions), |d| d.invalidate_if(|_| false)] {
            let Found::Lead(leader) = d.lookup(&key(1)) else { panic!("expected to lead") };
            let before = d.generation();
            invalidate(&d);
            assert_ne!(d.generation(), before);
            d.finish(leader, entry(Decision::Allow, "t1", Duration::ZERO));
            assert_eq!(get(&d, key(1)), None);
        }
    }

    #[test]
    fn one_computation_per_key_and_a_dropped_lead_passes_on() {
        let d = store(100);
        let Found::Lead(leader) = d.lookup(&key(1)) else { panic!("expected to lead") };
        let Found::Wait(notify) = d.lookup(&key(1)) else { panic!("expected to wait") };
        assert!(d.is_inflight(&key(1), &notify));
        let Found::Lead(other) = d.lookup(&key(2)) else { panic!("other keys are not held up") };
        d.abandon(other);
        let mut lead = Some(leader);
        drop(d.guard(&mut lead)); // the computing request was cancelled
        assert!(!d.is_inflight(&key(1), &notify));
        let Found::Lead(next) = d.lookup(&key(1)) else { panic!("the next caller leads") };
        d.finish(next, entry(Decision::Allow, "t1", Duration::ZERO));
        assert_eq!(get(&d, key(1)), Some(Decision::Allow));
    }

    #[test]
    fn the_store_never_holds_more_than_its_capacity() {
        for capacity in [16, 100, 1000] {
            let d = store(capacity);
            for i in 0..20 * capacity {
                insert(&d, key(i), entry(Decision::Allow, "t1", Duration::ZERO));
                assert_eq!(get(&d, key(i)), Some(Decision::Allow), "the newest entry is kept");
            }
            let bound = (capacity as usize).div_ceil(SHARDS) * SHARDS;
            assert!(d.len() <= bound, "{} entries for capacity {capacity}", d.len());
            assert!(d.len() >= bound / 2, "eviction takes a sixteenth at a time, not the lot: {}", d.len());
        }
    }

    #[test]
    fn a_full_shard_evicts_expired_entries_before_live_ones() {
        // Keys below 2^120 all fall in shard 0; capacity 32 is two per shard.
        let d = store(32);
        insert(&d, DecisionKey(1), entry(DENY, "t1", NEGATIVE_TTL * 2));
        insert(&d, DecisionKey(2), entry(Decision::Allow, "t1", Duration::ZERO));
        insert(&d, DecisionKey(3), entry(Decision::Allow, "t1", Duration::ZERO));
        assert_eq!(get(&d, DecisionKey(2)), Some(Decision::Allow), "the live entry stays");
        assert_eq!(get(&d, DecisionKey(3)), Some(Decision::Allow));
        assert_eq!(d.len(), 2);
    }
}
