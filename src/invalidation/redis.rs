//! The Redis subscriber: `SUBSCRIBE invalidation.channel` on a dedicated
//! pub/sub connection. The client does not resubscribe by itself, so a
//! dropped connection (closed socket, or a ping that goes unanswered) ends
//! the session; the next one starts after a backoff and, once subscribed
//! again, has the follower catch up from the change log (or flush, without
//! one), since messages published in between are lost.

use super::Backoff;
use super::bridge::PublishError;
use super::follow::Follower;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// How long connecting and subscribing may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A silent connection (no FIN, e.g. a partition) is noticed within
/// `PING_INTERVAL + PING_TIMEOUT`.
const PING_INTERVAL: Duration = Duration::from_secs(1);
const PING_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Subscriber {
    client: ::redis::Client,
    channel: String,
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum SessionEnd {
    #[error("connecting or subscribing timed out")]
    Timeout,
    #[error("{0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("the server closed the pub/sub connection")]
    Closed,
    #[error("no answer to PING within {PING_TIMEOUT:?}")]
    PingTimeout,
}

impl Subscriber {
    /// Fails on a URL the redis client cannot use.
    pub fn new(url: &str, channel: &str) -> anyhow::Result<Self> {
        let client = ::redis::Client::open(url).map_err(|e| anyhow::anyhow!("invalidation.url {url:?}: {e}"))?;
        Ok(Subscriber { client, channel: channel.to_owned() })
    }

    /// Runs forever: subscribe, apply, reconnect.
    pub async fn run(self, follower: Arc<Follower>) {
        let mut backoff = Backoff::new();
        loop {
            let end = self.session(&follower, &mut backoff).await;
            follower.down();
            let delay = backoff.step();
            tracing::warn!(error = %end, channel = %self.channel, retry_in_ms = delay.as_millis() as u64, "invalidation feed (redis) down");
            tokio::time::sleep(delay).await;
        }
    }

    async fn session(&self, follower: &Follower, backoff: &mut Backoff) -> SessionEnd {
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let (mut sink, stream) = self.client.get_async_pubsub().await?.split();
            sink.subscribe(&self.channel).await?;
            Ok::<_, ::redis::RedisError>((sink, stream))
        })
        .await;
        let (mut sink, mut stream) = match connected {
            Err(_) => return SessionEnd::Timeout,
            Ok(Err(e)) => return e.into(),
            Ok(Ok(pair)) => pair,
        };
        // Subscribed (the server confirmed): whatever was published before
        // now is caught up (or flushed), whatever comes later arrives.
        let outcome = follower.subscribed();
        backoff.reset();
        tracing::info!(channel = %self.channel, revision = follower.last_revision(), ?outcome, "invalidation feed (redis) subscribed");
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    None => return SessionEnd::Closed,
                    Some(m) => {
                        let outcome = follower.message(m.get_payload_bytes());
                        tracing::debug!(?outcome, "invalidation message");
                    }
                },
                _ = ping.tick() => match tokio::time::timeout(PING_TIMEOUT, sink.ping::<::redis::Value>()).await {
                    Err(_) => return SessionEnd::PingTimeout,
                    Ok(Err(e)) => return e.into(),
                    Ok(Ok(_)) => {}
                },
            }
        }
    }
}

/// Publishes announcements with `PUBLISH channel message` over a connection
/// that reconnects by itself (the bridge's side).
pub struct Publisher {
    client: ::redis::Client,
    channel: String,
    connection: tokio::sync::Mutex<Option<::redis::aio::ConnectionManager>>,
}

impl Publisher {
    pub fn new(url: &str, channel: &str) -> anyhow::Result<Self> {
        let client = ::redis::Client::open(url).map_err(|e| anyhow::anyhow!("invalidation.url {url:?}: {e}"))?;
        Ok(Publisher { client, channel: channel.to_owned(), connection: tokio::sync::Mutex::new(None) })
    }

    /// `PUBLISH`es one message; returns how many subscribers received it.
    pub async fn publish(&self, payload: &[u8]) -> Result<u64, PublishError> {
        let mut guard = self.connection.lock().await;
        let connection = match &mut *guard {
            Some(c) => c,
            None => {
                let manager = ::redis::aio::ConnectionManager::new(self.client.clone());
                let manager = tokio::time::timeout(CONNECT_TIMEOUT, manager)
                    .await
                    .map_err(|_| PublishError("connecting to redis timed out".into()))?
                    .map_err(|e| PublishError(format!("connecting to redis: {e}")))?;
                guard.insert(manager)
            }
        };
        let mut command = ::redis::cmd("PUBLISH");
        command.arg(&self.channel).arg(payload);
        let sent = match tokio::time::timeout(PING_TIMEOUT, command.query_async::<u64>(connection)).await {
            Err(_) => Err(PublishError("PUBLISH timed out".into())),
            Ok(r) => r.map_err(|e| PublishError(format!("PUBLISH: {e}"))),
        };
        if sent.is_err() {
            *guard = None;
        }
        sent
    }
}
