//! Chaos: 16 clients put, overwrite, read, head, delete and upload multipart objects on a few
//! hundred keys while the test SIGKILLs and restarts a random volume, or the gateway, every
//! few seconds. Every operation's outcome goes into a ledger; every read is checked against
//! it as it happens, and the final state of every key at the end:
//!
//! - a read returns a version that may be current: the last acknowledged write of the key,
//!   or a later write whose outcome the client never learned (timed out, connection cut);
//! - a body is always a whole version as written (each body names its version in its first
//!   bytes, and the rest is checked byte for byte): never torn, never invented;
//! - a write the gateway refused (an error answer) is never visible;
//! - after the faults stop, `gc` and `verify` find every object at its full replica count.
//!
//! Each key belongs to one client, which works on it one operation at a time, so the ledger
//! of a key is a sequence. `CAIRN_CHAOS_SECS` sets the duration (default 60).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use compat_tests::{TestCluster, client_without_retries, test_bytes};
use md5::{Digest, Md5};
use rand::Rng;

const CLIENTS: usize = 16;
const KEYS_PER_CLIENT: usize = 16;
const PART: usize = 5 * 1024 * 1024;
const HEADER: usize = 24;

/// The bytes of one version: a header naming key and version, then deterministic noise.
fn version_bytes(key: usize, version: u64, len: usize) -> Vec<u8> {
    let mut bytes = test_bytes(len, (key as u64) << 32 | version);
    let header = format!("k{key:06}v{version:016}");
    bytes[..HEADER].copy_from_slice(header.as_bytes());
    bytes
}

fn parse_header(bytes: &[u8]) -> Option<(usize, u64)> {
    let text = std::str::from_utf8(bytes.get(..HEADER)?).ok()?;
    Some((text.get(1..7)?.parse().ok()?, text.get(8..24)?.parse().ok()?))
}

/// How a request ended, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A success answer.
    Acked,
    /// An error answer from the gateway: the write did not happen.
    Refused,
    /// No answer (timeout, connection cut): it may or may not have happened.
    Unknown,
}

fn outcome<T, E>(result: &Result<T, SdkError<E>>) -> Outcome {
    match result {
        Ok(_) => Outcome::Acked,
        Err(SdkError::ServiceError(_)) => Outcome::Refused,
        Err(_) => Outcome::Unknown,
    }
}

/// One write in a key's ledger: the version it wrote (`None`: a delete) and how it ended.
#[derive(Debug, Clone, Copy)]
struct Write {
    version: Option<(u64, usize)>,
    outcome: Outcome,
}

/// The states a key may be in after `writes`: the last acknowledged one (or absent before
/// any), and every later one whose outcome is unknown.
fn allowed(writes: &[Write]) -> Vec<Option<(u64, usize)>> {
    let last_acked = writes.iter().rposition(|w| w.outcome == Outcome::Acked);
    let mut states = vec![last_acked.and_then(|i| writes[i].version)];
    let after = last_acked.map_or(0, |i| i + 1);
    states.extend(writes[after..].iter().filter(|w| w.outcome == Outcome::Unknown).map(|w| w.version));
    states
}

#[derive(Default)]
struct Stats {
    ops: u64,
    acked: u64,
    refused: u64,
    unknown: u64,
    reads_ok: u64,
    reads_failed: u64,
    violations: Vec<String>,
    /// (start, ok) of every request, for availability per window.
    timeline: Vec<(Instant, bool)>,
}

struct Client {
    id: usize,
    s3: aws_sdk_s3::Client,
    ledger: HashMap<usize, Vec<Write>>,
    next_version: u64,
    stats: Arc<Mutex<Stats>>,
}

impl Client {
    fn key_name(key: usize) -> String {
        format!("key-{key:06}")
    }

    fn note(&self, started: Instant, outcome: Outcome) {
        let mut stats = self.stats.lock().unwrap();
        stats.ops += 1;
        match outcome {
            Outcome::Acked => stats.acked += 1,
            Outcome::Refused => stats.refused += 1,
            Outcome::Unknown => stats.unknown += 1,
        }
        stats.timeline.push((started, outcome == Outcome::Acked));
    }

