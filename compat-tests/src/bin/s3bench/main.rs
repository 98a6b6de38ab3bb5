//! A small S3 load generator for benchmarks (not a test): `clients` concurrent aws-sdk-s3
//! clients, spread round-robin over one or more endpoints, each running one operation in a
//! loop for a fixed time; prints operations per second and latency percentiles.
//!
//! ```text
//! s3bench ENDPOINT[,ENDPOINT…] put|get|head|head-missing|mixed|list SECONDS [CLIENTS] [SIZE] [BUCKET]
//! ```
//! `put` writes keys `bench/{client}/{n}` of SIZE bytes (default 4096); `get` and `head` read the
//! keys a previous `put` run wrote (their count is listed first); `head-missing` asks for keys
//! that do not exist; `mixed` cycles put, get, delete in equal shares over keys
//! `mixed/{client}/{n}` (each get reads the client's newest key, each delete removes its
//! oldest), counting every operation; `list` pages through the bucket with ListObjectsV2 (1,000 keys a page),
//! timing each page. Credentials: the test harness's root key unless `AWS_ACCESS_KEY_ID` and
//! `AWS_SECRET_ACCESS_KEY` are set.
//!
//! `S3BENCH_CLIENT=lean` runs put, get, head, head-missing and mixed through a lean SigV4 client
//! (`lean.rs`) instead of aws-sdk-s3, whose own CPU use would otherwise dominate a small
//! machine; setup and `list` always use the SDK.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use bytes::Bytes;

mod lean;

fn credentials() -> (String, String) {
    let access = std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| compat_tests::ACCESS_KEY.into());
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|_| compat_tests::SECRET_KEY.into());
    (access, secret)
}

fn client(endpoint: &str) -> Client {
    let (access, secret) = credentials();
    compat_tests::s3_client(endpoint, &access, &secret)
}

/// What one worker sends its requests through.
enum Target {
    Sdk(Client),
    Lean(Box<lean::Lean>),
}

impl Target {
    fn new(endpoint: &str) -> Self {
        match std::env::var("S3BENCH_CLIENT").as_deref() {
            Ok("lean") => {
                let (access, secret) = credentials();
                Self::Lean(Box::new(lean::Lean::new(endpoint, &access, &secret)))
            }
            Ok("sdk") | Err(_) => Self::Sdk(client(endpoint)),
            Ok(other) => panic!("S3BENCH_CLIENT={other}: lean or sdk"),
        }
    }

    fn sdk(&self) -> &Client {
        match self {
            Self::Sdk(s3) => s3,
            Self::Lean(_) => panic!("this operation runs only with the SDK client"),
        }
    }

    async fn put(&self, bucket: &str, key: &str, data: &Bytes) -> bool {
        match self {
            Self::Sdk(s3) => s3.put_object().bucket(bucket).key(key).body(data.clone().into()).send().await.is_ok(),
            Self::Lean(lean) => lean.put(bucket, key, data.clone()).await,
        }
    }

    async fn get(&self, bucket: &str, key: &str, size: usize) -> bool {
        match self {
            Self::Sdk(s3) => match s3.get_object().bucket(bucket).key(key).send().await {
                Ok(got) => got.body.collect().await.is_ok_and(|body| body.into_bytes().len() == size),
                Err(_) => false,
            },
            Self::Lean(lean) => lean.get(bucket, key, size).await,
        }
    }

    /// The HEAD's status, `None` if the request failed.
    async fn head(&self, bucket: &str, key: &str) -> Option<u16> {
        match self {
            Self::Sdk(s3) => match s3.head_object().bucket(bucket).key(key).send().await {
                Ok(_) => Some(200),
                Err(e) => e.raw_response().map(|r| r.status().as_u16()),
            },
            Self::Lean(lean) => lean.head(bucket, key).await.map(|status| status.as_u16()),
        }
    }

