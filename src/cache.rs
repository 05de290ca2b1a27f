//! The decision cache (docs/operations.md, caching and invalidation): (token digest, object, permission) ->
//! decision (`decisions`: a compact sharded map, see there why not moka),
//! token digest -> identity, and (organization, project name) -> project id
//! (OTLP exports name their project), in moka.
//! Misses for one key are computed once (single flight); denials, unknown
//! tokens and unknown names live `negative_ttl`, the rest `ttl`.
//!
//! Freshness: every entry records when it was computed, and the cache
//! records when it was last known to be in step with the store (synced).
//! While pushed invalidations are trusted (the feed is up and caught up, or
//! a local source flushes on every change) an entry is current however old
//! it is. Otherwise an entry is current as of the later of its computation
//! and the last sync, and is recomputed rather than served once that is
//! more than `max_staleness` ago: the change-log poller (`invalidation`)
//! syncs every few seconds, so entries outlive a feed outage without being
//! recomputed, and expire `max_staleness` after the store stops answering.
//! Targeted invalidation by object, token, user or organization is
//! supported so the feed can drop exactly what a change touched.
//!
//! Races: a computation that started before an invalidation and finished
//! after it may have read the old policy. Such a decision answers its own
//! caller but is not stored (`decisions` checks its generation under the
//! shard lock); an identity carries the identity generation it started in
//! and is never served once a later one is current.
//!
//! Requests ask through their worker's [`WorkerCache`] (`worker`): copies
//! of what this cache answered, served only while this cache would still
//! serve the original, so a hit writes no memory shared between workers.

mod decisions;
mod worker;

pub use worker::WorkerCache;

use decisions::{Decisions, Entry, Found};
use loggate_authz::Decision;
use loggate_model::types::{ObjectRef, ObjectType, Permission};
use loggate_model::{Identity, TokenDigest};
use moka::Expiry;
use moka::future::Cache;
use siphasher::sip128::{Hasher128, SipHasher13};
use std::future::Future;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

/// A decision's key: (token digest, object, permission) folded into 128
/// bits by SipHash-1-3-128 under a per-process random key (one pass over
/// the input; two 64-bit SipHashes cost twice that). Fixed size and `Copy`:
/// a lookup allocates nothing and an entry holds no strings. Nobody outside
/// this process knows the key, so a collision cannot be aimed at; by chance
/// it has probability about n²/2¹²⁹ (under 10⁻²⁸ for 100k entries).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecisionKey(u128);

/// The process's secret hash keys: for decision keys, and for object ids.
static KEYS: LazyLock<(SipHasher13, RandomState)> = LazyLock::new(|| {
    let seed = RandomState::new();
    (SipHasher13::new_with_keys(seed.hash_one(0u8), seed.hash_one(1u8)), RandomState::new())
});

impl DecisionKey {
    pub fn new(digest: TokenDigest, object: &ObjectRef, permission: Permission) -> Self {
        let mut h = KEYS.0;
        h.write(&digest.0);
        h.write_u8(object.object_type as u8);
        h.write_u8(permission as u8);
        // Last, so its length needs no prefix: everything before is fixed size.
        h.write(object.id.as_bytes());
        DecisionKey(h.finish128().as_u128())
    }
}

impl DecisionKey {
    /// The key of a decision about an object of `object_type` that does not
    /// exist yet in organization `org_id` (`PolicyStore::decide_new`). The
    /// byte after the digest is 0xFF, which no object type's byte is, so no
    /// key of an existing object can equal it, whatever the ids.
    pub fn for_new(digest: TokenDigest, org_id: &str, object_type: ObjectType, permission: Permission) -> Self {
        let mut h = KEYS.0;
        h.write(&digest.0);
        h.write_u8(u8::MAX);
        h.write_u8(object_type as u8);
        h.write_u8(permission as u8);
        h.write(org_id.as_bytes());
        DecisionKey(h.finish128().as_u128())
    }
}

/// A project name's key: (organization, name) folded as [`DecisionKey`]
/// is (the organization id length-prefixed, so the split is unambiguous).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct NameKey(u128);

impl NameKey {
    fn new(org_id: &str, name: &str) -> Self {
        let mut h = KEYS.0;
        h.write_u64(org_id.len() as u64);
        h.write(org_id.as_bytes());
        h.write(name.as_bytes());
        NameKey(h.finish128().as_u128())
    }
}

/// A keyed hash of an object id, kept in each entry so that invalidation
/// by object finds its decisions (a collision only drops an extra entry).
fn id_hash(id: &str) -> u64 {
    KEYS.1.hash_one(id)
}

/// The key already is a keyed hash: the map's hashing can just take it.
#[derive(Default, Clone)]
struct KeyIsHash(u64);