    fn violation(&self, what: String) {
        eprintln!("VIOLATION: {what}");
        self.stats.lock().unwrap().violations.push(what);
    }

    async fn step(&mut self, rng: &mut rand::rngs::StdRng) {
        let key = self.id * KEYS_PER_CLIENT + rng.random_range(0..KEYS_PER_CLIENT);
        let roll = rng.random_range(0..100);
        if roll < 35 {
            let len = if rng.random_range(0..4) == 0 {
                rng.random_range(65_536..1_048_576)
            } else {
                rng.random_range(HEADER..65_536)
            };
            self.put(key, len).await;
        } else if roll < 65 {
            self.get(key).await;
        } else if roll < 75 {
            self.head(key).await;
        } else if roll < 92 {
            self.delete(key).await;
        } else {
            let len = PART + rng.random_range(HEADER..1_048_576);
            self.multipart(key, len).await;
        }
    }

    fn record_write(&mut self, key: usize, version: Option<(u64, usize)>, outcome: Outcome) {
        self.ledger.entry(key).or_default().push(Write { version, outcome });
    }

    async fn put(&mut self, key: usize, len: usize) {
        self.next_version += 1;
        let version = self.next_version;
        let body = version_bytes(key, version, len);
        let started = Instant::now();
        let result = self.s3.put_object().bucket("chaos").key(Self::key_name(key)).body(body.into()).send().await;
        let outcome = outcome(&result);
        self.note(started, outcome);
        self.record_write(key, Some((version, len)), outcome);
    }

    async fn delete(&mut self, key: usize) {
        let started = Instant::now();
        let result = self.s3.delete_object().bucket("chaos").key(Self::key_name(key)).send().await;
        let outcome = outcome(&result);
        self.note(started, outcome);
        self.record_write(key, None, outcome);
    }

