//! Steady open-loop load for fleet measurements: one `/logs3` write every
//! `1 / rate` seconds to one replica, each from a random token of a given
//! set, sent whether or not earlier ones have answered (a slow gateway
//! does not slow the load down, as with real clients). Every answer is
//! recorded with when it was sent, so a test can cut the run into windows.

use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// One request: when it was sent, how long it took, what it answered
/// (0: no HTTP answer at all).
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub sent: Instant,
    pub latency: Duration,
    pub status: u16,
}

/// A token and the project its writes go to.
#[derive(Debug, Clone)]
pub struct Writer {
    pub token: String,
    pub project_id: String,
}

pub struct Load {
    samples: Arc<Mutex<Vec<Sample>>>,
    task: JoinHandle<()>,
}

impl Load {
    /// Starts `rate` requests per second to `url` (a replica's public URL).
    pub fn start(url: &str, writers: Vec<Writer>, rate: u32) -> Load {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
        let (url, recorded) = (format!("{url}/logs3"), samples.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
            // Late ticks are sent at once: the rate holds on average.
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            loop {
                tick.tick().await;
                let w = &writers[fastrand::usize(..writers.len())];
                let body = json!({"rows": [{"id": "r", "project_id": w.project_id, "log_id": "g"}], "api_version": 2});
                let request = http.post(&url).bearer_auth(&w.token).json(&body);
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let sent = Instant::now();
                    let status = match request.send().await {
                        Ok(r) => r.status().as_u16(),
                        Err(_) => 0,
                    };
                    recorded.lock().unwrap().push(Sample { sent, latency: sent.elapsed(), status });
                });
            }
        });
        Load { samples, task }
    }

    /// The answers to requests sent within `[from, to)`, so far.
    pub fn window(&self, from: Instant, to: Instant) -> Window {
        let samples = self.samples.lock().unwrap().iter().filter(|s| s.sent >= from && s.sent < to).copied().collect();
        Window { samples }
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The answers of one stretch of time.
#[derive(Debug)]
pub struct Window {
    pub samples: Vec<Sample>,
}

impl Window {
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Answers other than 200, by status.
    pub fn failures(&self) -> Vec<(u16, usize)> {
        let mut by_status = std::collections::BTreeMap::new();
        for s in self.samples.iter().filter(|s| s.status != 200) {
            *by_status.entry(s.status).or_insert(0) += 1;
        }
        by_status.into_iter().collect()
    }

    /// The `p` quantile (0..=1) of the latencies.
    pub fn quantile(&self, p: f64) -> Duration {
        let mut l: Vec<Duration> = self.samples.iter().map(|s| s.latency).collect();
        l.sort();
        match l.len() {
            0 => Duration::ZERO,
            n => l[((n as f64 * p).ceil() as usize).clamp(1, n) - 1],
        }
    }
}
