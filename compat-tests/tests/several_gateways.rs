//! Several gateways over one index in PostgreSQL serve with the guarantees of one: what one
//! acknowledged, the others read and list at once; of racing conditional writes spread over
//! them exactly one wins; newest-wins ordering holds although their clocks disagree; a
//! membership change made through one reaches the others; GC on one never takes what another
//! is writing; and a gateway killed under load loses nothing it acknowledged, while its
//! peers reap it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use compat_tests::postgres::TestPostgres;
use compat_tests::{TestCluster, test_bytes};

async fn body(s3: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let got = s3.get_object().bucket(bucket).key(key).send().await.unwrap();
    got.body.collect().await.unwrap().into_bytes().to_vec()
}

async fn keys(s3: &Client, bucket: &str) -> Vec<String> {
    let page = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
    page.contents().iter().map(|o| o.key().unwrap().to_string()).collect()
}

/// Registered gateway ids, as `/status` of the admin API at `admin_url` reports them.
async fn gateways(admin_url: &str) -> Vec<String> {
    let status = compat_tests::admin_status(admin_url).await;
    status["gateways"].as_array().unwrap().iter().map(|g| g["id"].as_str().unwrap().to_string()).collect()
}

/// Polls `check` every 200 ms until it holds or `within` has passed.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} did not happen within {within:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_gateways_serve_one_index_with_the_guarantees_of_one() {
    let Some(postgres) = TestPostgres::start("several_gateways guarantees") else { return };
    let url = postgres.create_database();
    let mut cluster = TestCluster::start_with(3, 2, &["--index", &url]);
    // B's clock is two minutes behind A's: ordering must not depend on the clocks.
    let b = cluster.start_another_gateway_with_env(&[("CAIRN_TEST_CLOCK_OFFSET_MS", "-120000")]);
    let (a, b) = (cluster.client(), cluster.more_gateways[b].client());

    // Created through B, so that nothing B reads before its write below carries A's clock.
    b.create_bucket().bucket("shared").send().await.unwrap();
    a.put_object().bucket("shared").key("k").body(b"from a".to_vec().into()).send().await.unwrap();
    // A later write through the gateway whose clock is behind still wins (it reads what it
    // replaces first), and is read through both.
    b.put_object().bucket("shared").key("k").body(b"from b".to_vec().into()).send().await.unwrap();
    assert_eq!(body(&a, "shared", "k").await, b"from b");
    assert_eq!(body(&b, "shared", "k").await, b"from b");

    a.put_object().bucket("shared").key("first").body(b"from a".to_vec().into()).send().await.unwrap();
    assert_eq!(body(&b, "shared", "first").await, b"from a", "read-after-write across gateways");
    assert_eq!(keys(&b, "shared").await, ["first", "k"]);
    b.delete_object().bucket("shared").key("k").send().await.unwrap();
    let gone = a.head_object().bucket("shared").key("k").send().await.unwrap_err();
    assert_eq!(gone.raw_response().unwrap().status().as_u16(), 404, "a delete through the slow clock holds");
    a.put_object().bucket("shared").key("k").body(b"again".to_vec().into()).send().await.unwrap();
    assert_eq!(body(&b, "shared", "k").await, b"again");

    // Tags set through B apply to the version written through A.
    let tagging = aws_sdk_s3::types::Tagging::builder()
        .tag_set(aws_sdk_s3::types::Tag::builder().key("set").value("through-b").build().unwrap())
        .build()
        .unwrap();
    b.put_object_tagging().bucket("shared").key("k").tagging(tagging).send().await.unwrap();
    let tags = a.get_object_tagging().bucket("shared").key("k").send().await.unwrap();
    assert_eq!(tags.tag_set()[0].value(), "through-b");

    // Bucket operations are ordered the same way.
    a.create_bucket().bucket("brief").send().await.unwrap();
    b.delete_bucket().bucket("brief").send().await.unwrap();
    let missing = a.head_bucket().bucket("brief").send().await.unwrap_err();
    assert_eq!(missing.raw_response().unwrap().status().as_u16(), 404);

    // Of racing conditional creates spread over both gateways, exactly one wins.
    let racers = (0..8u8).map(|i| {
        let s3 = if i % 2 == 0 { a.clone() } else { b.clone() };
        tokio::spawn(async move {
            let put = s3.put_object().bucket("shared").key("race").if_none_match("*").body(vec![i; 100].into());
            put.send().await.is_ok().then_some(i)
        })
    });
    let winners: Vec<u8> = futures::future::join_all(racers).await.into_iter().filter_map(|r| r.unwrap()).collect();
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(body(&b, "shared", "race").await, vec![winners[0]; 100]);

    // Both gateways are registered and beating; each one's admin API lists both.
    let other_admin = cluster.more_gateways[0].admin_url();
    assert_eq!(gateways(&cluster.admin_url()).await.len(), 2);
    assert_eq!(gateways(&other_admin).await.len(), 2);

    // A volume added through A is in B's membership within a couple of seconds, and B
    // places writes by it.
    let extra = cluster.start_extra_volume();
    let extra_url = cluster.volumes[extra].url();
    cluster.admin_ok(&["volume", "add", &extra_url]);
    let seen = Instant::now();
    eventually(Duration::from_secs(3), "B seeing the added volume", || {
        let (admin, extra_url) = (other_admin.clone(), extra_url.clone());
        async move {
            let status = compat_tests::admin_status(&admin).await;
            status["volumes"].as_array().unwrap().iter().any(|v| v["url"] == extra_url.as_str())
        }
    })
    .await;
    eprintln!("B saw the new volume {:?} after it was added through A", seen.elapsed());
    let before = cluster.volumes[extra].blob_files().len();
    for i in 0..30 {
        b.put_object().bucket("shared").key(format!("spread/{i}")).body(vec![1; 10].into()).send().await.unwrap();
    }
    assert!(cluster.volumes[extra].blob_files().len() > before, "B wrote nothing to the volume added through A");
}

