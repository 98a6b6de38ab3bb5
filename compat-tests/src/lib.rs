//! Harness for cross-process tests: starts real `cairn-volumed` and `cairn-gateway`
//! processes on loopback ports in temp directories, hands out clients, and kills every
//! process it started when dropped.
//!
//! The binaries are found in `CAIRN_BIN_DIR`, or else next to the test executable's
//! `target/<profile>/` directory; run `cargo build --bins` first.
//!
//! The index engine under test is RocksDB (a directory under the cluster's temp dir), or, with
//! `CAIRN_TEST_INDEX=postgres`, PostgreSQL: every cluster that does not name its own `--index`
//! gets a fresh database on a private server shared by the clusters of the test process
//! (`scripts/test` runs the main suites a second time this way).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod tools;

/// A private PostgreSQL server (the gateway's engine tests use the same file).
#[path = "../../gateway/src/engine/test_postgres.rs"]
pub mod postgres;
pub mod prometheus;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{Credentials, Region};
use postgres::TestPostgres;

pub const ACCESS_KEY: &str = "CAIRNTESTACCESSKEY01";
pub const SECRET_KEY: &str = "cairn-test-secret-key-0123456789abcdefgh";
pub const CLUSTER_SECRET: &str = "cairn-test-cluster-secret";
pub const ADMIN_TOKEN: &str = "cairn-test-admin-token";
/// The root owner's canonical id (`gateway::owner::ROOT_ID`): the owner of the root key's
/// buckets.
pub const ROOT_OWNER_ID: &str = "422b9b954c60e550413a729ddd087922673fd0264e6192f1f45deab34099d298";

/// Directory holding the built binaries.
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CAIRN_BIN_DIR") {
        return PathBuf::from(dir);
    }
    // target/<profile>/deps/<test binary>
    let exe = std::env::current_exe().expect("current exe");
    exe.parent().and_then(Path::parent).expect("target dir").to_path_buf()
}

pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(path.exists(), "{} not found: run `cargo build --bins` first (or set CAIRN_BIN_DIR)", path.display());
    path
}

/// A free loopback port: bind port 0, read it, release it for the child to take.
/// A port for a test process to listen on. Ports come from below Linux's ephemeral range
/// (32768+): a port the OS handed out with `bind(0)` and that was released could be taken
/// again by any outgoing connection (the gateway's to its volumes) before the test process
/// binds it. Each port is handed out once per test binary.
pub fn free_port() -> u16 {
    use std::sync::Mutex;
    static USED: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut used = USED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    loop {
        let port = rand::random_range(20_000..32_000u16);
        if !used.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            used.push(port);
            return port;
        }
    }
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    if let Err(status) = try_wait_for_port(port, child, what) {
        panic!("{what} exited early with {status}");
    }
}

/// Waits until `child` listens on `port`; its exit status if it exited first.
fn try_wait_for_port(port: u16, child: &mut Child, what: &str) -> Result<(), ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on {port} within 30 s");
}

/// Whether an HTTP server answers on `port` (a bound listener that does not accept yet
/// leaves the request unanswered).
fn answers_http(port: u16) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let request = b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let mut first = [0u8; 5];
    stream.write_all(request).is_ok() && stream.read_exact(&mut first).is_ok() && first == *b"HTTP/"
}

/// The index engine the harness gives clusters that do not name their own (`--index`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestIndex {
    /// A RocksDB directory under the cluster's temp dir ([`TestCluster::db_dir`]); the default.
    RocksDb,
    /// A fresh database on a private PostgreSQL server: `CAIRN_TEST_INDEX=postgres`.
    Postgres,
}

/// The engine chosen by `CAIRN_TEST_INDEX` (`rocksdb`, the default, or `postgres`).
pub fn test_index() -> TestIndex {
    match std::env::var("CAIRN_TEST_INDEX").as_deref() {
        Err(_) | Ok("" | "rocksdb") => TestIndex::RocksDb,
        Ok("postgres") => TestIndex::Postgres,
        Ok(other) => panic!("CAIRN_TEST_INDEX must be rocksdb or postgres, not {other:?}"),
    }
}

