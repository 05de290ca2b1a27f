//! Every Prometheus series loggate exports (contract: Metrics), in one place. Label
//! values are closed vocabularies (routes, error codes, object types, org
//! ids); never a token or other caller-controlled free text.

mod sharded;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use sharded::Sharded;

pub struct Metrics {
    registry: Registry,
    /// The per-request series (for code outside the workers; each worker
    /// has its own copy, from [`Metrics::worker_copy`]).
    pub request: RequestMetrics,
    request_copies: Sharded<RequestMetrics>,
    pub policy_revision: IntGauge,
    pub invalidations: IntCounterVec,
    /// Unix milliseconds of the last policy load or revision (not exported
    /// itself; `loggate_policy_age_seconds` is computed from it).
    pub policy_last_load_unix: IntGauge,
    pub policy_reload_failures: IntCounter,
    pub policy_invalid_entries: IntGauge,
    pub rate_limited: IntCounter,
    /// Policy denials forwarded anyway for a shadowed organization.
    pub shadow_denials: IntCounterVec,
    pub audit_records: IntCounter,
    pub audit_dropped: IntCounter,
    pub revocation_lag_seconds: Histogram,
    /// Registered only when an invalidation feed is configured (§10).
    pub invalidation_feed_up: IntGauge,
}

/// The series every request touches. Each worker thread updates its own
/// copy; a scrape reports their sums (see `sharded`).
#[derive(Clone)]
pub struct RequestMetrics {
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub denials: IntCounterVec,
    pub decision_cache: IntCounterVec,
    pub rows: IntCounterVec,
    pub decision_seconds: Histogram,
    pub upstream_seconds: Histogram,
    /// Children of the vectors above resolved once
    /// (`with_label_values` hashes the labels and takes a lock per call).
    pub decision_hits: IntCounter,
    pub decision_misses: IntCounter,
    pub rows_forwarded: IntCounter,
    pub rows_denied: IntCounter,
    pub otel_spans: IntCounterVec,
    pub otel_spans_forwarded: IntCounter,
    pub otel_spans_denied: IntCounter,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0,
];
const DECISION_BUCKETS: &[f64] =
    &[0.000_001, 0.000_002_5, 0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.001, 0.01, 0.1, 1.0];
const LAG_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

