//! The decision cache (design §8): (token digest, object, permission) ->
//! decision, and token digest -> identity, in moka. Misses for one key are
//! computed once (single flight); denials live `negative_ttl`, allows `ttl`.
//!
//! Freshness: every entry records when it was computed. While the
//! invalidation feed is down (or for sources whose changes are not pushed),
//! entries older than `max_staleness` are recomputed rather than served.
//! Targeted invalidation by object, token, user or organization is
//! supported so the feed can drop exactly what a change touched.
//!
//! Races: a computation that started before an invalidation and finished
//! after it may have read the old policy. moka's invalidations only reach
//! entries inserted before them, so every entry records the invalidation
//! epoch its computation started in; one whose computation overlapped any
//! invalidation answers its own single-flight waiters but is never served
//! from the cache afterwards.

use crate::auth::{Identity, TokenDigest};
use crate::authz::Decision;
use crate::policy::types::{ObjectRef, ObjectType, Permission};
use moka::Expiry;
use moka::future::Cache;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DecisionKey {
    pub digest: TokenDigest,
    pub object: ObjectRef,
    pub permission: Permission,
}

#[derive(Debug, Clone)]
struct CachedDecision {
    decision: Decision,
    computed: Instant,
    /// An invalidation happened while this was computed: never reuse it.
    straddled: bool,
    /// For targeted invalidation of one token's, user's or org's decisions.
    token_id: Arc<str>,
    user_id: Arc<str>,
    org_id: Arc<str>,
}

#[derive(Debug, Clone)]
struct CachedIdentity {
    identity: Option<Arc<Identity>>,
    computed: Instant,
    straddled: bool,
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

impl Expiry<DecisionKey, CachedDecision> for TtlByOutcome {
    fn expire_after_create(&self, _: &DecisionKey, value: &CachedDecision, _: Instant) -> Option<Duration> {
        Some(if value.decision.is_allow() { self.ttl } else { self.negative_ttl })
    }
}

impl Expiry<TokenDigest, CachedIdentity> for TtlByOutcome {
    fn expire_after_create(&self, _: &TokenDigest, value: &CachedIdentity, _: Instant) -> Option<Duration> {
        Some(if value.identity.is_some() { self.ttl } else { self.negative_ttl })
    }
}

pub struct DecisionCache {
    decisions: Cache<DecisionKey, CachedDecision>,
    identities: Cache<TokenDigest, CachedIdentity>,
    max_staleness: Duration,
    /// True while pushed invalidations can be trusted (feed up, or a local
    /// source whose every change flushes the cache).
    fresh_by_push: AtomicBool,
    /// Bumped by every invalidation (see the module docs).
    epoch: AtomicU64,
}

impl DecisionCache {
    pub fn new(max_decisions: u64, ttl: Duration, negative_ttl: Duration, max_staleness: Duration) -> Self {
        let decisions = Cache::builder()
            .max_capacity(max_decisions)
            .expire_after(TtlByOutcome { ttl, negative_ttl })
            .support_invalidation_closures()
            .build();
        let identities = Cache::builder()
            .max_capacity(max_decisions.max(1024))
            .expire_after(TtlByOutcome { ttl, negative_ttl })
            .support_invalidation_closures()
            .build();
        DecisionCache { decisions, identities, max_staleness, fresh_by_push: AtomicBool::new(true), epoch: AtomicU64::new(0) }
    }

    /// Declares whether pushed invalidations are currently arriving. When
    /// they are not, entries older than `max_staleness` are recomputed.
    pub fn set_push_healthy(&self, healthy: bool) {
        self.fresh_by_push.store(healthy, Ordering::SeqCst);
    }

    /// Whether pushed invalidations are currently trusted.
    pub fn push_healthy(&self) -> bool {
        self.fresh_by_push.load(Ordering::SeqCst)
    }

    fn usable(&self, computed: Instant, straddled: bool) -> bool {
        !straddled && (self.fresh_by_push.load(Ordering::Relaxed) || computed.elapsed() <= self.max_staleness)
    }