impl Hasher for KeyIsHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64 ^ (n >> 64) as u64;
    }
}

#[derive(Debug, Clone)]
struct CachedIdentity {
    identity: Option<Arc<Identity>>,
    computed: Instant,
    /// The identity generation its computation started in; it is served
    /// only while that generation is current.
    generation: u64,
}

/// A project id by name, or `None`: no such project (yet).
#[derive(Debug, Clone)]
struct CachedName {
    id: Option<Arc<str>>,
    computed: Instant,
    generation: u64,
}

/// An entry retired by a generation counter: served only while the
/// generation its computation started in is current.
trait Generational: Clone + Send + Sync + 'static {
    fn computed(&self) -> Instant;
    fn generation(&self) -> u64;
}

impl Generational for CachedIdentity {
    fn computed(&self) -> Instant {
        self.computed
    }
    fn generation(&self) -> u64 {
        self.generation
    }
}

impl Generational for CachedName {
    fn computed(&self) -> Instant {
        self.computed
    }
    fn generation(&self) -> u64 {
        self.generation
    }
}

/// Whether a cached answer was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Hit,
    Miss,
}

struct TtlByOutcome {
    ttl: Duration,
    negative_ttl: Duration,
}

impl Expiry<TokenDigest, CachedIdentity> for TtlByOutcome {
    fn expire_after_create(&self, _: &TokenDigest, value: &CachedIdentity, _: Instant) -> Option<Duration> {
        Some(if value.identity.is_some() { self.ttl } else { self.negative_ttl })
    }
}

impl Expiry<NameKey, CachedName> for TtlByOutcome {
    fn expire_after_create(&self, _: &NameKey, value: &CachedName, _: Instant) -> Option<Duration> {
        Some(if value.id.is_some() { self.ttl } else { self.negative_ttl })
    }
}

pub struct DecisionCache {
    decisions: Decisions,
    identities: Cache<TokenDigest, CachedIdentity>,
    project_names: Cache<NameKey, CachedName>,
    ttl: Duration,
    negative_ttl: Duration,
    max_staleness: Duration,
    /// True while pushed invalidations can be trusted (feed up and caught
    /// up, or a local source whose every change flushes the cache).
    fresh_by_push: AtomicBool,
    /// When the cache was last known to hold nothing older than the store
    /// (nanoseconds after `epoch`; see [`DecisionCache::mark_synced`]).
    synced_at: AtomicU64,
    epoch: Instant,
    /// Bumped by every change that can alter who a token is (token, user,
    /// organization, flush). Identities are few and cheap to reload, so such
    /// a change retires all of them: exact, and free of moka's timing rules
    /// (its targeted invalidations miss entries stored after they were
    /// registered, even when computed before).
    identity_generation: AtomicU64,
    /// Bumped by every change that can alter which project a name means
    /// (a project or organization created, renamed or deleted, a flush); as
    /// for identities, such a change retires every cached name.
    name_generation: AtomicU64,
}

impl DecisionCache {
    pub fn new(max_decisions: u64, ttl: Duration, negative_ttl: Duration, max_staleness: Duration) -> Self {
        let decisions = Decisions::new(max_decisions, ttl, negative_ttl);
        let identities = Cache::builder()
            .max_capacity(max_decisions.max(1024))
            .expire_after(TtlByOutcome { ttl, negative_ttl })
            .build();
        let project_names = Cache::builder()
            .max_capacity(max_decisions.clamp(1024, 100_000))
            .expire_after(TtlByOutcome { ttl, negative_ttl })
            .build();
        DecisionCache {
            decisions,
            identities,
            project_names,
            ttl,
            negative_ttl,
            max_staleness,
            fresh_by_push: AtomicBool::new(true),
            synced_at: AtomicU64::new(0),
            epoch: Instant::now(),
            identity_generation: AtomicU64::new(0),
            name_generation: AtomicU64::new(0),
        }
    }

    /// Declares whether pushed invalidations are currently trusted. When
    /// they stop being trusted, the cache was in step until now; from then
    /// on entries are bounded by `max_staleness` after the last sync.
    pub fn set_push_healthy(&self, healthy: bool) {
        // The sync first: a reader that sees "not healthy" never sees the
        // older sync time with it.
        if !healthy && self.fresh_by_push.load(Ordering::SeqCst) {
            self.mark_synced(Instant::now());
        }
        self.fresh_by_push.store(healthy, Ordering::SeqCst);
    }

    /// Whether pushed invalidations are currently trusted.
    pub fn push_healthy(&self) -> bool {
        self.fresh_by_push.load(Ordering::SeqCst)
    }

