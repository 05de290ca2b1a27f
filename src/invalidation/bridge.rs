//! The bridge: Postgres change log -> invalidation feed (docs/operations.md, caching and invalidation).
//!
//! The postgres store's triggers give every transaction one revision,
//! record `(revision, kind, id, committed_at)` in `policy_changes`, and
//! `pg_notify('loggate_policy', revision)`. The bridge `LISTEN`s on that
//! channel on a connection of its own and, for every revision it has not
//! published yet, publishes the contract message to Redis or NATS. It
//! catches up (from the last revision it published, via
//! [`ChangeSource::revision`]/[`ChangeSource::changes`]) when it starts,
//! after every reconnect, on every notification, and on a slow safety tick,
//! so a lost notification only delays a message.
//!
//! Several replicas may run the bridge: receivers ignore revisions they
//! already applied, so duplicates are harmless. There is deliberately no
//! "published" marker in Redis (`SET NX`): a replica that set it and died
//! before publishing would leave a revision unannounced until the next
//! one, which is exactly a lost revocation.
//!
//! The store side is the [`ChangeSource`] trait; `PgStore` implements it
//! (see [`StoreChanges`]).

use super::message::ChangeKind;
use super::{Backoff, nats, redis};
use crate::config::{Config, Feed};
use crate::policy::{Store, StoreError};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The Postgres notification channel the store's triggers notify.
pub const PG_CHANNEL: &str = "loggate_policy";
/// Catch up at least this often even without notifications.
pub const SAFETY_POLL: Duration = Duration::from_secs(2);
/// Further behind than this, only the newest revision is published:
/// receivers see a gap and catch up from the change log themselves (one
/// statement each, or a flush when the log cannot cover it), which is
/// cheaper than a replay.
pub const MAX_REPLAY: u64 = 1000;

/// `(committed_at_ms, [(kind, id)])`: one revision of the change log.
pub type RevisionChanges = (i64, Vec<(String, String)>);

/// Where committed revisions and their changes are read.
pub trait ChangeSource: Send + Sync {
    /// The newest committed revision. Every revision up to it must be
    /// committed (or never be committed) when this answers.
    fn revision(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// `(committed_at_ms, [(kind, id)])` of one revision.
    fn changes(&self, revision: u64) -> impl Future<Output = Result<RevisionChanges, StoreError>> + Send;
}

/// A message could not be handed to the feed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct PublishError(pub String);

/// Where messages go.
pub trait Publish: Send + Sync {
    fn publish(&self, payload: &[u8]) -> impl Future<Output = Result<(), PublishError>> + Send;
}

impl Publish for redis::Publisher {
    async fn publish(&self, payload: &[u8]) -> Result<(), PublishError> {
        redis::Publisher::publish(self, payload).await.map(|_| ())
    }
}

impl Publish for nats::Publisher {
    async fn publish(&self, payload: &[u8]) -> Result<(), PublishError> {
        nats::Publisher::publish(self, payload).await
    }
}

/// The configured feed, as a publisher.
pub enum FeedPublisher {
    Redis(redis::Publisher),
    Nats(nats::Publisher),
}

impl FeedPublisher {
    /// `None` for `feed = "none"`.
    pub async fn from_config(config: &Config) -> anyhow::Result<Option<Self>> {
        let inv = &config.invalidation;
        Ok(match inv.feed {
            Feed::None => None,
            Feed::Redis => Some(FeedPublisher::Redis(redis::Publisher::new(&inv.url, &inv.channel)?)),
            Feed::Nats => Some(FeedPublisher::Nats(nats::Publisher::connect(&inv.url, &inv.channel).await?)),
        })
    }
}

impl Publish for FeedPublisher {
    async fn publish(&self, payload: &[u8]) -> Result<(), PublishError> {
        match self {
            FeedPublisher::Redis(p) => Publish::publish(p, payload).await,
            FeedPublisher::Nats(p) => Publish::publish(p, payload).await,
        }
    }
}

/// The contract message for one revision. Kinds are passed through as the
/// store wrote them: one receivers do not know makes them catch up from
/// the change log, where it makes them flush.
pub fn encode(revision: u64, committed_at_ms: i64, changes: &[(String, String)]) -> Vec<u8> {
    for (kind, _) in changes {
        if ChangeKind::parse(kind).is_none() {
            tracing::warn!(kind = %kind, revision, "change kind outside the contract; receivers will flush");
        }
    }
    let changes: Vec<_> = changes.iter().map(|(kind, id)| serde_json::json!({"kind": kind, "id": id})).collect();
    serde_json::to_vec(
        &serde_json::json!({"revision": revision, "committed_at_ms": committed_at_ms, "changes": changes}),
    )
    .expect("json")
}

/// Why a catch-up stopped early (it resumes from where it stopped).
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("publishing revision {revision}: {error}")]
    Publish { revision: u64, error: PublishError },
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("the LISTEN connection closed")]
    Closed,
}

