//! The background jobs a gateway runs for `cairn-admin`: gc, rebalance, verify and
//! lifecycle, followed to the end with a progress line.

use std::time::Duration;

use gateway::admin::gc::{GcProgress, GcRequest};
use gateway::admin::jobs::Progress;
use gateway::admin::lifecycle::LifecycleProgress;
use gateway::admin::rebalance::{RebalanceProgress, RebalanceRequest};
use gateway::admin::verify::{VerifyProgress, VerifyRequest};

use crate::api::{Api, parse};

/// Where a job runs (or ran), for its line: `  on ADDRESS`, and how often it was taken over.
pub(crate) fn owner_of(status: &gateway::admin::jobs::JobStatus) -> String {
    let mut out = String::new();
    if !status.owner_address.is_empty() {
        out.push_str(&format!("  on {}", status.owner_address));
    }
    if status.takeovers > 0 {
        out.push_str(&format!(" (taken over {})", count(status.takeovers, "time", "times")));
    }
    out
}

pub(crate) fn gc_line(p: &GcProgress) -> String {
    format!(
        "gc {}: uploads aborted {}  queue {}/{}  listed {}  orphans {} ({} bytes)  tombstones {} (buckets {})  deleted {}  errors {}",
        p.status.state,
        p.uploads_aborted,
        p.queue_done,
        p.queue_total,
        p.blobs_listed,
        p.orphans,
        p.orphan_bytes,
        p.tombstones,
        p.bucket_tombstones,
        p.deleted,
        p.status.errors
    ) + &owner_of(&p.status)
}

pub(crate) async fn gc(api: &Api, grace: Duration, dry_run: bool, as_json: bool) -> Result<(), String> {
    let body = GcRequest { grace_secs: Some(grace.as_secs()), dry_run };
    run_job::<GcProgress>(api, "gc", &body, as_json, gc_line).await.map(drop)
}

pub(crate) fn lifecycle_line(p: &LifecycleProgress) -> String {
    format!(
        "lifecycle {}: buckets {}/{}  objects {}  expired {}  noncurrent deleted {}  markers removed {}  uploads aborted {}  kept by object lock {}  errors {}",
        p.status.state,
        p.buckets_done,
        p.buckets,
        p.objects_scanned,
        p.expired,
        p.noncurrent_deleted,
        p.markers_removed,
        p.uploads_aborted,
        p.locked,
        p.status.errors
    ) + &owner_of(&p.status)
}

/// Applies every bucket's lifecycle rules now (the gateway also does once a lifecycle day).
pub(crate) async fn lifecycle(api: &Api, as_json: bool) -> Result<(), String> {
    run_job::<LifecycleProgress>(api, "lifecycle", &serde_json::json!({}), as_json, lifecycle_line).await.map(drop)
}

/// `1 bucket`, `2 buckets`.
pub(crate) fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub(crate) fn rebalance_line(p: &RebalanceProgress) -> String {
    let verb = if p.dry_run { "would move" } else { "moved" };
    // What the entries are, so that their total is not read as an object count: the objects
    // are `status`'s objects, the rest are the other records that name blobs.
    let mut kinds = vec![count(p.objects, "object", "objects")];
    for (n, one, many) in [
        (p.deleted_keys, "deleted key", "deleted keys"),
        (p.buckets, "bucket", "buckets"),
        (p.deleted_buckets, "deleted bucket", "deleted buckets"),
    ] {
        if n > 0 {
            kinds.push(count(n, one, many));
        }
    }
    format!(
        "rebalance {}: entries {}/{} ({})  misplaced {}  {verb} {} blobs, {} bytes  changed meanwhile {}  errors {}",
        p.status.state,
        p.entries_done,
        p.entries_total,
        kinds.join(", "),
        p.entries_misplaced,
        p.blobs_moved,
        p.bytes_moved,
        p.skipped_changed,
        p.status.errors
    ) + &owner_of(&p.status)
}

