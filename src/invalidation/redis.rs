//! The Redis subscriber: `SUBSCRIBE invalidation.channel` on a dedicated
//! pub/sub connection. The client does not resubscribe by itself, so a
//! dropped connection (closed socket, or a ping that goes unanswered) ends
//! the session; the next one starts after a backoff and flushes once it is
//! subscribed again, since messages published in between are lost.

use super::apply::Applier;
use super::bridge::PublishError;
use super::{Backoff, FeedHealth};
use crate::clock::now_ms;
use futures_util::StreamExt;
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
    pub async fn run(self, mut applier: Applier, health: FeedHealth) {
        let mut backoff = Backoff::new();
        loop {
            let end = self.session(&mut applier, &health, &mut backoff).await;
            health.down();
            let delay = backoff.step();
            tracing::warn!(error = %end, channel = %self.channel, retry_in_ms = delay.as_millis() as u64, "invalidation feed (redis) down");
            tokio::time::sleep(delay).await;
        }
    }

    async fn session(&self, applier: &mut Applier, health: &FeedHealth, backoff: &mut Backoff) -> SessionEnd {
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
        // now is covered by this flush, whatever comes later arrives.
        let store_revision = health.store_revision().await;
        applier.reconnected_at(store_revision, now_ms());
        health.up();
        backoff.reset();
        tracing::info!(channel = %self.channel, revision = applier.last_revision(), "invalidation feed (redis) subscribed; cache flushed");
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    None => return SessionEnd::Closed,
                    Some(m) => {
                        let outcome = applier.message(m.get_payload_bytes(), now_ms());
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