/// Publishes every revision once, in order.
pub struct Bridge<S, P> {
    source: S,
    publisher: P,
    published: Option<u64>,
}

impl<S: ChangeSource, P: Publish> Bridge<S, P> {
    pub fn new(source: S, publisher: P) -> Self {
        Bridge { source, publisher, published: None }
    }

    /// The last revision this bridge published.
    pub fn published(&self) -> Option<u64> {
        self.published
    }

    /// Publishes every committed revision after the last published one; on
    /// the first call, the newest revision only (receivers that missed
    /// earlier ones see a gap and catch up). Returns how many were published.
    pub async fn catch_up(&mut self) -> Result<usize, BridgeError> {
        let head = self.source.revision().await?;
        let from = match self.published {
            Some(p) if head.saturating_sub(p) <= MAX_REPLAY => p + 1,
            _ => head.max(1),
        };
        let mut count = 0;
        for revision in from..=head {
            let (committed_at_ms, changes) = self.source.changes(revision).await?;
            let payload = encode(revision, committed_at_ms, &changes);
            self.publisher.publish(&payload).await.map_err(|error| BridgeError::Publish { revision, error })?;
            self.published = Some(revision);
            count += 1;
        }
        Ok(count)
    }

    /// Runs forever: `LISTEN` on `postgres_url`, catch up on every
    /// notification and tick; reconnect with backoff.
    pub async fn run(mut self, postgres_url: String) {
        let mut backoff = Backoff::new();
        loop {
            let end = self.listen(&postgres_url, &mut backoff).await;
            let delay = backoff.step();
            tracing::warn!(error = %end, retry_in_ms = delay.as_millis() as u64, "invalidation bridge: LISTEN connection lost");
            tokio::time::sleep(delay).await;
        }
    }

    async fn listen(&mut self, url: &str, backoff: &mut Backoff) -> BridgeError {
        let (client, mut connection) = match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
            Ok(pair) => pair,
            Err(e) => return e.into(),
        };
        let (tx, mut notifications) = mpsc::unbounded_channel::<Option<u64>>();
        let driver = tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                        if tx.send(n.payload().trim().parse().ok()).is_err() {
                            return;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "invalidation bridge: postgres connection error");
                        return;
                    }
                    None => return,
                }
            }
        });
        let _abort = AbortOnDrop(driver);
        if let Err(e) = client.batch_execute(&format!("LISTEN {PG_CHANNEL}")).await {
            return e.into();
        }
        backoff.reset();
        tracing::info!(channel = PG_CHANNEL, "invalidation bridge listening");
        // Listening first, then catching up: nothing committed in between is missed.
        self.catch_up_logged().await;
        let mut tick = tokio::time::interval(SAFETY_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                n = notifications.recv() => {
                    if n.is_none() {
                        return BridgeError::Closed;
                    }
                    while notifications.try_recv().is_ok() {}
                    self.catch_up_logged().await;
                }
                _ = tick.tick() => self.catch_up_logged().await,
            }
        }
    }

    async fn catch_up_logged(&mut self) {
        match self.catch_up().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(published = n, revision = self.published, "invalidation bridge published"),
            Err(e) => {
                tracing::warn!(error = %e, "invalidation bridge: catch-up stopped; retrying on the next notification or tick")
            }
        }
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The configured store as a change source. Only the postgres store has a
/// change log; the file store announces nothing.
pub struct StoreChanges(pub Arc<Store>);

impl ChangeSource for StoreChanges {
    async fn revision(&self) -> Result<u64, StoreError> {
        match &*self.0 {
            Store::File(_) => Err(StoreError("the file store has no change log".into())),
            Store::Postgres(pg) => pg.revision().await,
        }
    }

    async fn changes(&self, revision: u64) -> Result<RevisionChanges, StoreError> {
        match &*self.0 {
            Store::File(_) => Err(StoreError("the file store has no change log".into())),
            Store::Postgres(pg) => pg.changes(revision).await,
        }
    }
}

/// The URL to `LISTEN` on, when the configured store has a change log.
fn listen_url(config: &Config, store: &Store) -> Option<String> {
    let has_change_log = match store {
        Store::File(_) => false,
        Store::Postgres(_) => true,
    };
    has_change_log.then(|| config.policy.postgres_url.clone()).flatten()
}