    /// Marks the start of an invalidation: computations in flight become
    /// one-shot (see the module docs). Called before the moka call, so a
    /// computation that reads the epoch afterwards started after it.
    fn bump_epoch(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// The identity for `digest`, computing it once on a miss.
    pub async fn identity<F, E>(&self, digest: &TokenDigest, compute: F) -> Result<(Option<Arc<Identity>>, Lookup), Arc<E>>
    where
        F: Future<Output = Result<Option<Identity>, E>>,
        E: Send + Sync + 'static,
    {
        if let Some(hit) = self.identities.get(digest).await {
            if self.usable(hit.computed, hit.straddled) {
                return Ok((hit.identity, Lookup::Hit));
            }
            self.identities.invalidate(digest).await;
        }
        let started = self.epoch.load(Ordering::SeqCst);
        let entry = self
            .identities
            .try_get_with(*digest, async move {
                let identity = compute.await?.map(Arc::new);
                let straddled = self.epoch.load(Ordering::SeqCst) != started;
                Ok(CachedIdentity { identity, computed: Instant::now(), straddled })
            })
            .await?;
        Ok((entry.identity, Lookup::Miss))
    }

    /// The decision for `key`, computing it once on a miss.
    pub async fn decision<F, E>(&self, key: DecisionKey, identity: &Identity, compute: F) -> Result<(Decision, Lookup), Arc<E>>
    where
        F: Future<Output = Result<Decision, E>>,
        E: Send + Sync + 'static,
    {
        if let Some(hit) = self.decisions.get(&key).await {
            if self.usable(hit.computed, hit.straddled) {
                return Ok((hit.decision, Lookup::Hit));
            }
            self.decisions.invalidate(&key).await;
        }
        let token_id: Arc<str> = identity.token_id.as_str().into();
        let user_id: Arc<str> = identity.user_id.as_str().into();
        let org_id: Arc<str> = identity.org_id.as_str().into();
        let started = self.epoch.load(Ordering::SeqCst);
        let entry = self
            .decisions
            .try_get_with(key, async move {
                let decision = compute.await?;
                let straddled = self.epoch.load(Ordering::SeqCst) != started;
                Ok(CachedDecision { decision, computed: Instant::now(), straddled, token_id, user_id, org_id })
            })
            .await?;
        Ok((entry.decision, Lookup::Miss))
    }

    /// Drops everything (a policy reload, a feed gap, a reconnect).
    pub fn invalidate_all(&self) {
        self.bump_epoch();
        self.decisions.invalidate_all();
        self.identities.invalidate_all();
    }

    /// Drops every decision but keeps identities: for changes (ACLs, groups,
    /// roles) that can alter any decision but never who a token is.
    pub fn invalidate_decisions(&self) {
        self.bump_epoch();
        self.decisions.invalidate_all();
    }

    /// Drops the decisions about `object` and about everything below it.
    ///
    /// - organization: every decision and identity of that organization
    ///   (decisions are confined to the token's org, so nothing else can
    ///   depend on it);
    /// - project / project_log: the decisions about that project and its
    ///   log, plus every decision about objects that live below some
    ///   project (experiments, datasets, prompts): the cache does not know
    ///   their parents, and a project's ACLs or soft-deletion reach them;
    /// - anything else: the decisions about exactly that object id.
    pub fn invalidate_object(&self, object_type: ObjectType, id: &str) {
        self.bump_epoch();
        let id: Arc<str> = id.into();
        let result = match object_type {
            ObjectType::Organization => {
                let for_identities = id.clone();
                let ids = self
                    .identities
                    .invalidate_entries_if(move |_, v| v.identity.as_ref().is_some_and(|i| *i.org_id == *for_identities));
                let id = id.clone();
                ids.and(self.decisions.invalidate_entries_if(move |_, v| *v.org_id == *id))
            }
            ObjectType::Project | ObjectType::ProjectLog => {
                let id = id.clone();
                self.decisions.invalidate_entries_if(move |k, _| {
                    k.object.id.as_str() == &*id || below_a_project(k.object.object_type)
                })
            }
            _ => {
                let id = id.clone();
                self.decisions.invalidate_entries_if(move |k, _| k.object.id.as_str() == &*id)
            }
        };
        if result.is_err() {
            self.invalidate_all();
        }
    }

    /// Drops one token's identity and decisions (revoked, expired, edited),
    /// and every cached "unknown token": a created token may be one of them.
    pub fn invalidate_token(&self, token_id: &str) {
        self.bump_epoch();
        let id: Arc<str> = token_id.into();
        let for_decisions = id.clone();
        let dropped = self.decisions.invalidate_entries_if(move |_, v| *v.token_id == *for_decisions);
        let for_identities = id.clone();
        let dropped_ids = self.identities.invalidate_entries_if(move |_, v| {
            v.identity.as_ref().is_none_or(|i| *i.token_id == *for_identities)
        });
        if dropped.is_err() || dropped_ids.is_err() {
            self.invalidate_all();
        }
    }

    /// Drops the identities and decisions of every token acting as `user_id`
    /// (a user's own ACLs and group memberships only ever decide for it).
    pub fn invalidate_user(&self, user_id: &str) {
        self.bump_epoch();
        let id: Arc<str> = user_id.into();
        let for_decisions = id.clone();
        let dropped = self.decisions.invalidate_entries_if(move |_, v| *v.user_id == *for_decisions);
        let dropped_ids = self
            .identities
            .invalidate_entries_if(move |_, v| v.identity.as_ref().is_some_and(|i| *i.user_id == *id));
        if dropped.is_err() || dropped_ids.is_err() {
            self.invalidate_all();
        }
    }

    /// Number of cached decisions (approximate; for memory measurements).
    pub fn decision_count(&self) -> u64 {
        self.decisions.entry_count()
    }

    /// Number of cached identities (approximate).
    pub fn identity_count(&self) -> u64 {
        self.identities.entry_count()
    }

    /// Applies pending maintenance (tests and benchmarks).
    pub async fn run_pending_tasks(&self) {
        self.decisions.run_pending_tasks().await;
        self.identities.run_pending_tasks().await;
    }
}

/// Object types whose decisions depend on a parent project.
fn below_a_project(t: ObjectType) -> bool {
    matches!(t, ObjectType::Experiment | ObjectType::Dataset | ObjectType::Prompt | ObjectType::PromptSession)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::DenyReason;
    use std::convert::Infallible;
    use std::sync::atomic::AtomicUsize;

    fn identity() -> Identity {
        Identity {
            token_id: "t1".into(),
            token_name: "ci".into(),
            org_id: "o1".into(),
            user_id: "u1".into(),
            expires_at_ms: None,
        }
    }

    fn key(id: &str) -> DecisionKey {
        DecisionKey {
            digest: TokenDigest::of("bt-st-x"),
            object: ObjectRef::new(ObjectType::ProjectLog, id),
            permission: Permission::Update,
        }
    }

    async fn ask(cache: &DecisionCache, k: DecisionKey, calls: &AtomicUsize, d: Decision) -> (Decision, Lookup) {
        cache
            .decision(k, &identity(), async {
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
        assert_eq!(ask(&cache, key("p"), &calls, Decision::Allow).await.1, Lookup::Miss);
        assert_eq!(ask(&cache, key("p"), &calls, Decision::Allow).await.1, Lookup::Hit);
        cache.invalidate_object(ObjectType::ProjectLog, "p");
        cache.run_pending_tasks().await;
        assert_eq!(ask(&cache, key("p"), &calls, Decision::Allow).await.1, Lookup::Miss);
        cache.invalidate_token("t1");
        cache.run_pending_tasks().await;
        let deny = Decision::Deny(DenyReason::MissingPermission);
        assert_eq!(ask(&cache, key("p"), &calls, deny).await, (deny, Lookup::Miss));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn stale_entries_are_recomputed_while_push_is_down() {
        let cache = DecisionCache::new(100, Duration::from_secs(60), Duration::from_secs(5), Duration::from_millis(20));
        let calls = AtomicUsize::new(0);
        ask(&cache, key("p"), &calls, Decision::Allow).await;
        cache.set_push_healthy(false);
        assert_eq!(ask(&cache, key("p"), &calls, Decision::Allow).await.1, Lookup::Hit);
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(ask(&cache, key("p"), &calls, Decision::Allow).await.1, Lookup::Miss);
    }

    #[tokio::test]
    async fn concurrent_misses_compute_once() {
        let cache = Arc::new(DecisionCache::new(100, Duration::from_secs(60), Duration::from_secs(5), Duration::from_secs(10)));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .decision(key("p"), &identity(), async {
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

    fn identity_of(token: &str, user: &str, org: &str) -> Identity {
        Identity {
            token_id: token.into(),
            token_name: token.into(),
            org_id: org.into(),
            user_id: user.into(),
            expires_at_ms: None,
        }
    }

    fn key_for(token: &str, t: ObjectType, id: &str) -> DecisionKey {
        DecisionKey { digest: TokenDigest::of(token), object: ObjectRef::new(t, id), permission: Permission::Update }
    }

    /// Fills `(token, user, org, object)` decisions, returns a probe that
    /// says which of them are still cached.
    async fn fill(cache: &DecisionCache, entries: &[(&str, &str, &str, ObjectType, &str)]) {
        for (token, user, org, t, id) in entries {
            cache
                .decision(key_for(token, *t, id), &identity_of(token, user, org), async { Ok::<_, Infallible>(Decision::Allow) })
                .await
                .unwrap();
        }
    }

    async fn cached(cache: &DecisionCache, entries: &[(&str, &str, &str, ObjectType, &str)]) -> Vec<bool> {
        let mut out = Vec::new();
        for (token, user, org, t, id) in entries {
            let (_, lookup) = cache
                .decision(key_for(token, *t, id), &identity_of(token, user, org), async { Ok::<_, Infallible>(Decision::Allow) })
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
        let (_, lookup) = cache
            .identity(&TokenDigest::of(token), async { Ok::<_, Infallible>(Some(id)) })
            .await
            .unwrap();
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
    async fn identities_follow_tokens_users_and_orgs_but_not_acls() {
        let c = cache();
        let unknown = TokenDigest::of("bt-st-unknown");
        probe(&c).await;
        c.identity(&unknown, async { Ok::<_, Infallible>(None) }).await.unwrap();
        c.invalidate_decisions();
        assert_eq!(probe(&c).await, [true, true, true]);
        c.invalidate_user("u2");
        assert_eq!(probe(&c).await, [true, false, true]);
        c.invalidate_object(ObjectType::Organization, "o2");
        assert_eq!(probe(&c).await, [true, true, false]);
        let (_, l) = c.identity(&unknown, async { Ok::<_, Infallible>(None) }).await.unwrap();
        assert_eq!(l, Lookup::Hit, "an unknown token stays cached until a token changes");
        c.invalidate_token("t1");
        assert_eq!(probe(&c).await, [false, true, true]);
        let (_, l) = c.identity(&unknown, async { Ok::<_, Infallible>(None) }).await.unwrap();
        assert_eq!(l, Lookup::Miss, "a token change may have created it");
    }

    #[tokio::test]
    async fn a_computation_overlapping_an_invalidation_is_never_reused() {
        let c = Arc::new(cache());
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let slow = {
            let c = c.clone();
            tokio::spawn(async move {
                c.decision(key("p"), &identity(), async {
                    go_rx.await.unwrap();
                    Ok::<_, Infallible>(Decision::Allow) // read from the old policy
                })
                .await
                .unwrap()
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        c.invalidate_object(ObjectType::ProjectLog, "p");
        go_tx.send(()).unwrap();
        assert_eq!(slow.await.unwrap(), (Decision::Allow, Lookup::Miss));
        let deny = Decision::Deny(DenyReason::MissingPermission);
        let (d, l) = c.decision(key("p"), &identity(), async { Ok::<_, Infallible>(deny) }).await.unwrap();
        assert_eq!((d, l), (deny, Lookup::Miss));
        let (d, l) = c.decision(key("p"), &identity(), async { Ok::<_, Infallible>(Decision::Allow) }).await.unwrap();
        assert_eq!((d, l), (deny, Lookup::Hit), "a clean computation is cached as usual");
    }
}