    /// Records that every change the store had committed at `at` has been
    /// applied to this cache (a catch-up from the change log that began
    /// then). Never goes backwards.
    pub fn mark_synced(&self, at: Instant) {
        let nanos = u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        self.synced_at.fetch_max(nanos, Ordering::SeqCst);
    }

    /// The last sync (see `synced_at`).
    fn synced(&self) -> Instant {
        self.epoch + Duration::from_nanos(self.synced_at.load(Ordering::Relaxed))
    }

    fn usable(&self, computed: Instant) -> bool {
        self.fresh_by_push.load(Ordering::Relaxed) || computed.max(self.synced()).elapsed() <= self.max_staleness
    }

    /// [`DecisionCache::usable`], and within its TTL (`positive`: an allow
    /// or a known token), for copies held outside this cache.
    fn fresh(&self, positive: bool, computed: Instant) -> bool {
        computed.elapsed() < if positive { self.ttl } else { self.negative_ttl } && self.usable(computed)
    }

    /// The current identity generation (see `identity_generation`).
    fn identity_generation(&self) -> u64 {
        self.identity_generation.load(Ordering::SeqCst)
    }

    /// Retires every cached identity (see `identity_generation`).
    fn retire_identities(&self) {
        self.identity_generation.fetch_add(1, Ordering::SeqCst);
        self.identities.invalidate_all();
    }

    /// Retires every cached project name (see `name_generation`).
    fn retire_names(&self) {
        self.name_generation.fetch_add(1, Ordering::SeqCst);
        self.project_names.invalidate_all();
    }