/// GC with no grace period, run again and again through A while clients write through B,
/// deletes nothing that B acknowledged: B's blobs are claimed in the index before their first
/// byte reaches a volume, and A's GC leaves claimed blobs alone.
#[tokio::test(flavor = "multi_thread")]
async fn gc_on_one_gateway_takes_nothing_another_is_writing() {
    let Some(postgres) = TestPostgres::start("several_gateways gc") else { return };
    let url = postgres.create_database();
    let mut cluster = TestCluster::start_with(3, 2, &["--index", &url]);
    let b = cluster.start_another_gateway();
    let (a, b) = (cluster.client(), cluster.more_gateways[b].client());
    a.create_bucket().bucket("busy").send().await.unwrap();

    let acknowledged = Arc::new(Mutex::new(BTreeMap::new()));
    let writing_until = Instant::now() + Duration::from_secs(8);
    let writers = (0..4u64).map(|w| {
        let (s3, acknowledged) = (b.clone(), acknowledged.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while Instant::now() < writing_until {
                let key = format!("w{w}/{i}");
                let data = test_bytes(1000 + (i as usize % 7) * 3000, w * 1000 + i);
                // Overwrites too: each replaces a version whose blob goes to GC.
                let key = if i % 3 == 2 { format!("w{w}/{}", i - 1) } else { key };
                s3.put_object().bucket("busy").key(&key).body(data.clone().into()).send().await.unwrap();
                acknowledged.lock().unwrap().insert(key, data);
                i += 1;
            }
        })
    });
    let writers = futures::future::join_all(writers);
    let gc = async {
        let mut runs = 0;
        while Instant::now() < writing_until {
            let out = cluster.admin(&["gc", "--grace", "0"]);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            runs += 1;
        }
        runs
    };
    let (results, runs) = tokio::join!(writers, gc);
    for result in results {
        result.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    eprintln!("{} keys written through B during {runs} GC runs through A", acknowledged.len());
    assert!(runs >= 2 && acknowledged.len() >= 50, "too little overlap to show anything");
    for (key, data) in &acknowledged {
        assert!(body(&a, "busy", key).await == *data, "{key} lost or wrong after GC");
    }
}

