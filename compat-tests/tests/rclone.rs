//! rclone against a cluster of real processes: sync a 300-file tree up, `check` clean, a
//! second sync with zero transfers, modtimes preserved (and updated by a server-side copy
//! onto itself), a 200 MB multipart copy both ways, and a sync back down; a versioned bucket
//! through `--s3-versions` and `--s3-version-at`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime};

use compat_tests::tools::{Tool, assert_same_tree, make_tree};
use compat_tests::{TestCluster, test_bytes};

/// `rclone lsl` lines (size, modtime, path), sorted.
fn lsl(rclone: &Tool, target: &str) -> Vec<String> {
    let mut lines: Vec<String> = rclone.run(&["lsl", target]).lines().map(|l| l.trim().to_string()).collect();
    lines.sort_by(|a, b| a.rsplit_once(' ').map(|x| x.1).cmp(&b.rsplit_once(' ').map(|x| x.1)).then(a.cmp(b)));
    lines
}

fn transfers(stderr: &[u8]) -> usize {
    String::from_utf8_lossy(stderr).lines().filter(|l| l.contains(": Copied (")).count()
}

#[test]
fn sync_check_modtimes_and_a_big_multipart_copy() {
    let cluster = TestCluster::start(3, 2);
    let work = tempfile::tempdir().unwrap();
    let Some(rclone) = Tool::rclone(&cluster, work.path()) else { return };
    let source = work.path().join("source");
    let files = make_tree(&source, 300);
    let src = source.to_str().unwrap();

    let first = rclone.output(&["sync", src, "cairn:tree/backup", "-v"]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert_eq!(transfers(&first.stderr), files.len(), "{}", String::from_utf8_lossy(&first.stderr));
    rclone.run(&["check", src, "cairn:tree/backup"]);
    let second = rclone.output(&["sync", src, "cairn:tree/backup", "-v"]);
    assert!(second.status.success());
    assert_eq!(transfers(&second.stderr), 0, "{}", String::from_utf8_lossy(&second.stderr));
    assert_eq!(lsl(&rclone, src), lsl(&rclone, "cairn:tree/backup"), "sizes, modtimes and names match");

    // A new modtime on an unchanged file: rclone updates the object's metadata with a copy
    // onto itself, transferring no data.
    let touched = source.join(&files[1]);
    let file = std::fs::File::options().write(true).open(&touched).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(86_400 * 3)).unwrap();
    drop(file);
    let third = rclone.output(&["sync", src, "cairn:tree/backup", "-v"]);
    assert!(third.status.success(), "{}", String::from_utf8_lossy(&third.stderr));
    assert_eq!(transfers(&third.stderr), 0, "{}", String::from_utf8_lossy(&third.stderr));
    assert_eq!(lsl(&rclone, src), lsl(&rclone, "cairn:tree/backup"), "modtime updated in place");

    // 200 MB, multipart (parts of 16 MiB above a 100 MiB cutoff), and back.
    let big_dir = work.path().join("big");
    std::fs::create_dir_all(&big_dir).unwrap();
    let data = test_bytes(200 * 1000 * 1000, 77);
    std::fs::write(big_dir.join("big.bin"), &data).unwrap();
    let multipart = ["--s3-upload-cutoff", "100M", "--s3-chunk-size", "16M"];
    let mut args = vec!["copy", big_dir.to_str().unwrap(), "cairn:big"];
    args.extend(multipart);
    rclone.run(&args);
    let size = rclone.run(&["size", "cairn:big", "--json"]);
    assert!(size.contains("\"bytes\":200000000"), "{size}");
    let back = work.path().join("big-back");
    rclone.run(&["copy", "cairn:big", back.to_str().unwrap()]);
    assert!(std::fs::read(back.join("big.bin")).unwrap() == data, "200 MB round trip");

    let restored = work.path().join("restored");
    rclone.run(&["sync", "cairn:tree/backup", restored.to_str().unwrap()]);
    assert_same_tree(&source, &restored);
    assert_eq!(lsl(&rclone, src), lsl(&rclone, restored.to_str().unwrap()), "modtimes restored");
}

/// rclone's view of a versioned bucket: `--s3-versions` lists the old version beside the
/// current one, and `--s3-version-at` reads the bucket as it was.
#[test]
fn versions_and_version_at() {
    let cluster = TestCluster::start(3, 2);
    let work = tempfile::tempdir().unwrap();
    let Some(rclone) = Tool::rclone(&cluster, work.path()) else { return };
    rclone.run(&["mkdir", "cairn:vers"]);
    rclone.run(&["backend", "versioning", "cairn:vers", "Enabled"]);
    assert_eq!(rclone.run(&["backend", "versioning", "cairn:vers"]).trim(), "Enabled");
    let file = work.path().join("doc.txt");
    std::fs::write(&file, "first").unwrap();
    rclone.run(&["copyto", file.to_str().unwrap(), "cairn:vers/doc.txt"]);
    // Versions are told apart by their modification times, to the second.
    std::thread::sleep(Duration::from_millis(2100));
    let between = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(&file, "second version").unwrap();
    rclone.run(&["copyto", file.to_str().unwrap(), "cairn:vers/doc.txt"]);

    let current = rclone.run(&["ls", "cairn:vers"]);
    assert_eq!(current.lines().count(), 1, "{current}");
    let all = rclone.run(&["ls", "--s3-versions", "cairn:vers"]);
    let names: Vec<&str> = all.lines().map(|l| l.split_whitespace().last().unwrap()).collect();
    assert_eq!(names.len(), 2, "{all}");
    assert!(names.contains(&"doc.txt"), "{all}");
    assert!(names.iter().any(|n| n.starts_with("doc-v") && n.ends_with(".txt")), "{all}");
    assert_eq!(rclone.run(&["cat", "cairn:vers/doc.txt"]), "second version");
    assert_eq!(rclone.run(&["cat", "--s3-version-at", &between, "cairn:vers/doc.txt"]), "first");
}
