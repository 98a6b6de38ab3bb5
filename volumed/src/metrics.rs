//! Prometheus metrics for every Cairn daemon: a process-wide recorder (the `metrics` facade,
//! so any module records with `metrics::counter!` and friends without plumbing) rendered in
//! the Prometheus text format by `GET /metrics`. Names follow Prometheus conventions:
//! `cairn_` prefix, `_total` counters, `_seconds` histograms, `_bytes` sizes.
//!
//! `/metrics` needs no credentials, like `/health`: it carries counts and latencies, never a
//! bucket, key, or secret, and it is served on listeners meant to stay private (the gateway's
//! admin listener, the volume daemon's cluster listener).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Histogram buckets for latencies: 100 µs to 30 s.
const LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's recorder (once; later calls return the same handle). `None` if
/// another recorder was installed first, in which case metrics are not collected.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(err) => {
                    tracing::warn!(%err, "metrics recorder not installed; /metrics stays empty");
                    None
                }
            }
        })
        .as_ref()
}

/// The metrics in the Prometheus text format (exposition format 0.0.4).
pub fn render() -> String {
    install()
        .map(|handle| {
            handle.run_upkeep();
            handle.render()
        })
        .unwrap_or_default()
}

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
