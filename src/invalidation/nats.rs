//! The NATS subscriber: core NATS on the subject named by
//! `invalidation.channel`. The client reconnects and resubscribes by
//! itself; every `Connected` event (the first connect and each reconnect)
//! is answered, once the subscription is confirmed by a round trip, with a
//! catch-up from the change log (or a flush, without one), since core NATS
//! drops what was published while disconnected. A slow-consumer event
//! means messages were dropped client-side: the same.

use super::Backoff;
use super::bridge::PublishError;
use super::follow::Follower;
use async_nats::Event;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Dead connections are noticed after a couple of missed pings.
const PING_INTERVAL: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a round trip confirming the subscription may take.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Subscriber {
    url: String,
    subject: String,
}

fn options(events: Option<mpsc::UnboundedSender<Event>>) -> async_nats::ConnectOptions {
    let options = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .max_reconnects(None)
        .ping_interval(PING_INTERVAL)
        .connection_timeout(CONNECT_TIMEOUT)
        // The client counts its attempts from 1 (and waits before the first
        // connect too): the same jittered delays as every other reconnect.
        .reconnect_delay_callback(|attempts| Backoff::delay(attempts.saturating_sub(1).try_into().unwrap_or(u32::MAX)));
    match events {
        None => options,
        Some(tx) => options.event_callback(move |event| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(event);
            }
        }),
    }
}

impl Subscriber {
    pub fn new(url: &str, subject: &str) -> Self {
        Subscriber { url: url.to_owned(), subject: subject.to_owned() }
    }

    /// Runs forever: connect, subscribe, apply; a client that gives up (it
    /// should not: reconnects are unlimited) is replaced after a backoff.
    pub async fn run(self, follower: Arc<Follower>) {
        let mut backoff = Backoff::new();
        loop {
            let end = self.session(&follower, &mut backoff).await;
            follower.down();
            let delay = backoff.step();
            tracing::warn!(error = %end, subject = %self.subject, retry_in_ms = delay.as_millis() as u64, "invalidation feed (nats) down");
            tokio::time::sleep(delay).await;
        }
    }

    async fn session(&self, follower: &Follower, backoff: &mut Backoff) -> String {
        let (tx, mut events) = mpsc::unbounded_channel();
        let client = match options(Some(tx)).connect(&self.url).await {
            Ok(c) => c,
            Err(e) => return format!("connect: {e}"),
        };
        let mut messages = match client.subscribe(self.subject.clone()).await {
            Ok(s) => s,
            Err(e) => return format!("subscribe: {e}"),
        };
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    None => return "event channel closed".into(),
                    Some(Event::Connected) => {
                        // The SUB is queued before this PING: once the PONG
                        // is back, the server knows the subscription.
                        match tokio::time::timeout(FLUSH_TIMEOUT, client.flush()).await {
                            Ok(Ok(())) => {
                                let outcome = follower.subscribed();
                                backoff.reset();
                                tracing::info!(subject = %self.subject, revision = follower.last_revision(), ?outcome, "invalidation feed (nats) subscribed");
                            }
                            _ => {
                                tracing::warn!("invalidation feed (nats): connected but the subscription was not confirmed; staying down");
                                follower.down();
                            }
                        }
                    }
                    Some(Event::Disconnected) | Some(Event::Closed) => follower.down(),
                    Some(Event::SlowConsumer(_)) => {
                        let outcome = follower.lost_messages();
                        tracing::warn!(?outcome, "invalidation feed (nats): slow consumer, messages dropped");
                    }
                    Some(other) => tracing::debug!(event = %other, "invalidation feed (nats) event"),
                },
                message = messages.next() => match message {
                    None => return "subscription ended".into(),
                    Some(m) => {
                        let outcome = follower.message(&m.payload);
                        tracing::debug!(?outcome, "invalidation message");
                    }
                },
            }
        }
    }
}

/// Publishes announcements on the subject (the bridge's side).
pub struct Publisher {
    client: async_nats::Client,
    subject: String,
}

impl Publisher {
    /// Connects in the background (a NATS that is down now is retried).
    pub async fn connect(url: &str, subject: &str) -> anyhow::Result<Self> {
        let client = options(None).connect(url).await.map_err(|e| anyhow::anyhow!("invalidation.url {url:?}: {e}"))?;
        Ok(Publisher { client, subject: subject.to_owned() })
    }

    /// Publishes one message and waits until the server has it.
    pub async fn publish(&self, payload: &[u8]) -> Result<(), PublishError> {
        self.client
            .publish(self.subject.clone(), bytes::Bytes::copy_from_slice(payload))
            .await
            .map_err(|e| PublishError(format!("publish: {e}")))?;
        match tokio::time::timeout(FLUSH_TIMEOUT, self.client.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(PublishError(format!("flush: {e}"))),
            Err(_) => Err(PublishError("flush timed out".into())),
        }
    }
}