/// How the harness's volume daemons store small blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBlobs {
    /// A file per blob (`--pack-threshold 0`), so tests can find, count and damage copies as
    /// files ([`Volume::blob_files`]); the default.
    Files,
    /// volumed's own defaults: small blobs packed into segments. `CAIRN_TEST_BLOBS=packed`.
    Packed,
}

/// The layout chosen by `CAIRN_TEST_BLOBS` (`files`, the default, or `packed`).
pub fn test_blobs() -> TestBlobs {
    match std::env::var("CAIRN_TEST_BLOBS").as_deref() {
        Err(_) | Ok("" | "files") => TestBlobs::Files,
        Ok("packed") => TestBlobs::Packed,
        Ok(other) => panic!("CAIRN_TEST_BLOBS must be files or packed, not {other:?}"),
    }
}

/// Whether a test that only makes sense on a RocksDB index must skip, because this run gives
/// clusters a PostgreSQL index; says so loudly, with `why` the test needs RocksDB.
pub fn skip_unless_rocksdb(test: &str, why: &str) -> bool {
    let skip = test_index() == TestIndex::Postgres;
    if skip {
        eprintln!("\n!!!!! SKIPPING {test} under CAIRN_TEST_INDEX=postgres: {why} !!!!!\n");
    }
    skip
}

/// A cluster's own database on the test process's PostgreSQL server.
pub struct PostgresIndex {
    /// Shared by the clusters alive at the same time: one `initdb` (over a second) serves
    /// them all, a `createdb` (a tenth of one) each. The last one to drop stops the server.
    pub server: Arc<TestPostgres>,
    /// The database's URL, as given to `--index`.
    pub url: String,
}

impl PostgresIndex {
    fn new() -> Self {
        // Held only while no server runs and one is started, so that clusters starting
        // together share it. A `Weak`, not the server: a static is never dropped, and the
        // server must stop when the tests are done (not linger after the test process).
        static SERVER: Mutex<Weak<TestPostgres>> = Mutex::new(Weak::new());
        let server = {
            let mut shared = SERVER.lock().unwrap_or_else(PoisonError::into_inner);
            match shared.upgrade() {
                Some(server) => server,
                None => {
                    // Asked for by name: a missing server is a failure here, in CI or not.
                    let server = TestPostgres::start("CAIRN_TEST_INDEX=postgres")
                        .expect("CAIRN_TEST_INDEX=postgres needs PostgreSQL: run scripts/setup --test");
                    let server = Arc::new(server);
                    *shared = Arc::downgrade(&server);
                    server
                }
            }
        };
        let url = server.create_database();
        Self { server, url }
    }
}

/// A killed-on-drop child process.
pub struct Proc {
    child: Child,
}

