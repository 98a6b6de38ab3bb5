//! Driving the external clients (aws cli, rclone, python with boto3, s3cmd) against a test cluster,
//! and the file trees they sync.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::{ACCESS_KEY, SECRET_KEY, TestCluster, require_tool, test_bytes};

/// One external client, configured for a cluster, with its config kept in `home`.
pub struct Tool {
    program: PathBuf,
    envs: Vec<(String, String)>,
    prefix_args: Vec<String>,
}

impl Tool {
    /// aws cli with the root key; `None` (after a loud skip message) when absent outside CI.
    pub fn aws(cluster: &TestCluster, home: &Path) -> Option<Self> {
        let program = require_tool("aws")?;
        Some(Self {
            program,
            envs: vec![
                ("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY.into()),
                ("AWS_SECRET_ACCESS_KEY".into(), SECRET_KEY.into()),
                ("AWS_DEFAULT_REGION".into(), "us-east-1".into()),
                ("AWS_CONFIG_FILE".into(), home.join("aws-config").display().to_string()),
                ("AWS_SHARED_CREDENTIALS_FILE".into(), home.join("aws-credentials").display().to_string()),
            ],
            prefix_args: vec!["--endpoint-url".into(), cluster.endpoint()],
        })
    }

    /// rclone with a remote named `cairn:` for the cluster (config in environment variables).
    pub fn rclone(cluster: &TestCluster, home: &Path) -> Option<Self> {
        let program = require_tool("rclone")?;
        let remote = [
            ("TYPE", "s3"),
            ("PROVIDER", "Other"),
            ("ACCESS_KEY_ID", ACCESS_KEY),
            ("SECRET_ACCESS_KEY", SECRET_KEY),
            ("REGION", "us-east-1"),
            ("FORCE_PATH_STYLE", "true"),
        ];
        let mut envs: Vec<(String, String)> =
            remote.iter().map(|(k, v)| (format!("RCLONE_CONFIG_CAIRN_{k}"), v.to_string())).collect();
        envs.push(("RCLONE_CONFIG_CAIRN_ENDPOINT".into(), cluster.endpoint()));
        envs.push(("RCLONE_CONFIG".into(), home.join("rclone.conf").display().to_string()));
        Some(Self { program, envs, prefix_args: Vec::new() })
    }

    /// python3 that can `import boto3`, with the cluster's endpoint and key in the environment
    /// (`CAIRN_ENDPOINT`, `AWS_ACCESS_KEY_ID`, …).
    pub fn boto3(cluster: &TestCluster, home: &Path) -> Option<Self> {
        let program = require_tool("python3")?;
        let has_boto3 = Command::new(&program).args(["-c", "import boto3"]).status().is_ok_and(|s| s.success());
        if !has_boto3 {
            assert!(!crate::in_ci(), "boto3 is required in CI but is not installed");
            eprintln!("\n!!!!! SKIPPING: python3 cannot import boto3; this test needs it (CI installs it) !!!!!\n");
            return None;
        }
        Some(Self {
            program,
            envs: vec![
                ("CAIRN_ENDPOINT".into(), cluster.endpoint()),
                ("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY.into()),
                ("AWS_SECRET_ACCESS_KEY".into(), SECRET_KEY.into()),
                ("AWS_DEFAULT_REGION".into(), "us-east-1".into()),
                ("AWS_CONFIG_FILE".into(), home.join("aws-config").display().to_string()),
                ("AWS_SHARED_CREDENTIALS_FILE".into(), home.join("aws-credentials").display().to_string()),
            ],
            prefix_args: Vec::new(),
        })
    }

    /// s3cmd signing with SigV2, path-style, with the root key (config file in `home`).
    pub fn s3cmd(cluster: &TestCluster, home: &Path) -> Option<Self> {
        let program = require_tool("s3cmd")?;
        let endpoint = cluster.endpoint();
        let host = endpoint.trim_start_matches("http://");
        let config = home.join("s3cfg");
        let text = format!(
            "[default]\naccess_key = {ACCESS_KEY}\nsecret_key = {SECRET_KEY}\nhost_base = {host}\n\
             host_bucket = {host}\nuse_https = False\nsignature_v2 = True\nbucket_location = us-east-1\n"
        );
        std::fs::write(&config, text).unwrap_or_else(|e| panic!("{}: {e}", config.display()));
        Some(Self { program, envs: Vec::new(), prefix_args: vec!["-c".into(), config.display().to_string()] })
    }

    /// The same tool against another S3 endpoint of the cluster (e.g. its HTTPS URL).
    pub fn with_endpoint(mut self, endpoint: &str) -> Self {
        if let Some(arg) = self.prefix_args.windows(2).position(|w| w[0] == "--endpoint-url").map(|i| i + 1) {
            self.prefix_args[arg] = endpoint.into();
        }
        for (name, value) in &mut self.envs {
            if name == "CAIRN_ENDPOINT" || name == "RCLONE_CONFIG_CAIRN_ENDPOINT" {
                *value = endpoint.into();
            }
        }
        self
    }

    /// The same tool with one more environment variable.
    pub fn with_env(mut self, name: &str, value: &str) -> Self {
        self.envs.push((name.into(), value.into()));
        self
    }

    /// The same tool with more arguments before each command's own.
    pub fn with_args(mut self, args: &[&str]) -> Self {
        self.prefix_args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Runs the tool; returns its output whatever the exit status.
    pub fn output(&self, args: &[&str]) -> Output {
        Command::new(&self.program)
            .args(&self.prefix_args)
            .args(args)
            // The cluster speaks plain HTTP; a CA bundle from the environment only makes
            // rclone's AWS SDK refuse to start.
            .env_remove("AWS_CA_BUNDLE")
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.program.display()))
    }

    /// Runs the tool, asserts success, returns stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let output = self.output(args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{} {args:?} failed ({}):\n{stdout}\n{}",
            self.program.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }
}

