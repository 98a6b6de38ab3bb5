//! `cairn-admin status`.

use gateway::admin::Status;

use crate::api::{Api, parse};
use crate::jobs::{gc_line, lifecycle_line, rebalance_line, verify_line};

pub(crate) async fn status(api: &Api, json: bool) -> Result<(), String> {
    let body = api.get("/status").await?;
    let status: Status = parse(&body)?;
    if json {
        println!("{body}");
        return Ok(());
    }
    println!(
        "objects {}  bytes {}  buckets {}  gc queue {} ({} bytes)  repair queue {}",
        status.objects, status.bytes, status.buckets, status.gc_queue, status.gc_queue_bytes, status.repair_queue
    );
    println!("cluster {}  membership epoch {}", status.cluster_id, status.membership_epoch);
    println!("{:<18} {:<28} {:>6} {:<10} {:<8} free per subvolume", "volume", "url", "weight", "zone", "health");
    for volume in &status.volumes {
        let free: Vec<String> =
            volume.free_bytes.iter().map(|b| format!("{:.1} GiB", *b as f64 / (1u64 << 30) as f64)).collect();
        println!(
            "{:<18} {:<28} {:>6} {:<10} {:<8} {}",
            volume.id,
            volume.url,
            volume.weight,
            volume.zone.as_deref().unwrap_or("-"),
            if volume.healthy { "up" } else { "DOWN" },
            free.join(", ")
        );
    }
    println!("{:<18} {:<22} {:<22} {:>8}  last beat (its clock)", "gateway", "s3", "admin", "beats");
    for gateway in &status.gateways {
        let ago = gateway::time::now_ms().saturating_sub(gateway.beat_ms) as f64 / 1000.0;
        println!(
            "{:<18} {:<22} {:<22} {:>8}  {ago:.1} s ago",
            gateway.id, gateway.s3_address, gateway.admin_address, gateway.beats
        );
    }
    let jobs = &status.jobs;
    for line in [
        jobs.gc.as_ref().map(gc_line),
        jobs.verify.as_ref().map(verify_line),
        jobs.rebalance.as_ref().map(rebalance_line),
        jobs.lifecycle.as_ref().map(lifecycle_line),
    ]
    .into_iter()
    .flatten()
    {
        println!("{line}");
    }
    if status.volumes.iter().any(|v| !v.healthy) {
        return Err("some volumes are down".into());
    }
    Ok(())
}
