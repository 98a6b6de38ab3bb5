//! What `deploy/` ships works as shipped: the example configuration files are read by the
//! daemons (`--print-config`), what they print reads back the same, and the systemd units pass
//! `systemd-analyze verify` without a warning.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use compat_tests::{binary, require_tool};

fn deploy(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(file)
}

/// Runs a daemon with `args`; asserts success and returns stdout.
fn run_ok(name: &str, args: &[String]) -> String {
    let output = Command::new(binary(name)).args(args).env_remove("RUST_LOG").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{name} {args:?}:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// `--print-config` of the example file (secrets given as flags, since the files they name
/// exist only on a real host), then of what it printed: the same both times.
fn prints_back_the_same(name: &str, serve: &[&str], file: &str, secrets: &[&str], expect: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let example = deploy(file);
    let config = |path: &str| -> Vec<String> {
        [serve, &["--config", path, "--print-config"], secrets].concat().into_iter().map(str::to_string).collect()
    };
    let printed = run_ok(name, &config(example.to_str().unwrap()));
    for line in expect {
        assert!(printed.lines().any(|l| l == *line), "{name}: {line:?} not in\n{printed}");
    }
    for secret in secrets.iter().filter(|s| !s.starts_with("--")) {
        assert!(!printed.contains(secret), "{name} printed a secret:\n{printed}");
    }
    let again = dir.path().join("printed.toml");
    std::fs::write(&again, &printed).unwrap();
    assert_eq!(
        run_ok(name, &config(again.to_str().unwrap())),
        printed,
        "{name}: printed config reads back differently"
    );
}

#[test]
fn the_example_configurations_are_read_and_print_back_the_same() {
    prints_back_the_same(
        "cairn-volumed",
        &[],
        "cairn-volumed.toml",
        &["--cluster-secret", "volumed-example-secret"],
        &["listen = \"0.0.0.0:9101\"", "dirs = [\"/srv/disk1/cairn\", \"/srv/disk2/cairn\"]", "init = false"],
    );
    prints_back_the_same(
        "cairn-gateway",
        &["serve"],
        "cairn-gateway.toml",
        &[
            "--cluster-secret",
            "gw-example-cluster",
            "--secret-key",
            "gw-example-secret",
            "--admin-token",
            "gw-example-token",
        ],
        &["listen = \"0.0.0.0:9000\"", "index = \"rocksdb:/var/lib/cairn/index\"", "replicas = 2", "write_quorum = 2"],
    );
}

#[test]
fn the_systemd_units_verify_cleanly() {
    let Some(analyze) = require_tool("systemd-analyze") else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for unit in ["cairn-gateway.service", "cairn-volumed.service"] {
        // The units name the installed binaries; verify checks that they exist, so point them
        // at the ones just built (nothing else changes).
        let text = std::fs::read_to_string(deploy(unit)).unwrap();
        assert!(text.contains("ExecStart=/usr/local/bin/"), "{unit}");
        let bin_dir = compat_tests::bin_dir();
        let text = text.replace("/usr/local/bin/", &format!("{}/", bin_dir.display()));
        for hardening in ["ProtectSystem=strict", "NoNewPrivileges=true", "PrivateTmp=true", "LoadCredential="] {
            assert!(text.contains(hardening), "{unit} lacks {hardening}");
        }
        let path = dir.path().join(unit);
        std::fs::write(&path, text).unwrap();
        units.push(path);
    }
    let output = Command::new(analyze).args(["verify", "--man=no"]).args(&units).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && said.trim().is_empty(), "systemd-analyze verify:\n{said}");
}
