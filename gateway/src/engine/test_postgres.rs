//! A private PostgreSQL server for tests: `initdb` and `pg_ctl` from the Debian package
//! (`/usr/lib/postgresql/15/bin`, or `CAIRN_PG_BIN`) run a cluster in a temp dir on a free
//! 127.0.0.1 port, trusting loopback connections as the superuser `postgres`. As root (CI),
//! the server runs as the `postgres` user, which owns the temp dir. Each test asks for its own
//! database. Dropping the handle stops the server (`pg_ctl stop -m immediate`, by its data
//! directory: never another server) and removes the directory.
//!
//! Without PostgreSQL installed a test skips loudly, except under `CI=true`, where it fails:
//! `scripts/setup --test` installs it.
//!
//! Only the standard library and `tempfile`, so that `compat-tests` compiles this same file
//! (`compat_tests::postgres`).

#![allow(unreachable_pub, clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Where the Debian package puts the server binaries.
const DEFAULT_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The superuser the tests connect as.
pub const SUPERUSER: &str = "postgres";

/// A running private server; stopped on drop.
#[derive(Debug)]
pub struct TestPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// The OS user the server runs as, when it is not us (we are root).
    run_as: Option<&'static str>,
    databases: AtomicUsize,
    frozen: AtomicBool,
}

impl TestPostgres {
    /// Starts a server for the test `who`, or returns `None` (after saying so loudly) when
    /// PostgreSQL is not installed and this is not CI.
    pub fn start(who: &str) -> Option<TestPostgres> {
        let bin = std::env::var_os("CAIRN_PG_BIN").map_or_else(|| PathBuf::from(DEFAULT_BIN), PathBuf::from);
        if !bin.join("initdb").exists() || !bin.join("pg_ctl").exists() {
            let why = format!(
                "PostgreSQL server binaries not found in {} (install the Debian package `postgresql`: \
                 scripts/setup --test; or set CAIRN_PG_BIN)",
                bin.display()
            );
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                panic!("{who}: {why}");
            }
            eprintln!("!!!!! SKIPPING {who}: {why}");
            return None;
        }
        let run_as = is_root().then_some("postgres");
        let dir = match run_as {
            // The server user must reach the directory: under /tmp, whatever TMPDIR says.
            Some(_) => tempfile::Builder::new().prefix("cairn-pg-").tempdir_in("/tmp"),
            None => tempfile::Builder::new().prefix("cairn-pg-").tempdir(),
        }
        .expect("temp dir for PostgreSQL");
        if let Some(user) = run_as {
            run(Command::new("chown").arg(format!("{user}:")).arg(dir.path()), "chown");
        }
        let data = dir.path().join("data");
        let mut initdb = command(run_as, &bin.join("initdb"));
        initdb.arg("-D").arg(&data).args(["-U", SUPERUSER, "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"]);
        run(&mut initdb, "initdb");

        let mut server =
            TestPostgres { dir, bin, port: 0, run_as, databases: AtomicUsize::new(0), frozen: AtomicBool::new(false) };
        // Another process may take the free port before the server binds it: try a few.
        for attempt in 1..=5 {
            server.port = free_port();
            let options = format!(
                "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} \
                 -c fsync=off -c full_page_writes=off -c max_connections=200",
                server.port,
                server.dir.path().display()
            );
            let mut start = command(run_as, &server.bin.join("pg_ctl"));
            start
                .arg("start")
                .args(["-w", "-t", "60", "-s", "-o", &options])
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(server.log());
            let out = start.stdin(Stdio::null()).output().expect("run pg_ctl start");
            if out.status.success() {
                return Some(server);
            }
            let log = std::fs::read_to_string(server.log()).unwrap_or_default();
            if attempt == 5 || !log.contains("could not bind") {
                panic!("pg_ctl start failed: {}\n{}\nserver log:\n{log}", out.status, text(&out));
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a new, empty database and returns its URL.
    pub fn create_database(&self) -> String {
        let name = format!("cairn_test_{}", self.databases.fetch_add(1, Ordering::Relaxed));
        let mut createdb = Command::new(self.bin.join("createdb"));
        createdb.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", SUPERUSER, &name]);
        run(&mut createdb, "createdb");
        self.url(&name)
    }

    /// Runs `sql` with `psql` in the database of `url` (made by this server) and returns what
    /// it printed (unaligned, tuples only).
    pub fn psql(&self, url: &str, sql: &str) -> String {
        let mut psql = Command::new(self.bin.join("psql"));
        psql.args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql]);
        let out = run(&mut psql, "psql");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Freezes the server (SIGSTOP to the postmaster and every backend): connections stay
    /// open and queries wait, as on an overloaded or stalled database host.
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::Relaxed);
        self.signal_all("-STOP");
    }

    /// Resumes a frozen server (SIGCONT).
    pub fn thaw(&self) {
        self.signal_all("-CONT");
        self.frozen.store(false, Ordering::Relaxed);
    }

    fn signal_all(&self, signal: &str) {
        let pid_file = std::fs::read_to_string(self.data().join("postmaster.pid")).expect("postmaster.pid");
        let postmaster = pid_file.lines().next().expect("the postmaster's pid").trim().to_string();
        // The backends (the server always has some: checkpointer, walwriter…) and the postmaster.
        let children = run(Command::new("pgrep").args(["-P", &postmaster]), "pgrep");
        let mut pids: Vec<String> =
            String::from_utf8_lossy(&children.stdout).split_whitespace().map(String::from).collect();
        pids.push(postmaster);
        run(Command::new("kill").arg(signal).args(&pids), "kill");
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        // A test that failed while the server was frozen would leave it unable to stop.
        if self.frozen.load(Ordering::Relaxed) {
            self.thaw();
        }
        let mut stop = command(self.run_as, &self.bin.join("pg_ctl"));
        stop.arg("stop").args(["-m", "immediate", "-w", "-s"]).arg("-D").arg(self.data());
        match stop.stdin(Stdio::null()).output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!("pg_ctl stop failed: {}\n{}", out.status, text(&out)),
            Err(err) => eprintln!("pg_ctl stop failed to run: {err}"),
        }
    }
}

/// `program`, run as `user` when given (we are root).
fn command(user: Option<&str>, program: &Path) -> Command {
    match user {
        Some(user) => {
            let mut command = Command::new("runuser");
            command.args(["-u", user, "--"]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

fn run(command: &mut Command, what: &str) -> Output {
    let out = command.stdin(Stdio::null()).output().unwrap_or_else(|err| panic!("run {what}: {err}"));
    assert!(out.status.success(), "{what} failed: {}\n{}", out.status, text(&out));
    out
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

fn is_root() -> bool {
    // The effective uid is the second field of /proc/self/status's Uid line.
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status.lines().any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(2) == Some("0"))
    })
}