pub(crate) async fn rebalance(api: &Api, dry_run: bool, rate: Option<f64>, as_json: bool) -> Result<(), String> {
    let body = RebalanceRequest { dry_run, rate_mb_s: rate };
    let progress = run_job::<RebalanceProgress>(api, "rebalance", &body, as_json, rebalance_line).await?;
    if !as_json && progress.upload_parts > 0 {
        println!(
            "parts of uploads in progress: {}, misplaced {} (not moved: a part moves with its object once its upload completes)",
            progress.upload_parts, progress.upload_parts_misplaced
        );
    }
    if !as_json && !dry_run {
        let seconds = progress
            .status
            .finished_ms
            .unwrap_or(progress.status.started_ms)
            .saturating_sub(progress.status.started_ms) as f64
            / 1000.0;
        println!(
            "{:.1} s: {:.0} entries/s, {:.1} MB/s",
            seconds,
            progress.entries_done as f64 / seconds.max(1e-3),
            progress.bytes_moved as f64 / 1e6 / seconds.max(1e-3)
        );
    }
    Ok(())
}

pub(crate) fn verify_line(p: &VerifyProgress) -> String {
    format!(
        "verify {}: objects {}/{}  replicas {}  bytes {}  missing {}  corrupt {}  repaired {}  errors {}",
        p.status.state,
        p.objects_done,
        p.objects_total,
        p.replicas_checked,
        p.bytes_checked,
        p.missing,
        p.corrupt,
        p.repaired,
        p.status.errors
    ) + &owner_of(&p.status)
}

pub(crate) async fn verify(api: &Api, repair: bool, as_json: bool) -> Result<(), String> {
    let progress = run_job::<VerifyProgress>(api, "verify", &VerifyRequest { repair }, as_json, verify_line).await?;
    if !as_json {
        for problem in &progress.problems {
            println!("  {problem}");
        }
    }
    let bad = progress.missing + progress.corrupt;
    if bad > progress.repaired {
        return Err(format!("{} replicas missing or corrupt, {} repaired", bad, progress.repaired));
    }
    Ok(())
}

/// Starts a background job on the gateway and follows it to the end, printing one progress
/// line per change (rewritten in place on a terminal, a line each in a log).
pub(crate) async fn run_job<P>(
    api: &Api,
    kind: &str,
    body: &impl serde::Serialize,
    as_json: bool,
    line_of: impl Fn(&P) -> String,
) -> Result<P, String>
where
    P: Progress + serde::de::DeserializeOwned + serde::Serialize,
{
    let path = format!("/jobs/{kind}");
    api.post(&path, body).await?;
    // A bar on a terminal; in a log (or with --json) no bar, but a line per change.
    let terminal = !as_json && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let bar = terminal.then(|| {
        let bar = indicatif::ProgressBar::new(0);
        let style = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} {wide_msg}");
        if let Ok(style) = style {
            bar.set_style(style);
        }
        bar
    });
    let mut last_line = String::new();
    let mut progress = loop {
        let progress: Option<P> = parse(&api.get(&path).await?)?;
        let mut progress = progress.ok_or("the gateway forgot the job (restarted?)")?;
        let line = line_of(&progress);
        match &bar {
            Some(bar) => {
                let (done, total) = progress.done_of();
                bar.set_length(total);
                bar.set_position(done);
                bar.set_message(line);
            }
            None if !as_json && line != last_line => {
                println!("{line}");
                last_line = line;
            }
            None => {}
        }
        if progress.status().state != "running" {
            break progress;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
        println!("{}", line_of(&progress));
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&progress).map_err(|e| e.to_string())?);
    }
    let status = progress.status().clone();
    match (status.state.as_str(), status.errors) {
        ("done", 0) => Ok(progress),
        ("done", n) => Err(format!("{kind} finished with {n} errors; last: {}", status.last_error.unwrap_or_default())),
        _ => Err(format!("{kind} {}: {}", status.state, status.last_error.unwrap_or_default())),
    }
}
