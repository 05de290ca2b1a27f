//! Waiting on conditions, not on the clock: [`until`] polls a probe until it
//! reports what the story waits for and returns that, or fails after a
//! limit naming what was awaited (and the last thing the probe saw).
//!
//! A probe answers with a `bool`, an `Option<T>` (`Some(value)`: there) or a
//! `Result<T, E>` (`Err(e)`: not yet, `e` is what it saw, shown on failure).
//!
//! Sleeps remain only where the passing of time is itself the behaviour
//! under test (a rate-limit bucket refilling, a staleness bound running out,
//! a slow client dribbling bytes); those are named constants at their use.

use std::fmt::{Debug, Display};
use std::time::{Duration, Instant};

/// How often [`until`] asks again.
pub const EVERY: Duration = Duration::from_millis(20);

/// What a probe answers.
pub trait Probe {
    type Value;
    /// `Ok(value)` when the condition holds; else what was seen, if anything.
    fn outcome(self) -> Result<Self::Value, Option<String>>;
}

impl Probe for bool {
    type Value = ();
    fn outcome(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

impl<T> Probe for Option<T> {
    type Value = T;
    fn outcome(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: Debug> Probe for Result<T, E> {
    type Value = T;
    fn outcome(self) -> Result<T, Option<String>> {
        self.map_err(|seen| Some(format!("{seen:?}")))
    }
}

/// Polls `probe` every [`EVERY`] until it holds; returns its value. Panics
/// with `what` (and the last answer) once `within` has passed.
pub async fn until<P: Probe>(what: impl Display, within: Duration, probe: impl AsyncFnMut() -> P) -> P::Value {
    until_every(what, within, EVERY, probe).await
}

/// [`until`], asking every `every` (for probes that are costly or slow to change).
pub async fn until_every<P: Probe>(
    what: impl Display,
    within: Duration,
    every: Duration,
    mut probe: impl AsyncFnMut() -> P,
) -> P::Value {
    let started = Instant::now();
    loop {
        match probe().await.outcome() {
            Ok(value) => return value,
            Err(seen) if started.elapsed() >= within => match seen {
                Some(seen) => panic!("{what}: not within {within:?} (last seen: {seen})"),
                None => panic!("{what}: not within {within:?}"),
            },
            Err(_) => {}
        }
        tokio::time::sleep(every).await;
    }
}