/// Starts the bridge when the store has a change log and a feed is
/// configured; `None` otherwise.
pub async fn spawn(config: &Config, store: Arc<Store>) -> anyhow::Result<Option<JoinHandle<()>>> {
    let Some(postgres_url) = listen_url(config, &store) else {
        return Ok(None);
    };
    let Some(publisher) = FeedPublisher::from_config(config).await? else {
        return Ok(None);
    };
    let bridge = Bridge::new(StoreChanges(store), publisher);
    Ok(Some(tokio::spawn(bridge.run(postgres_url))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;
    use std::collections::BTreeMap;

    /// An in-memory change log.
    #[derive(Default)]
    struct Log {
        revisions: Mutex<BTreeMap<u64, RevisionChanges>>,
        down: Mutex<bool>,
    }

    impl Log {
        fn commit(&self, changes: &[(&str, &str)]) -> u64 {
            let mut r = self.revisions.lock();
            let next = r.keys().last().copied().unwrap_or(0) + 1;
            r.insert(next, (next as i64 * 10, changes.iter().map(|(k, i)| (k.to_string(), i.to_string())).collect()));
            next
        }
    }

    impl ChangeSource for Arc<Log> {
        async fn revision(&self) -> Result<u64, StoreError> {
            if *self.down.lock() {
                return Err(StoreError("down".into()));
            }
            Ok(self.revisions.lock().keys().last().copied().unwrap_or(0))
        }
        async fn changes(&self, revision: u64) -> Result<RevisionChanges, StoreError> {
            Ok(self.revisions.lock().get(&revision).cloned().unwrap_or_default())
        }
    }

    #[derive(Default)]
    struct Sink {
        sent: Mutex<Vec<serde_json::Value>>,
        failing: Mutex<bool>,
    }

    impl Publish for Arc<Sink> {
        async fn publish(&self, payload: &[u8]) -> Result<(), PublishError> {
            if *self.failing.lock() {
                return Err(PublishError("feed down".into()));
            }
            self.sent.lock().push(serde_json::from_slice(payload).unwrap());
            Ok(())
        }
    }

    fn revisions(sink: &Sink) -> Vec<u64> {
        sink.sent.lock().iter().map(|m| m["revision"].as_u64().unwrap()).collect()
    }

    #[tokio::test]
    async fn publishes_the_head_first_then_every_revision_in_order() {
        let (log, sink) = (Arc::new(Log::default()), Arc::new(Sink::default()));
        let mut bridge = Bridge::new(log.clone(), sink.clone());
        assert_eq!(bridge.catch_up().await.unwrap(), 0, "an empty log publishes nothing");
        log.commit(&[("acl", "a1")]);
        log.commit(&[("group", "g1")]);
        assert_eq!(bridge.catch_up().await.unwrap(), 1);
        assert_eq!(revisions(&sink), [2]);
        log.commit(&[("service_token", "t1"), ("acl", "a2")]);
        log.commit(&[("user", "u")]);
        assert_eq!(bridge.catch_up().await.unwrap(), 2);
        assert_eq!(revisions(&sink), [2, 3, 4]);
        let m = &sink.sent.lock()[1];
        assert_eq!(
            *m,
            serde_json::json!({"revision": 3, "committed_at_ms": 30,
                               "changes": [{"kind": "service_token", "id": "t1"}, {"kind": "acl", "id": "a2"}]})
        );
        let parsed = crate::invalidation::message::parse(&serde_json::to_vec(m).unwrap()).unwrap();
        assert_eq!(parsed.changes.len(), 2);
    }

    #[tokio::test]
    async fn failures_resume_where_they_stopped() {
        let (log, sink) = (Arc::new(Log::default()), Arc::new(Sink::default()));
        let mut bridge = Bridge::new(log.clone(), sink.clone());
        log.commit(&[]);
        bridge.catch_up().await.unwrap();
        *sink.failing.lock() = true;
        log.commit(&[("acl", "a")]);
        log.commit(&[("acl", "b")]);
        assert!(matches!(bridge.catch_up().await, Err(BridgeError::Publish { revision: 2, .. })));
        *sink.failing.lock() = false;
        *log.down.lock() = true;
        assert!(matches!(bridge.catch_up().await, Err(BridgeError::Store(_))));
        *log.down.lock() = false;
        assert_eq!(bridge.catch_up().await.unwrap(), 2);
        assert_eq!(revisions(&sink), [1, 2, 3]);
        assert_eq!(bridge.published(), Some(3));
    }

    #[tokio::test]
    async fn far_behind_skips_to_the_head() {
        let (log, sink) = (Arc::new(Log::default()), Arc::new(Sink::default()));
        let mut bridge = Bridge::new(log.clone(), sink.clone());
        log.commit(&[]);
        bridge.catch_up().await.unwrap();
        for _ in 0..MAX_REPLAY + 5 {
            log.commit(&[("acl", "a")]);
        }
        assert_eq!(bridge.catch_up().await.unwrap(), 1);
        assert_eq!(revisions(&sink), [1, MAX_REPLAY + 6]);
    }

    #[test]
    fn unknown_kinds_pass_through_so_receivers_flush() {
        let payload = encode(5, 1, &[("prompt".into(), "x".into())]);
        assert!(crate::invalidation::message::parse(&payload).is_err());
    }
}
