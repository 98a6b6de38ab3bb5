//! Small-blob write throughput and latency: a file per blob against packed segments.
//!
//! ```text
//! cargo run --release -p cairn-volumed --example pack_bench -- [SECONDS] [DIR]
//! ```
//!
//! 16 concurrent writers put 4 KiB blobs (size announced, as the gateway does) for SECONDS
//! (default 10) into a fresh subvolume under DIR (default: the system temp directory; it must
//! be a real disk, not tmpfs, or fsync costs nothing), once with packing off and once on, and
//! print writes per second and the median and 99th percentile latency of each.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use volumed::{OpenOptions, PackOptions, Store};

const WRITERS: usize = 16;
const BLOB: usize = 4096;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(10);
    let parent = args.next().map_or_else(std::env::temp_dir, PathBuf::from);
    println!("{WRITERS} writers, {BLOB}-byte blobs, {seconds} s each, under {}", parent.display());
    for (name, pack_threshold) in [("file per blob", 0), ("packed", PackOptions::default().pack_threshold)] {
        let dir = tempfile::tempdir_in(&parent)?;
        let pack = PackOptions { pack_threshold, ..PackOptions::default() };
        let store = Arc::new(Store::open_with(
            &[dir.path().join("sv")],
            OpenOptions { init: true, allow_shared_fs: true },
            pack,
        )?);
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let data = Bytes::from(vec![0x5a; BLOB]);
                    let mut latencies = Vec::new();
                    while Instant::now() < deadline {
                        let id = hex::encode(rand::random::<[u8; 16]>());
                        let body = futures::stream::iter([Ok::<_, String>(data.clone())]);
                        let start = Instant::now();
                        store.write(0, &id, b"{}", Some(BLOB as u64), body).await?;
                        latencies.push(start.elapsed());
                    }
                    Ok::<_, volumed::Error>(latencies)
                })
            })
            .collect();
        let mut latencies = Vec::new();
        for writer in writers {
            latencies.extend(writer.await??);
        }
        let elapsed = started.elapsed().as_secs_f64();
        latencies.sort_unstable();
        let at = |q: f64| latencies.get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)));
        let ms = |d: Option<&Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
        println!(
            "{name:>14}: {:>8.0} writes/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} writes)",
            latencies.len() as f64 / elapsed,
            ms(at(0.50)),
            ms(at(0.99)),
            latencies.len()
        );
    }
    Ok(())
}