impl Metrics {
    pub fn new(with_feed: bool) -> Self {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry.register(Box::new(g.clone())).expect("unique metric");
            g
        };
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec())).expect("valid");
            registry.register(Box::new(h.clone())).expect("unique metric");
            h
        };
        let policy_revision = gauge("loggate_policy_revision", "Revision of the policy in force.");
        let invalidations = counter_vec(
            "loggate_invalidations_total",
            "Cache invalidations applied, by change kind (or flush).",
            &["kind"],
        );
        let request_copies = Sharded::new(RequestMetrics::new);
        registry.register(Box::new(request_copies.clone())).expect("unique metric");
        // Not registered: the unix-ms time of the last load, read at scrape time
        // by the `loggate_policy_age_seconds` collector.
        let policy_last_load_unix = IntGauge::new("loggate_policy_last_load_ms", "internal holder").expect("valid");
        let policy_reload_failures = IntCounter::new(
            "loggate_policy_reload_failures_total",
            "Policy reloads refused (the last good policy stays in force).",
        )
        .expect("valid metric");
        registry.register(Box::new(policy_reload_failures.clone())).expect("unique metric");
        let shadow_denials = counter_vec(
            "loggate_shadow_denials_total",
            "Policy denials not enforced (shadow mode), by reason, object type and organization.",
            &["reason", "object_type", "org"],
        );
        let plain_counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let audit_records = plain_counter("loggate_audit_records_total", "Audit records written.");
        let audit_dropped =
            plain_counter("loggate_audit_dropped_total", "Audit records dropped (queue full or sink failing).");
        let policy_invalid_entries = gauge(
            "loggate_policy_invalid_entries",
            "Entries of the policy in force that break a rule and were left out.",
        );
        let rate_limited =
            IntCounter::new("loggate_rate_limited_total", "Requests refused by a rate limit.").expect("valid metric");
        registry.register(Box::new(rate_limited.clone())).expect("unique metric");
        let revocation_lag_seconds = histogram(
            "loggate_revocation_lag_seconds",
            "Time from a policy change's commit to its local invalidation.",
            LAG_BUCKETS,
        );
        let invalidation_feed_up =
            IntGauge::new("loggate_invalidation_feed_up", "1 while the invalidation feed is connected.")
                .expect("valid");
        if with_feed {
            registry.register(Box::new(invalidation_feed_up.clone())).expect("unique metric");
        }
        let metrics = Metrics {
            registry,
            request: request_copies.common(),
            request_copies,
            policy_revision,
            invalidations,
            policy_last_load_unix,
            policy_reload_failures,
            policy_invalid_entries,
            rate_limited,
            shadow_denials,
            audit_records,
            audit_dropped,
            revocation_lag_seconds,
            invalidation_feed_up,
        };
        metrics.register_policy_age();
        metrics
    }

    /// `loggate_policy_age_seconds` is computed at scrape time from the last
    /// successful load or revision.
    fn register_policy_age(&self) {
        let last = self.policy_last_load_unix.clone();
        let age = prometheus::core::GenericGauge::<prometheus::core::AtomicF64>::new(
            "loggate_policy_age_seconds",
            "Seconds since the last successful policy load or revision.",
        )
        .expect("valid metric");
        self.registry.register(Box::new(PolicyAge { gauge: age, last_load_ms: last })).expect("unique metric");
    }

    /// A copy of the per-request series for one worker thread.
    pub fn worker_copy(&self) -> RequestMetrics {
        self.request_copies.copy()
    }

    /// Records that the policy was (re)loaded or advanced to a new revision now.
    pub fn policy_loaded(&self, revision: u64) {
        self.policy_revision.set(revision as i64);
        self.policy_last_load_unix.set(crate::clock::now_ms());
    }

    /// Records that the policy was reloaded now without changing the
    /// revision gauge (which the invalidation feed owns when configured).
    pub fn policy_refreshed(&self) {
        self.policy_last_load_unix.set(crate::clock::now_ms());
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("encode metrics");
        out
    }
}

impl RequestMetrics {
    /// A fresh, unregistered copy.
    fn new() -> Self {
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec())).expect("valid metric")
        };
        let decision_cache =
            counter_vec("loggate_decision_cache_total", "Decision cache lookups by result.", &["result"]);
        let rows = counter_vec("loggate_rows_total", "Rows inspected, by outcome.", &["outcome"]);
        let otel_spans =
            counter_vec("loggate_otel_spans_total", "OpenTelemetry spans inspected, by outcome.", &["outcome"]);
        RequestMetrics {
            requests: counter_vec(
                "loggate_requests_total",
                "Requests answered, by route and status.",
                &["route", "status"],
            ),
            request_seconds: HistogramVec::new(
                HistogramOpts::new("loggate_request_seconds", "Request latency by route.")
                    .buckets(LATENCY_BUCKETS.to_vec()),
                &["route"],
            )
            .expect("valid metric"),
            denials: counter_vec(
                "loggate_denials_total",
                "Requests refused, by reason (error code), object type and organization.",
                &["reason", "object_type", "org"],
            ),
            decision_seconds: histogram(
                "loggate_decision_seconds",
                "Time to authorize one request's targets.",
                DECISION_BUCKETS,
            ),
            upstream_seconds: histogram(
                "loggate_upstream_seconds",
                "Time until the data plane's response headers.",
                LATENCY_BUCKETS,
            ),
            decision_hits: decision_cache.with_label_values(&["hit"]),
            decision_misses: decision_cache.with_label_values(&["miss"]),
            rows_forwarded: rows.with_label_values(&["forwarded"]),
            rows_denied: rows.with_label_values(&["denied"]),
            otel_spans_forwarded: otel_spans.with_label_values(&["forwarded"]),
            otel_spans_denied: otel_spans.with_label_values(&["denied"]),
            decision_cache,
            rows,
            otel_spans,
        }
    }

    fn families(&self) -> [&dyn Collector; 8] {
        [
            &self.requests,
            &self.request_seconds,
            &self.denials,
            &self.decision_cache,
            &self.rows,
            &self.otel_spans,
            &self.decision_seconds,
            &self.upstream_seconds,
        ]
    }
}