/// Writers that fail over to the other gateway lose nothing acknowledged when either gateway
/// is SIGKILLed under load; the survivor reaps the dead one within its heartbeat timeout.
#[tokio::test(flavor = "multi_thread")]
async fn killing_either_gateway_under_load_loses_no_acknowledged_write() {
    let Some(postgres) = TestPostgres::start("several_gateways kill") else { return };
    let url = postgres.create_database();
    let mut cluster = TestCluster::start_with(3, 2, &["--index", &url]);
    cluster.start_another_gateway();
    cluster.client().create_bucket().bucket("ledger").send().await.unwrap();

    let mut acknowledged: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (round, victim) in ["first", "second"].into_iter().enumerate() {
        let endpoints = [cluster.endpoint(), cluster.more_gateways[0].endpoint()];
        let clients: Vec<Client> =
            endpoints.iter().map(|e| compat_tests::client_without_retries(e, Duration::from_secs(15))).collect();
        let ledger = Arc::new(Mutex::new(Vec::new()));
        let load_until = Instant::now() + Duration::from_secs(5);
        let writers = (0..4u64).map(|w| {
            let (clients, ledger) = (clients.clone(), ledger.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while Instant::now() < load_until {
                    let key = format!("r{round}/w{w}/{i}");
                    let data = test_bytes(2000 + (i as usize % 5) * 1000, (round as u64) << 32 | w << 16 | i);
                    // Start on alternating gateways; on any failure, retry on the other.
                    for attempt in 0..4 {
                        let s3 = &clients[((i + attempt) % 2) as usize];
                        if s3.put_object().bucket("ledger").key(&key).body(data.clone().into()).send().await.is_ok() {
                            ledger.lock().unwrap().push((key.clone(), data.clone()));
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    i += 1;
                }
            })
        });
        let writers = futures::future::join_all(writers);
        let kill = async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            // Round 0 kills the first gateway; round 1 (after it was restarted) the other.
            if round == 0 {
                cluster.gateway.as_mut().unwrap().kill();
            } else {
                cluster.more_gateways[0].proc.as_mut().unwrap().kill();
            }
        };
        let (results, ()) = tokio::join!(writers, kill);
        for result in results {
            result.unwrap();
        }
        let ledger = ledger.lock().unwrap().clone();
        eprintln!("{victim} gateway killed: {} writes acknowledged in the round", ledger.len());
        assert!(ledger.len() >= 20, "too few writes to show anything");
        acknowledged.extend(ledger);

        let survivor = if round == 0 { 1 } else { 0 };
        let (survivor_client, survivor_admin) = if survivor == 1 {
            (cluster.more_gateways[0].client(), cluster.more_gateways[0].admin_url())
        } else {
            (cluster.client(), cluster.admin_url())
        };
        for (key, data) in &acknowledged {
            assert!(body(&survivor_client, "ledger", key).await == *data, "{key} lost after the {victim} kill");
        }
        // The dead gateway's row goes once it has not beaten for 10 s.
        let reaped_in = Instant::now();
        eventually(Duration::from_secs(20), "reaping the killed gateway", || {
            let admin = survivor_admin.clone();
            async move { gateways(&admin).await.len() == 1 }
        })
        .await;
        eprintln!("the killed gateway was reaped {:?} after the writes ended", reaped_in.elapsed());
        if round == 0 {
            cluster.start_gateway();
        }
    }
}

fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill").args([signal, &pid.to_string()]).status().unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