    async fn delete(&self, bucket: &str, key: &str) -> bool {
        match self {
            Self::Sdk(s3) => s3.delete_object().bucket(bucket).key(key).send().await.is_ok(),
            Self::Lean(lean) => lean.delete(bucket, key).await,
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at].as_secs_f64() * 1000.0
}

async fn existing_keys(s3: &Client, bucket: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut pages = s3.list_objects_v2().bucket(bucket).prefix("bench/").into_paginator().send();
    while let Some(page) = pages.next().await {
        keys.extend(page.unwrap().contents().iter().map(|o| o.key().unwrap().to_string()));
    }
    keys
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!(
            "usage: s3bench ENDPOINT[,ENDPOINT…] put|get|head|head-missing|mixed|list SECONDS [CLIENTS] [SIZE] [BUCKET]"
        );
        std::process::exit(2);
    }
    let endpoints: Vec<String> = args[1].split(',').map(str::to_string).collect();
    let op = args[2].clone();
    let seconds: f64 = args[3].parse().expect("SECONDS");
    let clients: usize = args.get(4).map_or(16, |c| c.parse().expect("CLIENTS"));
    let size: usize = args.get(5).map_or(4096, |s| s.parse().expect("SIZE"));
    let bucket = args.get(6).cloned().unwrap_or_else(|| "bench".into());
    let first = client(&endpoints[0]);
    if op == "put" || op == "mixed" {
        // Already there is fine.
        let _ = first.create_bucket().bucket(&bucket).send().await;
    }
    let keys = if op == "get" || op == "head" { existing_keys(&first, &bucket).await } else { Vec::new() };
    if (op == "get" || op == "head") && keys.is_empty() {
        eprintln!("no keys under bench/ in {bucket}: run put first");
        std::process::exit(2);
    }
    let keys = std::sync::Arc::new(keys);
    // S3BENCH_OBJECTS=N: `put` stops after N objects in all, however long that takes.
    let objects: Option<usize> = std::env::var("S3BENCH_OBJECTS").ok().map(|n| n.parse().expect("S3BENCH_OBJECTS"));
    let issued = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let data = Bytes::from(compat_tests::test_bytes(size, 7));
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let workers = (0..clients).map(|c| {
        let s3 = Target::new(&endpoints[c % endpoints.len()]);
        let (op, bucket, keys, data, issued) = (op.clone(), bucket.clone(), keys.clone(), data.clone(), issued.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut n = 0usize;
            let mut token: Option<String> = None;
            let mut written = std::collections::VecDeque::<String>::new();
            while Instant::now() < until {
                if objects.is_some_and(|limit| issued.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= limit) {
                    break;
                }
                let t = Instant::now();
                let ok = match op.as_str() {
                    "put" => s3.put(&bucket, &format!("bench/{c}/{n}"), &data).await,
                    "get" => s3.get(&bucket, &keys[(c * 7919 + n) % keys.len()], size).await,
                    "head" => s3.head(&bucket, &keys[(c * 7919 + n) % keys.len()]).await == Some(200),
                    "head-missing" => s3.head(&bucket, &format!("missing/{c}/{n}")).await == Some(404),
                    "mixed" => match (n % 3, written.back(), written.front()) {
                        (1, Some(newest), _) => s3.get(&bucket, newest, size).await,
                        (2, _, Some(oldest)) => {
                            let ok = s3.delete(&bucket, oldest).await;
                            written.pop_front();
                            ok
                        }
                        _ => {
                            let key = format!("mixed/{c}/{n}");
                            let ok = s3.put(&bucket, &key, &data).await;
                            written.push_back(key);
                            ok
                        }
                    },
                    "list" => {
                        match s3
                            .sdk()
                            .list_objects_v2()
                            .bucket(&bucket)
                            .set_continuation_token(token.clone())
                            .send()
                            .await
                        {
                            Ok(page) => {
                                token = page.next_continuation_token().map(str::to_string);
                                true
                            }
                            Err(_) => false,
                        }
                    }
                    other => panic!("unknown operation {other}"),
                };
                if ok {
                    latencies.push(t.elapsed());
                } else {
                    errors += 1;
                }
                n += 1;
            }
            (latencies, errors)
        })
    });
    let mut latencies = Vec::new();
    let mut errors = 0;
    for worker in futures::future::join_all(workers).await {
        let (l, e) = worker.unwrap();
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    println!(
        "{op:<12} {:>8.0} ops/s  ({} ok, {errors} errors, {clients} clients, {} endpoint(s), {size} B)  p50 {:.2} ms  p99 {:.2} ms",
        latencies.len() as f64 / elapsed,
        latencies.len(),
        endpoints.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
    );
}
