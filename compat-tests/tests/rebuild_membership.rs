//! `cairn-admin rebuild` and the membership the volumes keep: the gateway writes it to every
//! volume, and a rebuild restores it (weights, zones, removed volumes, cluster id, epoch),
//! refuses to run with a member left out unless `--partial`, refuses volumes of another
//! cluster, and refuses while a gateway uses the volumes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use compat_tests::{CLUSTER_SECRET, TestCluster, test_bytes};
use serde_json::Value;

/// Runs `cairn-admin rebuild` from the volumes `volumes` of `cluster` (and `others`, URLs of
/// volumes elsewhere) into the fresh directory `name`; no admin URL or token is given.
fn rebuild_from(cluster: &TestCluster, name: &str, volumes: &[usize], others: &[String], extra: &[&str]) -> Output {
    let db: PathBuf = cluster.root.path().join(name);
    let mut urls: Vec<String> = volumes.iter().map(|v| cluster.volumes[*v].url()).collect();
    urls.extend(others.iter().cloned());
    Command::new(compat_tests::binary("cairn-admin"))
        .args(["rebuild", "--db", db.to_str().unwrap(), "--volumes", &urls.join(",")])
        .args(["--cluster-secret", CLUSTER_SECRET])
        .args(extra)
        .env_remove("CAIRN_ADMIN_URL")
        .env_remove("CAIRN_ADMIN_TOKEN")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `GET /membership` of a volume: the document, or `None` on 404.
async fn membership_of(url: &str) -> Option<Value> {
    let response = reqwest::Client::new().get(format!("{url}/membership")).bearer_auth(CLUSTER_SECRET).send().await;
    let response = response.unwrap();
    if response.status() == 404 {
        return None;
    }
    assert!(response.status().is_success(), "{}", response.status());
    Some(response.json().await.unwrap())
}

/// Waits until every volume at `urls` holds the membership of `epoch`.
async fn wait_for_epoch(urls: &[String], epoch: &Value) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut documents = Vec::new();
        for url in urls {
            documents.extend(membership_of(url).await.filter(|d| d["epoch"] == *epoch));
        }
        if documents.len() == urls.len() {
            return documents;
        }
        assert!(Instant::now() < deadline, "the volumes did not get epoch {epoch}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn seed(cluster: &TestCluster, keys: usize) {
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    for i in 0..keys {
        let body = test_bytes(5_000, i as u64);
        s3.put_object().bucket("bkt").key(format!("k{i}")).body(body.into()).send().await.unwrap();
    }
}

/// The volume ids of a cluster in the order of `cluster.volumes`, from `/status`.
async fn volume_ids(cluster: &TestCluster) -> Vec<String> {
    let status = cluster.status().await;
    cluster
        .volumes
        .iter()
        .map(|volume| {
            let listed = status["volumes"].as_array().unwrap().iter().find(|v| v["url"] == volume.url());
            listed.unwrap_or_else(|| panic!("{} not in {status}", volume.url()))["id"].as_str().unwrap().to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_left_out_fails_the_rebuild_unless_partial_which_names_it() {
    let mut cluster = TestCluster::start(4, 2);
    seed(&cluster, 30).await;
    let ids = volume_ids(&cluster).await;
    let epoch = cluster.status().await["membership_epoch"].clone();
    wait_for_epoch(&cluster.volumes.iter().map(|v| v.url()).collect::<Vec<_>>(), &epoch).await;
    cluster.stop_gateway();

    // Volume 3 is running, but the operator forgot it.
    let refused = rebuild_from(&cluster, "three", &[0, 1, 2], &[], &[]);
    let stderr = text(&refused.stderr);
    assert!(!refused.status.success(), "a rebuild without a member must fail: {}", text(&refused.stdout));
    assert!(stderr.contains(&ids[3]) && stderr.contains(&cluster.volumes[3].url()), "names the volume: {stderr}");
    assert!(stderr.contains("--partial"), "{stderr}");
    assert!(!cluster.root.path().join("three").exists(), "nothing is written");

    let partial = rebuild_from(&cluster, "partial", &[0, 1, 2], &[], &["--partial", "--json"]);
    let stderr = text(&partial.stderr);
    assert!(partial.status.success(), "{stderr}");
    assert!(stderr.contains(&ids[3]) && stderr.contains("left out of the index"), "{stderr}");
    let report: Value = serde_json::from_slice(&partial.stdout).unwrap();
    assert_eq!(report["missing_volumes"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(report["missing_volumes"][0]["id"], ids[3].as_str(), "{report}");
    assert_eq!(report["missing_volumes"][0]["url"], cluster.volumes[3].url(), "{report}");
    assert_eq!(report["volumes"], 4, "the missing volume stays a member: {report}");

    // With every volume given, nothing is missing.
    let whole = rebuild_from(&cluster, "whole", &[0, 1, 2, 3], &[], &["--json"]);
    assert!(whole.status.success(), "{}", text(&whole.stderr));
    let report: Value = serde_json::from_slice(&whole.stdout).unwrap();
    assert_eq!((report["objects"].as_u64(), report["missing_volumes"].as_array().map(Vec::len)), (Some(30), Some(0)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_is_refused_while_a_gateway_uses_the_volumes() {
    let mut cluster = TestCluster::start(2, 2);
    seed(&cluster, 3).await;
    // Give the probe a moment to have named the gateway to both volumes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (db, refused) = cluster.rebuild("while-up", &[]);
    let stderr = text(&refused.stderr);
    assert!(!refused.status.success(), "a rebuild while the gateway runs must fail");
    assert!(stderr.contains("stop the gateway") && stderr.contains(&cluster.volumes[0].url()), "{stderr}");
    assert!(!db.exists(), "nothing is written");

    // Killed rather than stopped: no goodbye, so the rebuild waits until the volumes have
    // not heard from it for a few probe intervals.
    cluster.gateway.take().unwrap().kill();
    let killed = Instant::now();
    let (_, refused) = cluster.rebuild("just-killed", &[]);
    assert!(!refused.status.success() && text(&refused.stderr).contains("stop the gateway"));
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(killed.elapsed())).await;
    cluster.rebuild_ok("later");

    // A gateway stopped cleanly says goodbye: a rebuild may start at once, and the rebuild's
    // own requests do not count as a gateway.
    cluster.start_gateway();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.stop_gateway();
    cluster.rebuild_ok("after-stop");
    cluster.rebuild_ok("again");
}

#[tokio::test(flavor = "multi_thread")]
async fn weights_zones_and_removed_volumes_come_back_after_a_rebuild() {
    let mut cluster = TestCluster::start(4, 2);
    let urls: Vec<String> = cluster.volumes.iter().map(|v| v.url()).collect();
    let ids = volume_ids(&cluster).await;
    cluster.admin_ok(&["volume", "remove", &urls[3]]);
    cluster.admin_ok(&["volume", "weight", &urls[0], "3"]);
    cluster.admin_ok(&["volume", "zone", &urls[1], "rack-a"]);
    cluster.admin_ok(&["volume", "zone", &urls[2], "rack-b"]);
    cluster.admin_ok(&["volume", "zone", &urls[0], "rack-b"]);
    cluster.admin_ok(&["volume", "zone", &urls[0], "--clear"]);
    seed(&cluster, 10).await;
    let before = cluster.status().await;
    assert_eq!(before["removed"], serde_json::json!([ids[3]]), "{before}");

    // Every member holds the membership the gateway has now.
    let documents = wait_for_epoch(&urls[..3], &before["membership_epoch"]).await;
    for document in &documents {
        assert_eq!(document["cluster_id"], before["cluster_id"], "{document}");
        assert_eq!(document["removed"], before["removed"], "{document}");
        let weights: Vec<(&Value, &Value, &Value)> =
            document["volumes"].as_array().unwrap().iter().map(|v| (&v["id"], &v["weight"], &v["zone"])).collect();
        let expected = [
            (ids[0].as_str(), 3.0, Value::Null),
            (ids[1].as_str(), 1.0, "rack-a".into()),
            (ids[2].as_str(), 1.0, "rack-b".into()),
        ];
        assert_eq!(weights.len(), 3, "{document}");
        for ((id, weight, zone), (want_id, want_weight, want_zone)) in weights.into_iter().zip(expected) {
            assert_eq!((id.as_str().unwrap(), weight.as_f64().unwrap(), zone), (want_id, want_weight, &want_zone));
        }
    }

    // Lose the index; rebuild it from every volume the operator has (the removed one too).
    cluster.stop_gateway();
    std::fs::remove_dir_all(cluster.db_dir()).unwrap();
    let (rebuilt, out) = cluster.rebuild_ok("rebuilt");
    assert!(out.contains("membership restored: 3 volumes") && out.contains("1 removed"), "{out}");
    std::fs::rename(&rebuilt, cluster.db_dir()).unwrap();
    cluster.start_gateway();

    let after = cluster.status().await;
    let members = |status: &Value| -> Vec<(Value, Value, Value, Value)> {
        let volumes = status["volumes"].as_array().unwrap();
        volumes.iter().map(|v| (v["id"].clone(), v["url"].clone(), v["weight"].clone(), v["zone"].clone())).collect()
    };
    assert_eq!(members(&after), members(&before), "weights and zones are back: {after}");
    assert_eq!(after["removed"], before["removed"], "the removed volume stays removed");
    assert_eq!(after["cluster_id"], before["cluster_id"]);
    assert_eq!(after["membership_epoch"], before["membership_epoch"]);
    assert_eq!(after["objects"], 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_volume_of_another_cluster_is_refused() {
    let mut ours = TestCluster::start(3, 2);
    let mut theirs = TestCluster::start(1, 1);
    seed(&ours, 5).await;
    seed(&theirs, 5).await;
    let their_url = theirs.volumes[0].url();
    let their_cluster = theirs.status().await["cluster_id"].as_str().unwrap().to_string();
    let our_cluster = ours.status().await["cluster_id"].as_str().unwrap().to_string();
    assert_ne!(their_cluster, our_cluster, "every index makes its own cluster id");
    wait_for_epoch(std::slice::from_ref(&their_url), &theirs.status().await["membership_epoch"]).await;

    // Online: `volume add` refuses it, naming its cluster.
    let added = ours.admin(&["volume", "add", &their_url]);
    let stderr = text(&added.stderr);
    assert!(!added.status.success(), "a volume of another cluster must not join");
    assert!(stderr.contains(&format!("belongs to cluster {their_cluster}")), "{stderr}");
    assert_eq!(ours.status().await["volumes"].as_array().unwrap().len(), 3);

    // At startup: the gateway leaves it out.
    ours.stop_gateway();
    theirs.stop_gateway();
    let foreign = theirs.volumes.remove(0);
    ours.volumes.push(foreign);
    ours.start_gateway();
    let status = ours.status().await;
    assert_eq!(status["volumes"].as_array().unwrap().len(), 3, "not joined: {status}");
    ours.stop_gateway();

    // Offline: a rebuild given it fails, naming it.
    let refused = rebuild_from(&ours, "mixed", &[0, 1, 2, 3], &[], &[]);
    let stderr = text(&refused.stderr);
    assert!(!refused.status.success(), "{}", text(&refused.stdout));
    assert!(stderr.contains(&their_url) && stderr.contains(&format!("belongs to cluster {their_cluster}")), "{stderr}");
    // Its volume still holds its own cluster's membership.
    assert_eq!(membership_of(&their_url).await.unwrap()["cluster_id"], their_cluster.as_str());
    let ok = rebuild_from(&ours, "ours", &[0, 1, 2], &[], &[]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
}

#[test]
fn rebuild_help_does_not_offer_the_admin_api() {
    let help =
        |args: &[&str]| text(&Command::new(compat_tests::binary("cairn-admin")).args(args).output().unwrap().stdout);
    let rebuild = help(&["rebuild", "--help"]);
    assert!(rebuild.contains("--volumes") && rebuild.contains("--partial"), "{rebuild}");
    assert!(!rebuild.contains("--admin-url") && !rebuild.contains("--token"), "{rebuild}");
    for online in [&["status", "--help"][..], &["volume", "zone", "--help"], &["gc", "--help"]] {
        let text = help(online);
        assert!(text.contains("--admin-url") && text.contains("--token"), "{online:?}: {text}");
    }
    // Given after `rebuild`, they are refused with a reason.
    let output = Command::new(compat_tests::binary("cairn-admin"))
        .args([
            "rebuild",
            "--admin-url",
            "http://127.0.0.1:1",
            "--db",
            "/nonexistent",
            "--volumes",
            "http://127.0.0.1:1",
        ])
        .args(["--cluster-secret", "x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "bad usage");
    assert!(text(&output.stderr).contains("offline"), "{}", text(&output.stderr));
}