    /// The entry for `key` in a generation-retired `cache`: a hit while its
    /// generation is current and it is usable, else `make(generation)` once
    /// (single flight), boxed as in [`DecisionCache::identity`].
    async fn generational<K, V, F, E>(
        &self,
        cache: &Cache<K, V>,
        generation: &AtomicU64,
        key: K,
        make: impl FnOnce(u64) -> F,
    ) -> Result<(V, Lookup), Arc<E>>
    where
        K: std::hash::Hash + Eq + Send + Sync + 'static,
        V: Generational,
        F: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        let current = generation.load(Ordering::SeqCst);
        if let Some(hit) = cache.get(&key).await {
            if hit.generation() == current && self.usable(hit.computed()) {
                return Ok((hit, Lookup::Hit));
            }
            cache.invalidate(&key).await;
        }
        let entry = Box::pin(cache.try_get_with(key, make(current))).await?;
        Ok((entry, Lookup::Miss))
    }

    /// The id of the live project named `name` in `org_id`, or `None`,
    /// asking `compute` once on a miss.
    pub async fn project_by_name<C, F, E>(
        &self,
        org_id: &str,
        name: &str,
        compute: C,
    ) -> Result<(Option<Arc<str>>, Lookup), Arc<E>>
    where
        C: FnOnce() -> F,
        F: Future<Output = Result<Option<String>, E>>,
        E: Send + Sync + 'static,
    {
        let key = NameKey::new(org_id, name);
        let (entry, lookup) = self
            .generational(&self.project_names, &self.name_generation, key, |generation| async move {
                let id = compute().await?.map(Arc::from);
                Ok(CachedName { id, computed: Instant::now(), generation })
            })
            .await?;
        Ok((entry.id, lookup))
    }

    /// The identity for `digest`, computing it once on a miss.
    ///
    /// `compute` makes the lookup only on a miss, and the miss path is
    /// boxed: store and moka futures are several KiB, and a hit should not
    /// carry (and move) them in every request's future.
    pub async fn identity<C, F, E>(
        &self,
        digest: &TokenDigest,
        compute: C,
    ) -> Result<(Option<Arc<Identity>>, Lookup), Arc<E>>
    where
        C: FnOnce() -> F,
        F: Future<Output = Result<Option<Identity>, E>>,
        E: Send + Sync + 'static,
    {
        let (entry, lookup) = self.identity_entry(digest, compute).await?;
        Ok((entry.identity, lookup))
    }

    /// [`DecisionCache::identity`] with the entry's computation time and generation.
    async fn identity_entry<C, F, E>(
        &self,
        digest: &TokenDigest,
        compute: C,
    ) -> Result<(CachedIdentity, Lookup), Arc<E>>
    where
        C: FnOnce() -> F,
        F: Future<Output = Result<Option<Identity>, E>>,
        E: Send + Sync + 'static,
    {
        self.generational(&self.identities, &self.identity_generation, *digest, |generation| async move {
            let identity = compute().await?.map(Arc::new);
            Ok(CachedIdentity { identity, computed: Instant::now(), generation })
        })
        .await
    }

    /// The decision for `key` (made with `DecisionKey::new(.., object, ..)`),
    /// computing it once on a miss (`compute` runs only then, boxed, as in
    /// [`DecisionCache::identity`]).
    pub async fn decision<C, F, E>(
        &self,
        key: DecisionKey,
        identity: &Arc<Identity>,
        object: &ObjectRef,
        compute: C,
    ) -> Result<(Decision, Lookup), Arc<E>>
    where
        C: FnOnce() -> F,
        F: Future<Output = Result<Decision, E>>,
        E: Send + Sync + 'static,
    {
        let (decision, _, lookup) = self.decision_entry(key, identity, object, compute).await?;
        Ok((decision, lookup))
    }

    /// [`DecisionCache::decision`] with the time the decision was computed.
    async fn decision_entry<C, F, E>(
        &self,
        key: DecisionKey,
        identity: &Arc<Identity>,
        object: &ObjectRef,
        compute: C,
    ) -> Result<(Decision, Instant, Lookup), Arc<E>>
    where
        C: FnOnce() -> F,
        F: Future<Output = Result<Decision, E>>,
        E: Send + Sync + 'static,
    {
        let mut compute = Some(compute);
        loop {
            match self.decisions.lookup(&key) {
                Found::Hit { decision, computed } => {
                    if self.usable(computed) {
                        return Ok((decision, computed, Lookup::Hit));
                    }
                    self.decisions.remove(&key);
                }
                Found::Wait(notify) => {
                    let notified = notify.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    if self.decisions.is_inflight(&key, &notify) {
                        notified.await;
                    }
                }
                Found::Lead(leader) => {
                    let mut lead = Some(leader);
                    let mut guard = self.decisions.guard(&mut lead);
                    let compute = compute.take().expect("a call leads at most once");
                    // An error or a cancelled request drops `guard`, which
                    // lets the next waiter lead.
                    let decision = Box::pin(compute()).await.map_err(Arc::new)?;
                    let computed = Instant::now();
                    let entry = Entry {
                        decision,
                        computed,
                        object_type: object.object_type,
                        object_id_hash: id_hash(&object.id),
                        identity: identity.clone(),
                    };
                    self.decisions.finish(guard.take(), entry);
                    return Ok((decision, computed, Lookup::Miss));
                }
            }
        }
    }

    /// Drops everything (a policy reload, a feed gap, a reconnect).
    pub fn invalidate_all(&self) {
        self.decisions.clear();
        self.retire_identities();
        self.retire_names();
    }

    /// Drops every decision but keeps identities: for changes (ACLs, groups,
    /// roles) that can alter any decision but never who a token is.
    pub fn invalidate_decisions(&self) {
        self.decisions.clear();
    }

    /// Drops the decisions about `object` and about everything below it.
    ///
    /// - organization: every decision and identity of that organization
    ///   (decisions are confined to the token's org, so nothing else can
    ///   depend on it), and every project name;
    /// - project / project_log: the decisions about that project and its
    ///   log, plus every decision about objects that live below some
    ///   project (experiments, datasets, prompts): the cache does not know
    ///   their parents, and a project's ACLs or soft-deletion reach them;
    ///   and every project name (a project created, renamed or deleted);
    /// - anything else: the decisions about exactly that object id.
    pub fn invalidate_object(&self, object_type: ObjectType, id: &str) {
        let id_hash = id_hash(id);
        match object_type {
            ObjectType::Organization => {
                self.decisions.invalidate_if(|e| *e.identity.org_id == *id);
                self.retire_identities();
                self.retire_names();
            }
            ObjectType::Project | ObjectType::ProjectLog => {
                self.decisions.invalidate_if(|e| e.object_id_hash == id_hash || below_a_project(e.object_type));
                self.retire_names();
            }
            _ => self.decisions.invalidate_if(|e| e.object_id_hash == id_hash),
        }
    }

    /// Drops one token's identity and decisions (revoked, expired, edited,
    /// narrowed) and those of every token derived from it, and every cached
    /// "unknown token": a created token may be one of them.
    pub fn invalidate_token(&self, token_id: &str) {
        self.decisions.invalidate_if(|e| e.identity.depends_on(token_id));
        self.retire_identities();
    }

    /// Drops the identities and decisions of every token acting as `user_id`
    /// (a user's own ACLs and group memberships only ever decide for it).
    pub fn invalidate_user(&self, user_id: &str) {
        self.decisions.invalidate_if(|e| *e.identity.user_id == *user_id);
        self.retire_identities();
    }

    /// Number of cached decisions (for memory measurements).
    pub fn decision_count(&self) -> u64 {
        self.decisions.len() as u64
    }

    /// Number of cached identities (approximate).
    pub fn identity_count(&self) -> u64 {
        self.identities.entry_count()
    }

    /// Applies pending maintenance (tests and benchmarks).
    pub async fn run_pending_tasks(&self) {
        self.identities.run_pending_tasks().await;
        self.project_names.run_pending_tasks().await;
    }
}

