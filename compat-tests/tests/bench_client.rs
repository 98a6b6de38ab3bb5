//! `s3bench`'s lean client signs SigV4 by hand (`src/bin/s3bench/lean.rs`): the figures it
//! produces mean something only if the gateway accepts every request it sends and answers it
//! as the SDK would. Each operation runs briefly against a test cluster and must finish with
//! requests done and none failed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use compat_tests::TestCluster;

/// Runs `s3bench ENDPOINT op 1 2 4096` with the lean client; returns (ok, errors).
fn run(cluster: &TestCluster, op: &str) -> (u64, u64) {
    let out = std::process::Command::new(compat_tests::binary("s3bench"))
        .args([&cluster.endpoint(), op, "1", "2", "4096"])
        .env("S3BENCH_CLIENT", "lean")
        .env("AWS_ACCESS_KEY_ID", compat_tests::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", compat_tests::SECRET_KEY)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "s3bench {op}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    // "put  123 ops/s  (456 ok, 0 errors, …"
    let counts = stdout.split('(').nth(1).unwrap_or_else(|| panic!("s3bench {op} said: {stdout}"));
    let number = |word: &str| -> u64 {
        let before = counts.split(word).next().unwrap();
        before.trim_end().rsplit([' ', ',']).next().unwrap().parse().unwrap_or_else(|_| panic!("{stdout}"))
    };
    (number(" ok"), number(" errors"))
}

#[test]
fn the_lean_benchmark_client_is_accepted_for_every_operation() {
    let cluster = TestCluster::start(3, 2);
    for op in ["put", "get", "head", "head-missing", "mixed"] {
        let (ok, errors) = run(&cluster, op);
        assert!(ok > 0 && errors == 0, "{op}: {ok} ok, {errors} errors");
    }
}