impl Proc {
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited (and then how).
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Stops the process as an operator does (SIGTERM) and waits for it to exit (killing it
    /// after 30 s).
    pub fn stop(&mut self) {
        let status = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().unwrap();
        assert!(status.success(), "kill -TERM {}", self.pid());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        panic!("the process did not stop within 30 s of SIGTERM");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One volume daemon: its port, its directories, and its process while running.
pub struct Volume {
    pub port: u16,
    pub dirs: Vec<PathBuf>,
    pub proc: Option<Proc>,
    /// Extra flags for `cairn-volumed`; naming `--pack-threshold` overrides [`test_blobs`].
    pub args: Vec<String>,
}

impl Volume {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn start(&mut self) {
        let mut cmd = Command::new(binary("cairn-volumed"));
        cmd.arg("--listen").arg(format!("127.0.0.1:{}", self.port)).arg("--cluster-secret").arg(CLUSTER_SECRET);
        // Fresh directories, all on the test machine's one disk.
        cmd.args(["--init", "--allow-shared-fs"]);
        for dir in &self.dirs {
            cmd.arg("--dir").arg(dir);
        }
        if !self.packs() && !self.args.iter().any(|a| a == "--pack-threshold") {
            cmd.args(["--pack-threshold", "0"]);
        }
        cmd.args(&self.args);
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::inherit()).env("RUST_LOG", "warn").spawn().unwrap();
        wait_for_port(self.port, &mut child, "cairn-volumed");
        self.proc = Some(Proc { child });
    }

    pub fn kill(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.kill();
        }
    }

    /// Freezes the process (SIGSTOP): it keeps its sockets, so connections are accepted by
    /// the kernel and then hang, as with a hung disk.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused process (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.proc.as_ref().expect("volume is running").pid();
        let status = Command::new("kill").args([signal, &pid.to_string()]).status().unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Whether this volume packs small blobs into segments: as its flags say, else as
    /// [`test_blobs`] says.
    pub fn packs(&self) -> bool {
        match self.args.iter().position(|a| a == "--pack-threshold") {
            Some(flag) => self.args.get(flag + 1).is_some_and(|threshold| threshold != "0"),
            None => test_blobs() == TestBlobs::Packed,
        }
    }

    /// Blob files (not temp files, not identity files) under this volume's directories.
    pub fn blob_files(&self) -> Vec<PathBuf> {
        // Packed blobs live inside segments: a test counting or damaging files would pass
        // vacuously or fail for the wrong reason.
        assert!(!self.packs(), "this test inspects blob files: leave it out of CAIRN_TEST_BLOBS=packed runs");
        let mut out = Vec::new();
        for dir in &self.dirs {
            collect_blobs(dir, &mut out);
        }
        out
    }
}

fn collect_blobs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_blobs(&path, out);
        } else if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.len() == 32 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            out.push(path);
        }
    }
}

/// A running cluster: volumes plus one gateway.
pub struct TestCluster {
    pub volumes: Vec<Volume>,
    pub gateway: Option<Proc>,
    pub s3_port: u16,
    pub admin_port: u16,
    pub replicas: usize,
    /// Extra flags for `cairn-gateway serve`.
    pub gateway_args: Vec<String>,
    /// Where the gateway logs: `None` is the test's stderr at `CAIRN_TEST_LOG` (else `warn`).
    pub gateway_log: Option<GatewayLog>,
    /// More gateways over the same index and volumes (a shared index: `--index postgres://…`).
    pub more_gateways: Vec<ExtraGateway>,
    pub root: tempfile::TempDir,
    /// The PostgreSQL index the harness made (`CAIRN_TEST_INDEX=postgres`) when the test named
    /// none. Last: fields drop in order, so the gateways above stop before their index.
    pub postgres: Option<PostgresIndex>,
}

/// A further gateway of a [`TestCluster`], with its own ports.
pub struct ExtraGateway {
    pub proc: Option<Proc>,
    pub s3_port: u16,
    pub admin_port: u16,
}

impl ExtraGateway {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// An aws-sdk-s3 client of this gateway with the root key.
    pub fn client(&self) -> aws_sdk_s3::Client {
        s3_client(&self.endpoint(), ACCESS_KEY, SECRET_KEY)
    }

    /// Stops this gateway cleanly (SIGTERM).
    pub fn stop(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.stop();
        }
    }
}

/// The gateway's log kept in a file for the test to read, at a level the test chooses.
pub struct GatewayLog {
    /// `RUST_LOG` for the gateway; `None` leaves it unset: the gateway's default level.
    pub rust_log: Option<String>,
    /// The file the gateway's stderr is appended to (across restarts).
    pub path: PathBuf,
}

impl TestCluster {
    /// `volumes` volume daemons with two subvolumes each and a gateway with `replicas`.
    pub fn start(volumes: usize, replicas: usize) -> Self {
        Self::start_with(volumes, replicas, &[])
    }

    /// Like [`TestCluster::start`], with extra flags for the gateway.
    pub fn start_with(volumes: usize, replicas: usize, gateway_args: &[&str]) -> Self {
        Self::start_with_volume_args(volumes, replicas, &[], gateway_args)
    }

