//! A worker thread's own front for the shared cache: copies of the
//! identities and decisions its requests were recently given.
//!
//! Why: a hit in the shared cache writes shared memory (moka records every
//! read, a decision hit takes its shard's lock, reference counts move), so
//! two workers serving the same token pass the same cache lines back and
//! forth on every request. A hit here writes only this worker's memory
//! (even the identity's reference count: the copy is a separate `Arc`) and
//! reads two generation counters that only invalidations write.
//!
//! Exactness: a copy is served only while it would still be served by the
//! shared cache. It keeps the original's computation time (so the same TTLs
//! and `max_staleness` end it at the same moment) and the generation the
//! original was valid in: every invalidation bumps a generation, which
//! retires every copy made before it (coarser than the shared cache's
//! targeted invalidation; the next request refills from the shared cache).

use super::{DecisionCache, DecisionKey, KeyIsHash, Lookup};
use loggate_authz::Decision;
use loggate_model::types::ObjectRef;
use loggate_model::{Identity, TokenDigest};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::hash::BuildHasherDefault;
use std::sync::Arc;
use std::time::Instant;

/// Copies kept per kind; a full map is emptied (it refills at once).
const MAX_COPIES: usize = 4096;

pub struct WorkerCache {
    shared: Arc<DecisionCache>,
    /// Only this worker's thread locks it (the lock makes it `Sync`).
    copies: Mutex<Copies>,
}

#[derive(Default)]
struct Copies {
    identities: HashMap<TokenDigest, Copy<Option<Arc<Identity>>>>,
    decisions: HashMap<DecisionKey, Copy<Decision>, BuildHasherDefault<KeyIsHash>>,
}

struct Copy<V> {
    value: V,
    computed: Instant,
    /// The generation the original was served in.
    generation: u64,
}

fn keep<K: std::hash::Hash + Eq, V, S: std::hash::BuildHasher>(map: &mut HashMap<K, V, S>, key: K, value: V) {
    if map.len() >= MAX_COPIES {
        map.clear();
    }
    map.insert(key, value);
}

impl WorkerCache {
    pub fn new(shared: Arc<DecisionCache>) -> Self {
        WorkerCache { shared, copies: Mutex::new(Copies::default()) }
    }

    /// [`DecisionCache::identity`], answered from this worker's copy while it is current.
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
        let generation = self.shared.identity_generation();
        if let Some(copy) = self.copies.lock().identities.get(digest)
            && copy.generation == generation
            && self.shared.fresh(copy.value.is_some(), copy.computed)
        {
            return Ok((copy.value.clone(), Lookup::Hit));
        }
        let (entry, lookup) = self.shared.identity_entry(digest, compute).await?;
        // A copy of its own, not another handle on the shared `Arc`: every
        // request clones and drops the identity it is served, and that
        // reference count should not be a counter all workers write.
        let own = entry.identity.as_deref().map(|i| Arc::new(i.clone()));
        let copy = Copy { value: own, computed: entry.computed, generation: entry.generation };
        keep(&mut self.copies.lock().identities, *digest, copy);
        Ok((entry.identity, lookup))
    }

    /// [`DecisionCache::decision`], answered from this worker's copy while it is current.
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
        // Read before the shared lookup: an invalidation after this read
        // (even one that races the lookup) leaves the copy unservable.
        let generation = self.shared.decisions.generation();
        if let Some(copy) = self.copies.lock().decisions.get(&key)
            && copy.generation == generation
            && self.shared.fresh(copy.value.is_allow(), copy.computed)
        {
            return Ok((copy.value, Lookup::Hit));
        }
        let (decision, computed, lookup) = self.shared.decision_entry(key, identity, object, compute).await?;
        keep(&mut self.copies.lock().decisions, key, Copy { value: decision, computed, generation });
        Ok((decision, lookup))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loggate_model::types::{ObjectType, Permission};
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn shared(ttl_ms: u64) -> Arc<DecisionCache> {
        let ttl = Duration::from_millis(ttl_ms);
        Arc::new(DecisionCache::new(1000, ttl, ttl, Duration::from_secs(1)))
    }

    fn identity(token: &str, user: &str) -> Identity {
        Identity {
            token_id: token.into(),
            token_name: token.into(),
            user_id: user.into(),
            org_id: "o".into(),
            ..Identity::default()
        }
    }

    async fn ask_decision(w: &WorkerCache, calls: &AtomicUsize, answer: Decision) -> (Decision, Lookup) {
        let object = ObjectRef::new(ObjectType::ProjectLog, "p");
        let key = DecisionKey::new(TokenDigest::of("bt-st-t"), &object, Permission::Update);
        w.decision(key, &Arc::new(identity("t", "u")), &object, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Infallible>(answer)
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn copies_serve_until_any_invalidation() {
        let shared = shared(60_000);
        let (a, b) = (WorkerCache::new(shared.clone()), WorkerCache::new(shared.clone()));
        let calls = AtomicUsize::new(0);
        assert_eq!(ask_decision(&a, &calls, Decision::Allow).await.1, Lookup::Miss);
        assert_eq!(ask_decision(&a, &calls, Decision::Allow).await.1, Lookup::Hit);
        assert_eq!(
            ask_decision(&b, &calls, Decision::Allow).await.1,
            Lookup::Hit,
            "the other worker hits the shared cache"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Any invalidation, even one about another object, retires the copies.
        shared.invalidate_object(ObjectType::Experiment, "elsewhere");
        assert_eq!(
            ask_decision(&a, &calls, Decision::Allow).await,
            (Decision::Allow, Lookup::Hit),
            "refilled from the shared cache"
        );
        shared.invalidate_object(ObjectType::ProjectLog, "p");
        assert_eq!(
            ask_decision(&a, &calls, Decision::Deny(loggate_authz::DenyReason::MissingPermission)).await.1,
            Lookup::Miss
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn copies_expire_with_their_original() {
        let shared = shared(50);
        let w = WorkerCache::new(shared.clone());
        let calls = AtomicUsize::new(0);
        ask_decision(&w, &calls, Decision::Allow).await;
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(ask_decision(&w, &calls, Decision::Allow).await.1, Lookup::Miss);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn identity_copies_retire_on_token_changes() {
        let shared = shared(60_000);
        let w = WorkerCache::new(shared.clone());
        let digest = TokenDigest::of("bt-st-t");
        let lookup = |known: bool| {
            let w = &w;
            async move {
                w.identity(&digest, || async move { Ok::<_, Infallible>(known.then(|| identity("t", "u"))) })
                    .await
                    .unwrap()
            }
        };
        assert_eq!(lookup(true).await.1, Lookup::Miss);
        let (id, l) = lookup(false).await;
        assert_eq!((id.is_some(), l), (true, Lookup::Hit));
        shared.invalidate_token("t");
        let (id, l) = lookup(false).await;
        assert_eq!((id.is_some(), l), (false, Lookup::Miss), "a revoked token is not served from a copy");
    }
}
