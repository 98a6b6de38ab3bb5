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
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
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

/// The `# HELP` text of every Cairn metric (the gateway's and the volume daemon's: a process
/// shows those it records).
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!("cairn_s3_requests_total", "S3 requests answered, by operation and status");
    describe_histogram!("cairn_s3_request_duration_seconds", "Time from request to the answer's head, by operation");
    describe_counter!("cairn_s3_received_bytes_total", "Request body bytes announced by S3 clients");
    describe_counter!("cairn_s3_sent_bytes_total", "Response body bytes announced to S3 clients");
    describe_gauge!("cairn_s3_requests_in_flight", "S3 requests being handled");
    describe_counter!(
        "cairn_volume_client_requests_total",
        "Requests to volume daemons, by volume, operation and outcome (ok, error_status, error, timeout)"
    );
    describe_gauge!("cairn_volume_up", "Whether the gateway takes the volume to be up (1) or down (0)");
    describe_counter!("cairn_read_failovers_total", "Reads resumed from another replica after one failed mid-stream");
    describe_gauge!("cairn_repair_queue_length", "Blobs in the repair queue at the repairer's last full walk");
    describe_histogram!("cairn_index_commit_seconds", "Time to commit one index transaction");
    describe_counter!("cairn_volume_requests_total", "Requests a volume daemon answered, by operation and status");
    describe_histogram!("cairn_volume_request_seconds", "Time a volume daemon took to answer, by operation");
    describe_counter!("cairn_volume_blob_writes_total", "Blobs written");
    describe_counter!("cairn_volume_blob_written_bytes_total", "Data bytes of blobs written");
    describe_counter!("cairn_volume_blob_reads_total", "Blob reads started");
    describe_counter!("cairn_volume_blob_read_bytes_total", "Data bytes asked for by blob reads");
    describe_histogram!("cairn_volume_fsync_seconds", "Time of one fsync, by file kind (segment, blob, commit_log)");
    describe_gauge!("cairn_volume_free_bytes", "Bytes available to the daemon, per subvolume");
    describe_gauge!("cairn_volume_size_bytes", "Size of the file system, per subvolume");
}
