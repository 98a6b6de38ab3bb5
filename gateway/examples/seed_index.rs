//! Benchmark helper (not a test): fills bucket `big` of a fresh index with N object records,
//! straight into the index (no volumes; the blobs they name do not exist), so that listing
//! speed can be measured on a large bucket without writing N objects through S3.
//!
//! ```text
//! cargo run --release --example seed_index -- rocksdb:/tmp/idx|postgres://… 1000000 [VERSIONS]
//! ```
//! Keys are `dir{i % 100}/obj{i:08}`: a hundred common prefixes, a million keys. With
//! VERSIONS above 1 the bucket has versioning enabled and each key that many versions: the
//! current one and VERSIONS - 1 noncurrent ones.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use gateway::config::IndexLocation;
use gateway::engine::Engine;
use gateway::index::Index;
use gateway::index::records::{
    BlobRef, BucketEntry, BucketRecord, ObjectEntry, ObjectRecord, Replica, SystemHeaders, Version, Versioning,
};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let location = IndexLocation::parse(args.get(1).expect("INDEX (rocksdb:DIR or postgres://…)")).unwrap();
    let count: u64 = args.get(2).map_or(1_000_000, |n| n.parse().expect("COUNT"));
    let versions: u64 = args.get(3).map_or(1, |n| n.parse().expect("VERSIONS")).max(1);
    let engine: Arc<dyn Engine> = match &location {
        IndexLocation::RocksDb(dir) => Arc::new(gateway::engine::rocks::RocksEngine::open(dir).unwrap()),
        IndexLocation::Postgres(url) => {
            Arc::new(gateway::engine::postgres::PostgresEngine::connect(url).await.unwrap())
        }
    };
    let index = Index::with_engine(engine).await.unwrap();
    let started = std::time::Instant::now();
    let ts = index.next_ts();
    let mut restore = index.restore();
    let versioning = if versions > 1 { Versioning::Enabled } else { Versioning::Unversioned };
    let version = if versions > 1 { Version::Id } else { Version::Unversioned };
    let bucket =
        BucketEntry::Live(BucketRecord { created_ms: ts / 1000, ts, blob: None, versioning, ..Default::default() });
    restore.bucket("big", &bucket).await.unwrap();
    for i in 0..count {
        let key = format!("dir{}/obj{i:08}", i % 100);
        for v in 0..versions {
            let n = i * versions + v;
            let record = ObjectRecord {
                ts: ts + n + 1,
                modified_ms: ts / 1000,
                size: 4096,
                etag: format!("{n:032x}"),
                sha256: String::new(),
                headers: SystemHeaders::default(),
                user_meta: vec![],
                tags: vec![],
                checksum: None,
                parts: vec![],
                blob: BlobRef {
                    // Spread over the id space like the gateway's random ids (jobs slice by id).
                    id: format!("{:032x}", u128::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)),
                    replicas: vec![Replica { volume: "none".into(), subvolume: 0 }],
                },
                tags_blob: None,
                version,
                lock: Default::default(),
                lock_blob: None,
                acl: None,
                acl_blob: None,
            };
            let entry = ObjectEntry::Live(Box::new(record));
            if v + 1 == versions {
                restore.object("big", &key, &entry).await.unwrap();
            } else {
                restore.noncurrent("big", &key, &entry).await.unwrap();
            }
        }
    }
    restore.finish(ts + count * versions + 1).await.unwrap();
    println!(
        "seeded {count} objects of {versions} versions each into bucket big of {location:?} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