/// Object types whose decisions depend on a parent project.
fn below_a_project(t: ObjectType) -> bool {
    matches!(t, ObjectType::Experiment | ObjectType::Dataset | ObjectType::Prompt | ObjectType::PromptSession)
}

#[cfg(test)]
mod tests {
    use super::*;
    use loggate_authz::DenyReason;
    use std::convert::Infallible;
    use std::sync::atomic::AtomicUsize;

    fn identity() -> Identity {
        Identity {
            token_id: "t1".into(),
            token_name: "ci".into(),
            org_id: "o1".into(),
            user_id: "u1".into(),
            ..Identity::default()
        }
    }

    fn key(id: &str) -> DecisionKey {
        DecisionKey::new(TokenDigest::of("bt-st-x"), &ObjectRef::new(ObjectType::ProjectLog, id), Permission::Update)
    }

    async fn ask(cache: &DecisionCache, id: &str, calls: &AtomicUsize, d: Decision) -> (Decision, Lookup) {
        let object = ObjectRef::new(ObjectType::ProjectLog, id);
        cache
            .decision(key(id), &Arc::new(identity()), &object, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Infallible>(d)
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn second_lookup_hits_and_invalidation_recomputes() {
        let cache = DecisionCache::new(100, Duration::from_secs(60), Duration::from_secs(5), Duration::from_secs(10));
        let calls = AtomicUsize::new(0);
        assert_eq!(ask(&cache, "p", &calls, Decision::Allow).await.1, Lookup::Miss);
        assert_eq!(ask(&cache, "p", &calls, Decision::Allow).await.1, Lookup::Hit);
        cache.invalidate_object(ObjectType::ProjectLog, "p");
        cache.run_pending_tasks().await;
        assert_eq!(ask(&cache, "p", &calls, Decision::Allow).await.1, Lookup::Miss);
        cache.invalidate_token("t1");
        cache.run_pending_tasks().await;
        let deny = Decision::Deny(DenyReason::MissingPermission);
        assert_eq!(ask(&cache, "p", &calls, deny).await, (deny, Lookup::Miss));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn stale_entries_are_recomputed_while_push_is_down() {
        let cache = DecisionCache::new(100, Duration::from_secs(60), Duration::from_secs(5), Duration::from_millis(20));
        let calls = AtomicUsize::new(0);
        ask(&cache, "p", &calls, Decision::Allow).await;
        cache.set_push_healthy(false);
        assert_eq!(ask(&cache, "p", &calls, Decision::Allow).await.1, Lookup::Hit);
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(ask(&cache, "p", &calls, Decision::Allow).await.1, Lookup::Miss);
    }

    #[tokio::test]
    async fn while_push_is_down_each_sync_keeps_entries_current() {
        let cache = DecisionCache::new(100, Duration::from_secs(60), Duration::from_secs(5), Duration::from_millis(60));
        let calls = AtomicUsize::new(0);
        ask(&cache, "p", &calls, Decision::Allow).await;
        cache.set_push_healthy(false);
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(30)).await;
            cache.mark_synced(Instant::now());
            assert_eq!(ask(&cache, "p", &calls, Decision::Allow).await.1, Lookup::Hit, "synced within max_staleness");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "computed once over twice max_staleness");
        // No sync since: expired max_staleness after the last one.
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(ask(&cache, "p", &calls, Decision::Allow).await.1, Lookup::Miss);
        // A sync that began before the entry does not age it.
        cache.mark_synced(Instant::now() - Duration::from_secs(1));
        assert_eq!(ask(&cache, "p", &calls, Decision::Allow).await.1, Lookup::Hit);
    }

    #[tokio::test]
    async fn push_going_down_counts_as_a_sync() {
        let cache = DecisionCache::new(100, Duration::from_secs(60), Duration::from_secs(5), Duration::from_millis(50));
        let calls = AtomicUsize::new(0);
        ask(&cache, "p", &calls, Decision::Allow).await;
        tokio::time::sleep(Duration::from_millis(80)).await;
        cache.set_push_healthy(false);
        assert_eq!(
            ask(&cache, "p", &calls, Decision::Allow).await.1,
            Lookup::Hit,
            "current until push went down, however old"
        );
        cache.set_push_healthy(false);
        tokio::time::sleep(Duration::from_millis(80)).await;
        cache.set_push_healthy(false);
        assert_eq!(ask(&cache, "p", &calls, Decision::Allow).await.1, Lookup::Miss, "already down: no new sync");
    }

    #[tokio::test]
    async fn concurrent_misses_compute_once() {
        let cache =
            Arc::new(DecisionCache::new(100, Duration::from_secs(60), Duration::from_secs(5), Duration::from_secs(10)));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .decision(key("p"), &Arc::new(identity()), &ObjectRef::new(ObjectType::ProjectLog, "p"), || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok::<_, Infallible>(Decision::Allow)
                    })
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn size_stays_within_capacity() {
        let cache = DecisionCache::new(64, Duration::from_secs(60), Duration::from_secs(5), Duration::from_secs(10));
        let calls = AtomicUsize::new(0);
        for i in 0..1000 {
            ask(&cache, &format!("p{i}"), &calls, Decision::Allow).await;
        }
        assert!(cache.decision_count() <= 64, "{}", cache.decision_count());
        assert!(cache.decision_count() >= 32, "{}", cache.decision_count());
        assert_eq!(ask(&cache, "p999", &calls, Decision::Allow).await.1, Lookup::Hit);
    }

    #[tokio::test]
    async fn denials_expire_after_negative_ttl() {
        let cache =
            DecisionCache::new(100, Duration::from_secs(60), Duration::from_millis(20), Duration::from_secs(10));
        let calls = AtomicUsize::new(0);
        let deny = Decision::Deny(DenyReason::MissingPermission);
        ask(&cache, "p", &calls, deny).await;
        assert_eq!(ask(&cache, "p", &calls, deny).await.1, Lookup::Hit);
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(ask(&cache, "p", &calls, deny).await.1, Lookup::Miss);
    }

    #[tokio::test]
    async fn a_decision_computed_across_an_invalidation_is_not_kept() {
        let cache =
            Arc::new(DecisionCache::new(100, Duration::from_secs(60), Duration::from_secs(5), Duration::from_secs(10)));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let c = cache.clone();
        let slow = tokio::spawn(async move {
            c.decision(key("p"), &Arc::new(identity()), &ObjectRef::new(ObjectType::ProjectLog, "p"), || async {
                rx.await.ok();
                Ok::<_, Infallible>(Decision::Allow)
            })
            .await
            .unwrap()
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        cache.invalidate_all();
        tx.send(()).unwrap();
        assert_eq!(slow.await.unwrap(), (Decision::Allow, Lookup::Miss));
        let calls = AtomicUsize::new(0);
        assert_eq!(ask(&cache, "p", &calls, Decision::Allow).await.1, Lookup::Miss);
    }

    #[tokio::test]
    async fn a_cancelled_computation_lets_a_waiter_compute() {
        let cache =
            Arc::new(DecisionCache::new(100, Duration::from_secs(60), Duration::from_secs(5), Duration::from_secs(10)));
        let c = cache.clone();
        let stuck = tokio::spawn(async move {
            c.decision(key("p"), &Arc::new(identity()), &ObjectRef::new(ObjectType::ProjectLog, "p"), || async {
                std::future::pending::<()>().await;
                Ok::<_, Infallible>(Decision::Allow)
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let c = cache.clone();
        let waiter = tokio::spawn(async move {
            let calls = AtomicUsize::new(0);
            ask(&c, "p", &calls, Decision::Allow).await
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        stuck.abort();
        let got = tokio::time::timeout(Duration::from_secs(2), waiter).await.expect("waiter was not released").unwrap();
        assert_eq!(got, (Decision::Allow, Lookup::Miss));
    }

    fn identity_of(token: &str, user: &str, org: &str) -> Identity {
        Identity {
            token_id: token.into(),
            token_name: token.into(),
            org_id: org.into(),
            user_id: user.into(),
            ..Identity::default()
        }
    }

    fn key_for(token: &str, t: ObjectType, id: &str) -> DecisionKey {
        DecisionKey::new(TokenDigest::of(token), &ObjectRef::new(t, id), Permission::Update)
    }

    /// Fills `(token, user, org, object)` decisions, returns a probe that
    /// says which of them are still cached.
    async fn fill(cache: &DecisionCache, entries: &[(&str, &str, &str, ObjectType, &str)]) {
        for (token, user, org, t, id) in entries {
            cache
                .decision(
                    key_for(token, *t, id),
                    &Arc::new(identity_of(token, user, org)),
                    &ObjectRef::new(*t, *id),
                    || async { Ok::<_, Infallible>(Decision::Allow) },
                )
                .await
                .unwrap();
        }
    }

    async fn cached(cache: &DecisionCache, entries: &[(&str, &str, &str, ObjectType, &str)]) -> Vec<bool> {
        let mut out = Vec::new();
        for (token, user, org, t, id) in entries {
            let (_, lookup) = cache
                .decision(
                    key_for(token, *t, id),
                    &Arc::new(identity_of(token, user, org)),
                    &ObjectRef::new(*t, *id),
                    || async { Ok::<_, Infallible>(Decision::Allow) },
                )
                .await
                .unwrap();
            out.push(lookup == Lookup::Hit);
        }
        out
    }

    fn cache() -> DecisionCache {
        DecisionCache::new(1000, Duration::from_secs(60), Duration::from_secs(5), Duration::from_secs(10))
    }

    const ENTRIES: &[(&str, &str, &str, ObjectType, &str)] = &[
        ("t1", "u1", "o1", ObjectType::ProjectLog, "p1"),
        ("t1", "u1", "o1", ObjectType::Experiment, "e1"),
        ("t2", "u2", "o1", ObjectType::ProjectLog, "p2"),
        ("t2", "u2", "o1", ObjectType::Organization, "o1"),
        ("t3", "u3", "o2", ObjectType::Dataset, "d3"),
    ];

    #[tokio::test]
    async fn each_targeted_invalidation_drops_exactly_its_entries() {
        type Case = (&'static str, fn(&DecisionCache), [bool; 5]);
        let cases: [Case; 8] = [
            ("token t1", |c| c.invalidate_token("t1"), [false, false, true, true, true]),
            ("user u2", |c| c.invalidate_user("u2"), [true, true, false, false, true]),
            ("org o1", |c| c.invalidate_object(ObjectType::Organization, "o1"), [false, false, false, false, true]),
            ("project p1", |c| c.invalidate_object(ObjectType::Project, "p1"), [false, false, true, true, false]),
            ("experiment e1", |c| c.invalidate_object(ObjectType::Experiment, "e1"), [true, false, true, true, true]),
            ("dataset d3", |c| c.invalidate_object(ObjectType::Dataset, "d3"), [true, true, true, true, false]),
            ("decisions", |c| c.invalidate_decisions(), [false; 5]),
            ("all", |c| c.invalidate_all(), [false; 5]),
        ];
        for (name, invalidate, want) in cases {
            let c = cache();
            fill(&c, ENTRIES).await;
            invalidate(&c);
            assert_eq!(cached(&c, ENTRIES).await, want, "{name}");
        }
    }

    async fn identity_hit(cache: &DecisionCache, token: &str, user: &str, org: &str) -> bool {
        let id = identity_of(token, user, org);
        let (_, lookup) =
            cache.identity(&TokenDigest::of(token), || async { Ok::<_, Infallible>(Some(id)) }).await.unwrap();
        lookup == Lookup::Hit
    }

    async fn probe(c: &DecisionCache) -> Vec<bool> {
        let mut v = Vec::new();
        for (t, u, o) in [("t1", "u1", "o1"), ("t2", "u2", "o1"), ("t3", "u3", "o2")] {
            v.push(identity_hit(c, t, u, o).await);
        }
        v
    }

    #[tokio::test]
    async fn identities_survive_acl_changes_and_retire_on_token_user_and_org_changes() {
        let c = cache();
        let unknown = TokenDigest::of("bt-st-unknown");
        probe(&c).await;
        c.identity(&unknown, || async { Ok::<_, Infallible>(None) }).await.unwrap();
        c.invalidate_decisions();
        assert_eq!(probe(&c).await, [true, true, true]);
        let (_, l) = c.identity(&unknown, || async { Ok::<_, Infallible>(None) }).await.unwrap();
        assert_eq!(l, Lookup::Hit, "an unknown token stays cached until a token changes");
        for change in [
            (|c: &DecisionCache| c.invalidate_user("u2")) as fn(&DecisionCache),
            |c| c.invalidate_object(ObjectType::Organization, "o2"),
            |c| c.invalidate_token("t1"),
        ] {
            change(&c);
            assert_eq!(probe(&c).await, [false, false, false]);
            assert_eq!(probe(&c).await, [true, true, true]);
        }
        let (_, l) = c.identity(&unknown, || async { Ok::<_, Infallible>(None) }).await.unwrap();
        assert_eq!(l, Lookup::Miss, "a token change may have created it");
    }

    #[tokio::test]
    async fn an_identity_computed_across_a_token_change_is_never_served() {
        let c = Arc::new(cache());
        let digest = TokenDigest::of("t1");
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let slow = {
            let c = c.clone();
            tokio::spawn(async move {
                c.identity(&digest, || async {
                    go_rx.await.unwrap();
                    Ok::<_, Infallible>(Some(identity_of("t1", "u1", "o1"))) // the old policy
                })
                .await
                .unwrap()
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        c.invalidate_token("t1");
        go_tx.send(()).unwrap();
        assert!(slow.await.unwrap().0.is_some());
        let (id, l) = c.identity(&digest, || async { Ok::<_, Infallible>(None) }).await.unwrap();
        assert_eq!((id.is_none(), l), (true, Lookup::Miss));
    }

    async fn name_hit(c: &DecisionCache, org: &str, name: &str, id: Option<&str>) -> bool {
        let owned = id.map(str::to_owned);
        let (got, lookup) = c.project_by_name(org, name, || async { Ok::<_, Infallible>(owned) }).await.unwrap();
        assert_eq!(got.as_deref(), id);
        lookup == Lookup::Hit
    }

    const NAMES: [(&str, &str, Option<&str>); 3] =
        [("o1", "checkout", Some("p1")), ("o1", "brand-new", None), ("o2", "checkout", Some("p9"))];

    async fn probe_names(c: &DecisionCache) -> Vec<bool> {
        let mut hits = Vec::new();
        for (org, name, id) in NAMES {
            hits.push(name_hit(c, org, name, id).await);
        }
        hits
    }

    #[tokio::test]
    async fn project_names_are_cached_known_or_not_and_retire_on_project_and_org_changes() {
        let c = cache();
        let probe = probe_names;
        assert_eq!(probe(&c).await, [false; 3]);
        assert_eq!(probe(&c).await, [true; 3], "known and unknown names both come from the cache");
        for unrelated in [
            (|c: &DecisionCache| c.invalidate_decisions()) as fn(&DecisionCache),
            |c| c.invalidate_token("t1"),
            |c| c.invalidate_user("u1"),
            |c| c.invalidate_object(ObjectType::Experiment, "e1"),
        ] {
            unrelated(&c);
            assert_eq!(probe(&c).await, [true; 3]);
        }
        for change in [
            (|c: &DecisionCache| c.invalidate_object(ObjectType::Project, "p-created")) as fn(&DecisionCache),
            |c| c.invalidate_object(ObjectType::ProjectLog, "p1"),
            |c| c.invalidate_object(ObjectType::Organization, "o2"),
            |c| c.invalidate_all(),
        ] {
            change(&c);
            assert_eq!(probe(&c).await, [false; 3], "a created, renamed or deleted project may be any name's");
            assert_eq!(probe(&c).await, [true; 3]);
        }
    }

    #[tokio::test]
    async fn a_name_computed_across_a_project_change_is_not_served() {
        let c = Arc::new(cache());
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let slow = {
            let c = c.clone();
            tokio::spawn(async move {
                c.project_by_name("o1", "checkout", || async {
                    go_rx.await.unwrap();
                    Ok::<_, Infallible>(None) // read before the project was created
                })
                .await
                .unwrap()
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        c.invalidate_object(ObjectType::Project, "p1");
        go_tx.send(()).unwrap();
        assert!(slow.await.unwrap().0.is_none());
        assert!(!name_hit(&c, "o1", "checkout", Some("p1")).await);
    }

    #[tokio::test]
    async fn unknown_names_expire_after_negative_ttl_while_push_is_down() {
        let c = DecisionCache::new(100, Duration::from_secs(60), Duration::from_millis(30), Duration::from_secs(10));
        assert!(!name_hit(&c, "o1", "brand-new", None).await);
        assert!(name_hit(&c, "o1", "brand-new", None).await);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(!name_hit(&c, "o1", "brand-new", Some("p2")).await);
        let stale = DecisionCache::new(100, Duration::from_secs(60), Duration::from_secs(5), Duration::from_millis(20));
        assert!(!name_hit(&stale, "o1", "checkout", Some("p1")).await);
        stale.set_push_healthy(false);
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(!name_hit(&stale, "o1", "checkout", Some("p1")).await, "past max_staleness without a sync");
    }

    #[test]
    fn a_new_object_key_is_no_existing_object_key() {
        let digest = TokenDigest::of("t1");
        for (t, p) in [(ObjectType::ProjectLog, Permission::Update), (ObjectType::Organization, Permission::Create)] {
            let new = DecisionKey::for_new(digest, "o1", t, p);
            for object_type in [ObjectType::Organization, ObjectType::ProjectLog, ObjectType::Project] {
                for id in ["o1", "", "\u{ff}o1"] {
                    for permission in Permission::ALL {
                        assert!(DecisionKey::new(digest, &ObjectRef::new(object_type, id), permission) != new);
                    }
                }
            }
            assert!(DecisionKey::for_new(digest, "o2", t, p) != new);
            assert!(DecisionKey::for_new(TokenDigest::of("t2"), "o1", t, p) != new);
        }
    }
}