    /// Like [`TestCluster::start_with`], with extra flags for every volume daemon too.
    pub fn start_with_volume_args(
        volumes: usize,
        replicas: usize,
        volume_args: &[&str],
        gateway_args: &[&str],
    ) -> Self {
        let mut cluster = Self::start_volumes(volumes, replicas, volume_args, gateway_args);
        cluster.start_gateway();
        cluster
    }

    /// Like [`TestCluster::start`], with the gateway's log in a file (read it with
    /// [`TestCluster::gateway_log`]) at `rust_log`, or at the gateway's default level.
    pub fn start_logging(volumes: usize, replicas: usize, rust_log: Option<&str>) -> Self {
        let mut cluster = Self::start_volumes(volumes, replicas, &[], &[]);
        let path = cluster.root.path().join("gateway.log");
        cluster.gateway_log = Some(GatewayLog { rust_log: rust_log.map(str::to_string), path });
        cluster.start_gateway();
        cluster
    }

    /// The volumes running, the gateway not started yet.
    fn start_volumes(volumes: usize, replicas: usize, volume_args: &[&str], gateway_args: &[&str]) -> Self {
        let root = tempfile::tempdir().unwrap();
        let volumes: Vec<Volume> = (0..volumes)
            .map(|v| Volume {
                port: free_port(),
                dirs: (0..2).map(|s| root.path().join(format!("vol{v}")).join(format!("sv{s}"))).collect(),
                proc: None,
                args: volume_args.iter().map(|a| a.to_string()).collect(),
            })
            .collect();
        let gateway_args: Vec<String> = gateway_args.iter().map(|a| a.to_string()).collect();
        let names_index = gateway_args.iter().any(|a| a == "--index" || a == "--db");
        let postgres = (test_index() == TestIndex::Postgres && !names_index).then(PostgresIndex::new);
        let mut cluster = Self {
            volumes,
            gateway: None,
            s3_port: free_port(),
            admin_port: free_port(),
            replicas,
            gateway_args,
            gateway_log: None,
            more_gateways: Vec::new(),
            root,
            postgres,
        };
        for volume in &mut cluster.volumes {
            volume.start();
        }
        cluster
    }

    /// What the gateway has logged so far, when started with [`TestCluster::start_logging`].
    pub fn gateway_log(&self) -> String {
        let log = self.gateway_log.as_ref().expect("started with TestCluster::start_logging");
        std::fs::read_to_string(&log.path).unwrap_or_default()
    }

    /// The gateway's RocksDB index directory (when the test named no `--index`).
    pub fn db_dir(&self) -> PathBuf {
        // A test that reaches for the directory needs RocksDB: it must skip under
        // CAIRN_TEST_INDEX=postgres (`skip_unless_rocksdb`) rather than pass vacuously.
        assert!(
            self.postgres.is_none(),
            "this test uses the RocksDB index directory: skip it under CAIRN_TEST_INDEX=postgres"
        );
        self.root.path().join("index")
    }

    pub fn start_gateway(&mut self) {
        let (s3_port, admin_port) = (self.s3_port, self.admin_port);
        self.gateway = Some(self.spawn_gateway(s3_port, admin_port, &[]));
    }

    /// Starts one more gateway over the same index and volumes, on ports of its own; returns
    /// its position in [`TestCluster::more_gateways`]. Needs a shared index (`--index
    /// postgres://…` among the gateway arguments).
    pub fn start_another_gateway(&mut self) -> usize {
        self.start_another_gateway_with_env(&[])
    }

    /// Like [`TestCluster::start_another_gateway`], with extra environment variables.
    pub fn start_another_gateway_with_env(&mut self, env: &[(&str, &str)]) -> usize {
        let (s3_port, admin_port) = (free_port(), free_port());
        let proc = self.spawn_gateway(s3_port, admin_port, env);
        self.more_gateways.push(ExtraGateway { proc: Some(proc), s3_port, admin_port });
        self.more_gateways.len() - 1
    }