/// The fence that keeps GC exact: gateway B is frozen between its blob reaching the volumes and
/// its index commit; A reaps it after its heartbeats stop, and A's GC then deletes the blob as
/// an orphan. Thawed, B must not acknowledge the write (its claim is gone, so its commit
/// fails), and B stops, since its peers took it for dead.
#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_reaped_while_frozen_never_commits_what_gc_took_and_stops() {
    let Some(postgres) = TestPostgres::start("several_gateways fence") else { return };
    let url = postgres.create_database();
    // Three replicas, two to acknowledge: with one volume frozen, a write waits up to 2 s for
    // it after the other two have the blob — the window in which B is frozen.
    let mut cluster = TestCluster::start_with(3, 3, &["--index", &url]);
    let b = cluster.start_another_gateway();
    // B's client does not retry: a retry is a new write (a new blob and claim), which B may
    // acknowledge before its next heartbeat tells it it was reaped; the write under test is
    // the first one.
    let b_endpoint = cluster.more_gateways[b].endpoint();
    let (a, b_client) = (cluster.client(), compat_tests::client_without_retries(&b_endpoint, Duration::from_secs(60)));
    a.create_bucket().bucket("fence").send().await.unwrap();
    let b_pid = cluster.more_gateways[b].proc.as_ref().unwrap().pid();

    cluster.volumes[2].pause();
    let put = tokio::spawn(async move {
        b_client.put_object().bucket("fence").key("k").body(b"never acknowledged".to_vec().into()).send().await
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    signal(b_pid, "-STOP");
    cluster.volumes[2].resume();

    let admin = cluster.admin_url();
    eventually(Duration::from_secs(20), "A reaping the frozen gateway", || {
        let admin = admin.clone();
        async move { gateways(&admin).await.len() == 1 }
    })
    .await;
    let before = cluster.blob_files().len();
    let gc = cluster.admin_ok(&["gc", "--grace", "0", "--json"]);
    let gc: serde_json::Value = serde_json::from_str(&gc).unwrap();
    assert!(gc["orphans"].as_u64().unwrap() >= 2, "B's blob (two copies) is an orphan once B is reaped: {gc}");
    assert!(cluster.blob_files().len() < before);

    signal(b_pid, "-CONT");
    match put.await.unwrap() {
        Ok(_) => panic!("B acknowledged a write whose blob GC had taken"),
        Err(err) => eprintln!("the thawed gateway's write failed as it must: {err:?}"),
    }
    let missing = a.head_object().bucket("fence").key("k").send().await.unwrap_err();
    assert_eq!(missing.raw_response().unwrap().status().as_u16(), 404);
    let deadline = Instant::now() + Duration::from_secs(15);
    let proc = cluster.more_gateways[b].proc.as_mut().unwrap();
    while proc.try_wait().is_none() {
        assert!(Instant::now() < deadline, "the reaped gateway kept serving");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A gateway whose shared index stops answering refuses writes in bounded time with a 503 the
/// SDKs retry (within the pool's 10 s connect timeout, before a byte reaches the volumes: a
/// membership not confirmed for 3 s is never written by), and takes writes again as soon as
/// the index answers.
#[tokio::test(flavor = "multi_thread")]
async fn writes_wait_for_a_frozen_index_and_fail_in_bounded_time() {
    let Some(postgres) = TestPostgres::start("several_gateways frozen index") else { return };
    let url = postgres.create_database();
    let cluster = TestCluster::start_with(3, 2, &["--index", &url]);
    let s3 = cluster.client_without_retries(Duration::from_secs(20));
    s3.create_bucket().bucket("frozen").send().await.unwrap();
    s3.put_object().bucket("frozen").key("before").body(b"1".to_vec().into()).send().await.unwrap();
    let blobs = cluster.blob_files().len();

    postgres.freeze();
    // Past MEMBERSHIP_STALE_AFTER (3 s) without a heartbeat reaching the index.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let started = Instant::now();
    let refused = s3.put_object().bucket("frozen").key("during").body(b"2".to_vec().into()).send().await;
    let waited = started.elapsed();
    let err = refused.expect_err("a write while the index is frozen");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(503), "{err:?}");
    assert!(waited < Duration::from_secs(15), "refused in bounded time, not {waited:?}");
    assert_eq!(cluster.blob_files().len(), blobs, "nothing reached the volumes");

    postgres.thaw();
    eventually(Duration::from_secs(15), "a write after the index thawed", || {
        let s3 = s3.clone();
        async move { s3.put_object().bucket("frozen").key("after").body(b"3".to_vec().into()).send().await.is_ok() }
    })
    .await;
    assert_eq!(body(&s3, "frozen", "after").await, b"3");
    assert_eq!(keys(&s3, "frozen").await, ["after", "before"]);
}