/// Writes `count` files into nested folders whose names have spaces and unicode; sizes mix
/// empty, small and a few of several hundred KiB. Returns the relative paths.
pub fn make_tree(root: &Path, count: usize) -> Vec<PathBuf> {
    let folders = ["", "docs", "docs/sub dir", "photos/été 2024", "a/b/c/deep", "日本語/資料", "with+plus & more"];
    let mut paths = Vec::with_capacity(count);
    for i in 0..count {
        let folder = folders[i % folders.len()];
        let name = match i % 5 {
            0 => format!("file {i}.txt"),
            1 => format!("naïve-{i}.bin"),
            2 => format!("{i}"),
            3 => format!("données {i}.dat"),
            _ => format!("x-{i}.log"),
        };
        let relative = Path::new(folder).join(name);
        let size = match i % 10 {
            0 => 0,
            9 => 300_000 + i,
            n => 100 + n * 997 + i,
        };
        let path = root.join(&relative);
        std::fs::create_dir_all(path.parent().unwrap_or(root)).unwrap_or_else(|e| panic!("mkdir: {e}"));
        std::fs::write(&path, test_bytes(size, i as u64 + 1000)).unwrap_or_else(|e| panic!("write: {e}"));
        paths.push(relative);
    }
    paths
}

/// Asserts two trees hold the same files with the same bytes.
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let output = Command::new("diff").arg("-r").arg(expected).arg(actual).output();
    let output = output.unwrap_or_else(|e| panic!("cannot run diff: {e}"));
    assert!(
        output.status.success(),
        "trees differ:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A Python Selenium script driving headless Chromium (Debian's `chromium` and
/// `chromium-driver`), started with `CHROMIUM`, `CHROMEDRIVER` and `envs` in its environment and
/// stdin and stdout piped; `None` (after a loud skip message) when any of them is absent
/// outside CI.
pub fn start_browser_script(script: &str, envs: &[(&str, &str)]) -> Option<std::process::Child> {
    let (Some(python), Some(chromium), Some(driver)) =
        (require_tool("python3"), require_tool("chromium"), require_tool("chromedriver"))
    else {
        return None;
    };
    if !Command::new(&python).args(["-c", "import selenium"]).status().is_ok_and(|s| s.success()) {
        assert!(!crate::in_ci(), "selenium is required in CI but is not installed");
        eprintln!("\n!!!!! SKIPPING: python3 cannot import selenium; this test needs it (CI installs it) !!!!!\n");
        return None;
    }
    let child = Command::new(python)
        .arg(script)
        .env("CHROMIUM", chromium)
        .env("CHROMEDRIVER", driver)
        .envs(envs.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {script}: {e}"));
    Some(child)
}

/// A request without credentials, made with curl: its status and body (`body`: the request's
/// body). Callers check `require_tool("curl")` first, to skip loudly without it.
pub fn anonymous_curl(method: &str, url: &str, body: Option<&str>) -> (u16, String) {
    let curl = require_tool("curl").expect("curl");
    let mut command = Command::new(curl);
    command.args(["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "20"]);
    // `-X HEAD` would wait for the body the headers announce.
    match method {
        "HEAD" => command.arg("-I"),
        _ => command.args(["-X", method]),
    };
    if let Some(body) = body {
        command.args(["-H", "Content-Type: text/plain", "--data-binary", body]);
    }
    let out = command.arg(url).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.trim().parse().unwrap(), body.to_string())
}