impl Collector for RequestMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.families().into_iter().flat_map(|f| f.desc()).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.families().into_iter().flat_map(|f| f.collect()).collect()
    }
}

/// A collector that reports the policy's age at scrape time.
struct PolicyAge {
    gauge: prometheus::core::GenericGauge<prometheus::core::AtomicF64>,
    last_load_ms: IntGauge,
}

impl prometheus::core::Collector for PolicyAge {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.gauge.desc()
    }
    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let last = self.last_load_ms.get();
        let age = if last == 0 { 0.0 } else { (crate::clock::now_ms().saturating_sub(last)).max(0) as f64 / 1000.0 };
        self.gauge.set(age);
        self.gauge.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_contract_names_and_hides_feed_gauge_without_feed() {
        let m = Metrics::new(false);
        m.request.requests.with_label_values(&["logs3", "200"]).inc();
        m.request.denials.with_label_values(&["permission_denied", "project_log", "org"]).inc();
        m.request.decision_hits.inc();
        m.request.rows_forwarded.inc();
        m.request.otel_spans_denied.inc_by(2);
        m.invalidations.with_label_values(&["flush"]).inc();
        m.request.request_seconds.with_label_values(&["logs3"]).observe(0.001);
        m.policy_loaded(3);
        let text = String::from_utf8(m.render()).unwrap();
        for name in [
            "loggate_requests_total",
            "loggate_denials_total",
            "loggate_decision_cache_total",
            "loggate_decision_seconds",
            "loggate_upstream_seconds",
            "loggate_rows_total",
            "loggate_otel_spans_total{outcome=\"denied\"} 2",
            "loggate_policy_revision 3",
            "loggate_invalidations_total",
            "loggate_request_seconds",
            "loggate_policy_age_seconds",
            "loggate_rate_limited_total",
            "loggate_revocation_lag_seconds",
        ] {
            assert!(text.contains(name), "missing {name}");
        }
        assert!(!text.contains("loggate_invalidation_feed_up"));
        assert!(String::from_utf8(Metrics::new(true).render()).unwrap().contains("loggate_invalidation_feed_up"));
    }

    #[test]
    fn worker_copies_are_summed_at_scrape_time() {
        let m = Metrics::new(false);
        let (a, b) = (m.worker_copy(), m.worker_copy());
        m.request.requests.with_label_values(&["logs3", "200"]).inc();
        a.requests.with_label_values(&["logs3", "200"]).inc_by(2);
        b.requests.with_label_values(&["logs3", "200"]).inc_by(4);
        b.requests.with_label_values(&["logs3", "403"]).inc();
        a.decision_hits.inc();
        b.decision_hits.inc_by(2);
        b.decision_misses.inc();
        a.request_seconds.with_label_values(&["logs3"]).observe(0.000_2);
        b.request_seconds.with_label_values(&["logs3"]).observe(0.003);
        b.request_seconds.with_label_values(&["logs3"]).observe(0.003);
        let text = String::from_utf8(m.render()).unwrap();
        for line in [
            r#"loggate_requests_total{route="logs3",status="200"} 7"#,
            r#"loggate_requests_total{route="logs3",status="403"} 1"#,
            r#"loggate_decision_cache_total{result="hit"} 3"#,
            r#"loggate_decision_cache_total{result="miss"} 1"#,
            r#"loggate_request_seconds_bucket{route="logs3",le="0.00025"} 1"#,
            r#"loggate_request_seconds_bucket{route="logs3",le="0.005"} 3"#,
            r#"loggate_request_seconds_count{route="logs3"} 3"#,
            r#"loggate_request_seconds_sum{route="logs3"} 0.0062"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert_eq!(text.matches("# TYPE loggate_requests_total counter").count(), 1, "one family, not one per copy");
    }
}