    /// Starts a gateway on the given ports and waits until both of its listeners answer.
    fn spawn_gateway(&self, s3_port: u16, admin_port: u16, env: &[(&str, &str)]) -> Proc {
        let mut child = self.gateway_command(s3_port, admin_port, env).spawn().unwrap();
        if let Err(status) = self.wait_until_started(&mut child, s3_port, admin_port) {
            panic!("cairn-gateway exited early with {status}");
        }
        Proc { child }
    }

    /// Waits until a new gateway listens; its exit status if it exited first.
    fn wait_until_started(&self, child: &mut Child, s3_port: u16, admin_port: u16) -> Result<(), ExitStatus> {
        try_wait_for_port(s3_port, child, "cairn-gateway")?;
        // The gateway binds first and then waits for its volumes: wait until the admin API answers.
        try_wait_for_port(admin_port, child, "cairn-gateway (admin API)")?;
        if !self.index_is_postgres() {
            return Ok(());
        }
        // On PostgreSQL it registers and joins after binding, which takes longer: a bound port
        // is not enough, wait for an answer.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(status);
            }
            if answers_http(admin_port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("cairn-gateway did not answer on its admin port {admin_port} within 30 s");
    }

    /// Whether the gateways' index is in PostgreSQL: the harness's, or one the test named.
    fn index_is_postgres(&self) -> bool {
        self.postgres.is_some()
            || self.gateway_args.windows(2).any(|w| w[0] == "--index" && w[1].starts_with("postgres"))
    }

