//! `cairn-admin rebuild` and the membership the volumes keep.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
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
