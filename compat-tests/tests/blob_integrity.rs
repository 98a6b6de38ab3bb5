//! Every byte a volume writes is covered by a checksum: a flipped byte in a blob's footer or
//! metadata makes the volume refuse the blob (422 + `x-cairn-error: corrupt`), reads go to
//! another replica, `cairn-admin verify` counts the copy corrupt and `verify --repair`
//! rewrites it from a good one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use compat_tests::{CLUSTER_SECRET, TestCluster, test_bytes};

/// Length of the version-3 blob footer, and where in it the stored MD5 of the data lies
/// (`volumed/src/blob.rs`).
const FOOTER_LEN: usize = 92;
const FOOTER_MD5_AT: usize = 60;

/// The blob files whose data starts with `data` (blob files hold the data first).
fn files_holding(cluster: &TestCluster, data: &[u8]) -> Vec<PathBuf> {
    cluster.blob_files().into_iter().filter(|path| std::fs::read(path).unwrap().starts_with(data)).collect()
}

/// XORs one byte of a file.
fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

/// The volume URL and blob URL (`/blob/{sv}/{id}`) of a blob file.
fn blob_url(cluster: &TestCluster, path: &Path) -> String {
    for volume in &cluster.volumes {
        for (sv, dir) in volume.dirs.iter().enumerate() {
            if path.starts_with(dir) {
                let id = path.file_name().unwrap().to_str().unwrap();
                return format!("{}/blob/{sv}/{id}", volume.url());
            }
        }
    }
    panic!("{} is on no volume", path.display());
}

/// Status and `x-cairn-error` of a HEAD and a GET of a blob, straight from its volume.
async fn volume_answers(url: &str) -> Vec<(u16, Option<String>)> {
    let http = reqwest::Client::new();
    let mut out = Vec::new();
    for request in [http.head(url), http.get(url)] {
        let response = request.bearer_auth(CLUSTER_SECRET).send().await.unwrap();
        let marker = response.headers().get("x-cairn-error").map(|v| v.to_str().unwrap().to_string());
        out.push((response.status().as_u16(), marker));
    }
    out
}

/// Whether the volume's listing of the blob's subvolume names it.
async fn listed(url: &str) -> bool {
    let (base, rest) = url.split_once("/blob/").unwrap();
    let (sv, id) = rest.split_once('/').unwrap();
    let page: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/list/{sv}?limit=10000"))
        .bearer_auth(CLUSTER_SECRET)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["blobs"].as_array().unwrap().iter().any(|blob| blob["id"] == id)
}

async fn get_all(s3: &aws_sdk_s3::Client, objects: &[(&str, &Vec<u8>)]) {
    // Replicas are picked at random: read often enough to hit the damaged ones.
    for _ in 0..6 {
        for (key, data) in objects {
            let got = s3.get_object().bucket("bkt").key(*key).send().await.unwrap();
            assert!(got.body.collect().await.unwrap().into_bytes() == data[..], "{key}: wrong bytes");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn flipped_footer_and_metadata_bytes_are_found_and_repaired() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let (footer_hit, meta_hit, fine) = (test_bytes(120_000, 21), test_bytes(70_000, 22), test_bytes(1000, 23));
    let objects = [("footer-hit", &footer_hit), ("meta-hit", &meta_hit), ("fine", &fine)];
    for (key, data) in objects {
        s3.put_object().bucket("bkt").key(key).body(data.clone().into()).send().await.unwrap();
    }
    cluster.admin_ok(&["verify"]);

    // One byte of the stored MD5 in one replica's footer; one byte of the metadata JSON
    // (just before the footer) in one replica of another object. The data is intact.
    let footer_files = files_holding(&cluster, &footer_hit);
    let meta_files = files_holding(&cluster, &meta_hit);
    assert_eq!((footer_files.len(), meta_files.len()), (2, 2));
    let len = |path: &Path| usize::try_from(std::fs::metadata(path).unwrap().len()).unwrap();
    flip(&footer_files[0], len(&footer_files[0]) - FOOTER_LEN + FOOTER_MD5_AT + 3);
    flip(&meta_files[0], len(&meta_files[0]) - FOOTER_LEN - 10);
    let damaged = [blob_url(&cluster, &footer_files[0]), blob_url(&cluster, &meta_files[0])];
    let healthy = [blob_url(&cluster, &footer_files[1]), blob_url(&cluster, &meta_files[1])];

    // The volume's contract: HEAD and GET answer 422 with the marker; listings skip the blob.
    for url in &damaged {
        let corrupt = (422, Some("corrupt".to_string()));
        assert_eq!(volume_answers(url).await, vec![corrupt.clone(), corrupt], "{url}");
        assert!(!listed(url).await, "{url} is listed");
    }
    for url in &healthy {
        assert_eq!(volume_answers(url).await, vec![(200, None), (200, None)], "{url}");
        assert!(listed(url).await, "{url} is not listed");
    }

    // (Reads would send the damaged copies to the repairer, `reads_that_heal.rs` shows that;
    // here verify finds them first.)
    let report = cluster.admin(&["verify", "--json"]);
    assert_eq!(report.status.code(), Some(1), "problems make verify exit 1");
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!((report["missing"].as_u64(), report["corrupt"].as_u64()), (Some(0), Some(2)), "{report}");
    let problems = report["problems"].to_string();
    assert!(problems.contains("bkt/footer-hit") && problems.contains("bkt/meta-hit"), "{problems}");
    assert!(!problems.contains("bkt/fine"), "{problems}");

    let repaired: serde_json::Value =
        serde_json::from_str(&cluster.admin_ok(&["verify", "--repair", "--json"])).unwrap();
    assert_eq!((repaired["corrupt"].as_u64(), repaired["repaired"].as_u64()), (Some(2), Some(2)), "{repaired}");
    let marks = repaired["problems"].as_array().unwrap();
    assert!(
        marks.len() == 2 && marks.iter().all(|p| p.as_str().unwrap().ends_with(": corrupt: repaired")),
        "{repaired}"
    );
    let clean: serde_json::Value = serde_json::from_str(&cluster.admin_ok(&["verify", "--json"])).unwrap();
    assert_eq!((clean["missing"].as_u64(), clean["corrupt"].as_u64()), (Some(0), Some(0)), "{clean}");

    // The repaired copies are whole again, in the same place.
    for url in damaged.iter().chain(&healthy) {
        assert_eq!(volume_answers(url).await, vec![(200, None), (200, None)], "{url}");
        assert!(listed(url).await, "{url} is not listed");
    }
    assert_eq!((files_holding(&cluster, &footer_hit).len(), files_holding(&cluster, &meta_hit).len()), (2, 2));
    get_all(&s3, &objects).await;
}