    /// The command line of a gateway on the given ports.
    fn gateway_command(&self, s3_port: u16, admin_port: u16, env: &[(&str, &str)]) -> Command {
        let urls: Vec<String> = self.volumes.iter().map(Volume::url).collect();
        // A test that names its index (`--index postgres://…`) gets no other one.
        let index: Vec<std::ffi::OsString> = if self.gateway_args.iter().any(|a| a == "--index" || a == "--db") {
            vec![]
        } else if let Some(postgres) = &self.postgres {
            vec!["--index".into(), postgres.url.clone().into()]
        } else {
            vec!["--db".into(), self.db_dir().into_os_string()]
        };
        let mut command = Command::new(binary("cairn-gateway"));
        command
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{s3_port}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
            .args(index)
            .args(["--volumes", &urls.join(",")])
            .args(["--replicas", &self.replicas.to_string()])
            .args(["--cluster-secret", CLUSTER_SECRET, "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .args(["--admin-token", ADMIN_TOKEN])
            .args(&self.gateway_args)
            .envs(env.iter().copied())
            .stdout(Stdio::null());
        match &self.gateway_log {
            None => {
                command
                    .env("RUST_LOG", std::env::var("CAIRN_TEST_LOG").unwrap_or_else(|_| "warn".into()))
                    .stderr(Stdio::inherit());
            }
            Some(log) => {
                match &log.rust_log {
                    Some(filter) => command.env("RUST_LOG", filter),
                    None => command.env_remove("RUST_LOG"),
                };
                let file = std::fs::OpenOptions::new().create(true).append(true).open(&log.path).unwrap();
                command.stderr(file);
            }
        }
        command
    }

    /// Stops the gateway cleanly (SIGTERM), as an operator does before `cairn-admin rebuild`:
    /// it says goodbye to its volumes, so a rebuild may start at once. (Dropping it kills it,
    /// and a rebuild then waits until the volumes have not heard from it for a few seconds.)
    pub fn stop_gateway(&mut self) {
        if let Some(mut gateway) = self.gateway.take() {
            gateway.stop();
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// An aws-sdk-s3 client (path style, current defaults incl. checksums) with the root key.
    pub fn client(&self) -> aws_sdk_s3::Client {
        self.client_with(ACCESS_KEY, SECRET_KEY)
    }

    /// An aws-sdk-s3 client that never retries and gives up on a request after `timeout`:
    /// fault tests see every outcome as it happened.
    pub fn client_without_retries(&self, timeout: Duration) -> aws_sdk_s3::Client {
        client_without_retries(&self.endpoint(), timeout)
    }

    pub fn client_with(&self, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
        s3_client(&self.endpoint(), access_key, secret_key)
    }

    /// A new access key (`cairn-admin key create NAME --json` plus `extra`): its client and
    /// its owner's canonical id.
    pub fn new_key(&self, name: &str, extra: &[&str]) -> (aws_sdk_s3::Client, String) {
        let args = [&["key", "create", name, "--json"][..], extra].concat();
        let created: serde_json::Value = serde_json::from_str(&self.admin_ok(&args)).unwrap();
        let client = self
            .client_with(created["access_key_id"].as_str().unwrap(), created["secret_access_key"].as_str().unwrap());
        (client, created["owner_id"].as_str().unwrap().to_string())
    }

    /// Runs `cairn-admin` against this cluster's admin API; returns its output.
    pub fn admin(&self, args: &[&str]) -> std::process::Output {
        self.admin_via(&self.admin_url(), args)
    }

    /// Runs `cairn-admin` against the admin API at `admin_url` (another gateway's).
    pub fn admin_via(&self, admin_url: &str, args: &[&str]) -> std::process::Output {
        Command::new(binary("cairn-admin"))
            .args(["--admin-url", admin_url])
            .args(args)
            .env("CAIRN_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
            .unwrap()
    }

    /// Runs `cairn-admin`, asserts success, returns stdout.
    pub fn admin_ok(&self, args: &[&str]) -> String {
        let output = self.admin(args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "cairn-admin {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// Runs `cairn-admin rebuild` from every volume of the cluster into the fresh directory
    /// `name` under the test's root (the gateway's own index is left alone); returns the
    /// directory and the command's output.
    pub fn rebuild(&self, name: &str, extra: &[&str]) -> (PathBuf, std::process::Output) {
        // `cairn-admin rebuild` writes a RocksDB directory only.
        assert!(
            self.postgres.is_none(),
            "rebuild needs a RocksDB index: skip this test under CAIRN_TEST_INDEX=postgres"
        );
        let db = self.root.path().join(name);
        let urls: Vec<String> = self.volumes.iter().map(Volume::url).collect();
        let urls = urls.join(",");
        let mut args = vec!["rebuild", "--db", db.to_str().unwrap(), "--volumes", &urls];
        args.extend(["--cluster-secret", CLUSTER_SECRET]);
        args.extend(extra);
        (db.clone(), self.admin(&args))
    }

    /// Like [`TestCluster::rebuild`], asserting success; returns the directory and stdout.
    pub fn rebuild_ok(&self, name: &str) -> (PathBuf, String) {
        let (db, output) = self.rebuild(name, &[]);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "rebuild failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        (db, stdout)
    }

    /// [`TestCluster::serve_rebuilt_index`], with the access keys carried over as an operator
    /// does (keys live only in the index, not on the volumes): exported sealed before, imported
    /// after.
    pub fn serve_rebuilt_index_with_keys(&mut self, name: &str) {
        let passphrase = self.root.path().join("passphrase");
        std::fs::write(&passphrase, "a passphrase long enough\n").unwrap();
        let export = self.root.path().join("keys.sealed");
        let (export, passphrase) = (export.to_str().unwrap(), passphrase.to_str().unwrap());
        self.admin_ok(&["key", "export", "--out", export, "--passphrase-file", passphrase]);
        self.serve_rebuilt_index(name);
        self.admin_ok(&["key", "import", export, "--passphrase-file", passphrase]);
    }

    /// Stops the gateway, rebuilds its index from the volumes into `name` (see
    /// [`TestCluster::rebuild_ok`]), puts it in place of the old one and starts the gateway
    /// on it; returns the rebuild's stdout.
    pub fn serve_rebuilt_index(&mut self, name: &str) -> String {
        self.stop_gateway();
        let (rebuilt, stdout) = self.rebuild_ok(name);
        std::fs::remove_dir_all(self.db_dir()).unwrap();
        std::fs::rename(&rebuilt, self.db_dir()).unwrap();
        self.start_gateway();
        stdout
    }

    /// Starts one more volume daemon (not yet known to the gateway); returns its index.
    pub fn start_extra_volume(&mut self) -> usize {
        let v = self.volumes.len();
        let mut volume = Volume {
            port: free_port(),
            dirs: (0..2).map(|s| self.root.path().join(format!("vol{v}")).join(format!("sv{s}"))).collect(),
            proc: None,
            args: self.volumes.first().map(|first| first.args.clone()).unwrap_or_default(),
        };
        volume.start();
        self.volumes.push(volume);
        v
    }

    /// All blob files on all volumes.
    pub fn blob_files(&self) -> Vec<PathBuf> {
        self.volumes.iter().flat_map(Volume::blob_files).collect()
    }

    /// `GET /status` of the admin API.
    pub async fn status(&self) -> serde_json::Value {
        admin_status(&self.admin_url()).await
    }

    /// Waits (up to 15 s) until the gateway takes `count` volumes to be up (its `/ready`), so
    /// that writes go where placement puts them rather than past a volume it last saw down.
    pub async fn wait_for_volumes_up(&self, count: u64) {
        let start = std::time::Instant::now();
        loop {
            let ready: serde_json::Value =
                reqwest::get(format!("{}/ready", self.admin_url())).await.unwrap().json().await.unwrap();
            if ready["volumes_up"].as_u64() == Some(count) {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(15), "volumes never all up: {ready}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `GET /status` of the admin API at `admin_url`.
pub async fn admin_status(admin_url: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!("{admin_url}/status"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `GET /jobs/<kind>` of the admin API at `admin_url`: the running or last job of that kind
/// in the cluster (`null` when none ever ran).
pub async fn job_progress(admin_url: &str, kind: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!("{admin_url}/jobs/{kind}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls [`job_progress`] every 100 ms until `until` holds (panics after `limit`); returns the
/// progress that satisfied it.
pub async fn wait_for_job(
    admin_url: &str,
    kind: &str,
    limit: Duration,
    until: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    loop {
        let progress = job_progress(admin_url, kind).await;
        if until(&progress) {
            return progress;
        }
        assert!(Instant::now() < deadline, "{kind} at {admin_url} not as awaited within {limit:?}: {progress}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An aws-sdk-s3 client for `endpoint` (path style, current defaults incl. checksums).
pub fn s3_client(endpoint: &str, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .force_path_style(true)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(access_key, secret_key, None, None, "cairn-test"))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// An aws-sdk-s3 client for `endpoint` with the root key that never retries and gives up on a
/// request after `timeout`.
pub fn client_without_retries(endpoint: &str, timeout: Duration) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .force_path_style(true)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "cairn-test"))
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(timeout)
                .operation_timeout(timeout)
                .build(),
        )
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn test_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Whether this run is CI, where a missing external client is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Finds an external client on PATH; outside CI a missing one skips the test loudly.
pub fn require_tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file()));
    if found.is_none() {
        assert!(!in_ci(), "{name} is required in CI but is not installed");
        eprintln!("\n!!!!! SKIPPING: `{name}` is not installed; this test needs it (CI installs it) !!!!!\n");
    }
    found
}

/// S3's refusal of a request its caller may not make, as `refusal` gives it.
pub fn denied() -> (String, u16) {
    ("AccessDenied".into(), 403)
}

/// The S3 error code and HTTP status of a failed aws-sdk-s3 call.
pub fn refusal<E: aws_sdk_s3::error::ProvideErrorMetadata>(
    err: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> (String, u16) {
    use aws_sdk_s3::error::ProvideErrorMetadata as _;
    let status = err.raw_response().map_or(0, |r| r.status().as_u16());
    (err.code().unwrap_or_default().to_string(), status)
}