    async fn multipart(&mut self, key: usize, len: usize) {
        self.next_version += 1;
        let version = self.next_version;
        let body = version_bytes(key, version, len);
        let started = Instant::now();
        let name = Self::key_name(key);
        let created = self.s3.create_multipart_upload().bucket("chaos").key(&name).send().await;
        let upload_id = match &created {
            Ok(out) => out.upload_id().unwrap().to_string(),
            Err(_) => {
                // Nothing was written; the object cannot have changed.
                self.note(started, outcome(&created));
                return;
            }
        };
        let mut parts = Vec::new();
        for (number, range) in [(1, 0..PART), (2, PART..len)] {
            let uploaded = self
                .s3
                .upload_part()
                .bucket("chaos")
                .key(&name)
                .upload_id(&upload_id)
                .part_number(number)
                .body(body[range].to_vec().into())
                .send()
                .await;
            match uploaded {
                Ok(out) => parts.push(CompletedPart::builder().part_number(number).e_tag(out.e_tag().unwrap()).build()),
                Err(_) => {
                    self.note(started, outcome(&uploaded));
                    return;
                }
            }
        }
        let completed = self
            .s3
            .complete_multipart_upload()
            .bucket("chaos")
            .key(&name)
            .upload_id(&upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await;
        let outcome = outcome(&completed);
        self.note(started, outcome);
        self.record_write(key, Some((version, len)), outcome);
    }

    async fn get(&mut self, key: usize) {
        let started = Instant::now();
        let result = self.s3.get_object().bucket("chaos").key(Self::key_name(key)).send().await;
        let allowed = allowed(self.ledger.get(&key).map_or(&[][..], Vec::as_slice));
        let ok = match result {
            Ok(out) => match out.body.collect().await {
                Ok(body) => {
                    self.check_body(key, &body.into_bytes(), &allowed);
                    true
                }
                Err(_) => false, // cut short: a failed read, not a wrong one
            },
            Err(SdkError::ServiceError(err)) if err.err().is_no_such_key() => {
                if !allowed.contains(&None) {
                    self.violation(format!("key {key}: GET said absent, allowed {allowed:?}"));
                }
                true
            }
            Err(_) => false,
        };
        self.note_read(started, ok);
    }

    async fn head(&mut self, key: usize) {
        let started = Instant::now();
        let result = self.s3.head_object().bucket("chaos").key(Self::key_name(key)).send().await;
        let allowed = allowed(self.ledger.get(&key).map_or(&[][..], Vec::as_slice));
        let ok = match result {
            Ok(out) => {
                let len = out.content_length().unwrap_or(-1) as usize;
                let etag = out.e_tag().unwrap_or("").trim_matches('"').to_string();
                let matches = allowed.iter().flatten().any(|&(version, vlen)| {
                    vlen == len
                        && (etag.contains('-') || etag == hex::encode(Md5::digest(version_bytes(key, version, vlen))))
                });
                if !matches {
                    self.violation(format!("key {key}: HEAD length {len} etag {etag}, allowed {allowed:?}"));
                }
                true
            }
            Err(SdkError::ServiceError(err)) if err.err().is_not_found() => {
                if !allowed.contains(&None) {
                    self.violation(format!("key {key}: HEAD said absent, allowed {allowed:?}"));
                }
                true
            }
            Err(_) => false,
        };
        self.note_read(started, ok);
    }

    fn note_read(&self, started: Instant, ok: bool) {
        let mut stats = self.stats.lock().unwrap();
        stats.ops += 1;
        if ok {
            stats.reads_ok += 1
        } else {
            stats.reads_failed += 1
        }
        stats.timeline.push((started, ok));
    }

    fn check_body(&self, key: usize, body: &[u8], allowed: &[Option<(u64, usize)>]) {
        let Some((body_key, version)) = parse_header(body) else {
            self.violation(format!("key {key}: body of {} bytes names no version", body.len()));
            return;
        };
        let known = allowed.iter().flatten().find(|(v, _)| *v == version);
        match known {
            Some(&(version, len)) if body_key == key => {
                if body.len() != len || body != version_bytes(key, version, len).as_slice() {
                    self.violation(format!("key {key}: version {version} torn ({} of {len} bytes)", body.len()));
                }
            }
            _ => self.violation(format!("key {key}: read version {version} of key {body_key}, allowed {allowed:?}")),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chaos_loses_nothing_acknowledged_and_shows_nothing_refused() {
    let seconds: u64 = std::env::var("CAIRN_CHAOS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let mut cluster = TestCluster::start_with(3, 2, &["--volume-timeout", "3s", "--volume-idle-timeout", "3s"]);
    cluster.client().create_bucket().bucket("chaos").send().await.unwrap();
    let endpoint = cluster.endpoint();
    let stats = Arc::new(Mutex::new(Stats::default()));
    let until = Instant::now() + Duration::from_secs(seconds);

    let mut clients = Vec::new();
    for id in 0..CLIENTS {
        let (endpoint, stats) = (endpoint.clone(), stats.clone());
        clients.push(tokio::spawn(async move {
            let mut client = Client {
                id,
                s3: client_without_retries(&endpoint, Duration::from_secs(15)),
                ledger: HashMap::new(),
                next_version: 0,
                stats,
            };
            let mut rng: rand::rngs::StdRng = rand::SeedableRng::seed_from_u64(id as u64);
            while Instant::now() < until {
                client.step(&mut rng).await;
            }
            client.ledger
        }));
    }

    // Faults: every 2-4 s, kill a random volume (restarted 2-4 s later) or, one time in
    // five, the gateway (restarted at once).
    let mut volume_down: Vec<(Instant, Instant)> = Vec::new();
    let mut gateway_down: Vec<(Instant, Instant)> = Vec::new();
    let mut rng = rand::rng();
    let (mut volume_kills, mut gateway_kills) = (0, 0);
    while Instant::now() + Duration::from_secs(8) < until {
        tokio::time::sleep(Duration::from_millis(rng.random_range(2000..4000))).await;
        if rng.random_range(0..5) == 0 {
            let down = Instant::now();
            cluster.gateway.take();
            cluster.start_gateway();
            gateway_down.push((down, Instant::now()));
            gateway_kills += 1;
        } else {
            let v = rng.random_range(0..cluster.volumes.len());
            let down = Instant::now();
            cluster.volumes[v].kill();
            tokio::time::sleep(Duration::from_millis(rng.random_range(2000..4000))).await;
            cluster.volumes[v].start();
            volume_down.push((down, Instant::now()));
            volume_kills += 1;
        }
    }
    let mut ledgers: HashMap<usize, Vec<Write>> = HashMap::new();
    for client in clients {
        ledgers.extend(client.await.unwrap());
    }

    // Final state of every key, after the cluster settles.
    let settle = Instant::now();
    while cluster.status().await["repair_queue"] != 0 {
        assert!(settle.elapsed() < Duration::from_secs(30), "repairs did not finish");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let s3 = cluster.client();
    let mut final_violations = Vec::new();
    let mut live_blobs = 0u64;
    for (&key, writes) in &ledgers {
        let allowed = allowed(writes);
        let got = s3.get_object().bucket("chaos").key(Client::key_name(key)).send().await;
        let state = match got {
            Ok(out) => {
                let body = out.body.collect().await.unwrap().into_bytes();
                match parse_header(&body) {
                    Some((k, version)) if k == key => allowed
                        .iter()
                        .flatten()
                        .find(|(v, len)| *v == version && body.len() == *len && body == version_bytes(key, *v, *len))
                        .map(|&(v, len)| Some((v, len))),
                    _ => None,
                }
            }
            Err(SdkError::ServiceError(err)) if err.err().is_no_such_key() => Some(None),
            Err(err) => panic!("final read of key {key} failed: {err:?}"),
        };
        match state {
            Some(state) if allowed.contains(&state) => {
                if let Some((_, len)) = state {
                    live_blobs += if len > PART { 2 } else { 1 };
                }
            }
            _ => final_violations.push(format!("key {key}: final state {state:?}, allowed {allowed:?}")),
        }
    }

    cluster.admin_ok(&["gc", "--grace", "0"]);
    let verify = cluster.admin(&["verify", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();

    let stats = stats.lock().unwrap();
    let during = |windows: &[(Instant, Instant)]| {
        let (mut ok, mut all) = (0u64, 0u64);
        for (at, success) in &stats.timeline {
            if windows.iter().any(|(from, to)| at >= from && at <= to) {
                all += 1;
                ok += u64::from(*success);
            }
        }
        (ok, all)
    };
    let (ok_volume_down, all_volume_down) = during(&volume_down);
    let (ok_gateway_down, all_gateway_down) = during(&gateway_down);
    let availability = ok_volume_down as f64 / all_volume_down.max(1) as f64;
    println!(
        "chaos: {seconds} s, {volume_kills} volume kills, {gateway_kills} gateway kills; ops {} (writes acked {}, refused {}, unknown {}; reads ok {}, failed {}); violations {} during, {} final; availability while a volume was down {:.2}% ({ok_volume_down}/{all_volume_down}); while the gateway restarted {ok_gateway_down}/{all_gateway_down}",
        stats.ops,
        stats.acked,
        stats.refused,
        stats.unknown,
        stats.reads_ok,
        stats.reads_failed,
        stats.violations.len(),
        final_violations.len(),
        100.0 * availability,
    );
    println!("verify: {}", serde_json::to_string(&report).unwrap());
    assert!(stats.violations.is_empty(), "violations during the run: {:#?}", stats.violations);
    assert!(final_violations.is_empty(), "final state violations: {final_violations:#?}");
    assert!(stats.ops > 1000, "the load ran: {} ops", stats.ops);
    assert!(volume_kills > 0);
    assert!(availability >= 0.9, "availability while a volume was down: {availability}");
    assert!(verify.status.success(), "verify found problems: {report}");
    assert_eq!(report["missing"], 0);
    assert_eq!(report["corrupt"], 0);
    assert_eq!(report["replicas_checked"], live_blobs * 2, "every live blob has both copies: {report}");
}
