//! `cairn-admin`: operator commands, a client of the gateway's admin API; `rebuild` and
//! `index migrate` work offline instead, on the volumes or the index directly.

mod keyfile;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use gateway::admin::Status;
use gateway::admin::gc::GcProgress;
use gateway::admin::jobs::Progress;
use gateway::admin::keys::{CreatedKey, KeyInfo};
use gateway::admin::rebalance::RebalanceProgress;
use gateway::admin::verify::VerifyProgress;
use gateway::index::records::Membership;
use gateway::time::parse_duration;
use serde_json::json;

/// Operate a Cairn cluster through the gateway's admin API.
#[derive(Debug, Parser)]
#[command(name = "cairn-admin", version)]
struct Cli {
    /// Admin API of the gateway.
    #[arg(long, env = "CAIRN_ADMIN_URL", default_value = "http://127.0.0.1:9001", global = true)]
    admin_url: String,
    /// Admin token.
    #[arg(long, env = "CAIRN_ADMIN_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Volumes with health and free space, object and byte counts.
    Status,
    /// Access keys for SigV4 and the buckets they may use.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Change the cluster's volumes online.
    Volume {
        #[command(subcommand)]
        command: VolumeCommand,
    },
    /// Move every blob whose record disagrees with the ring to where the ring wants it.
    Rebalance {
        /// Count the objects and bytes that would move; move nothing.
        #[arg(long)]
        dry_run: bool,
        /// Copy at most this many MB/s.
        #[arg(long)]
        rate: Option<f64>,
    },
    /// Read every replica of every object and check its SHA-256; exit 1 if any is missing or
    /// corrupt (and not repaired).
    Verify {
        /// Rewrite missing and corrupt replicas from a good copy.
        #[arg(long)]
        repair: bool,
    },
    /// Recreate a lost index from the volumes, with the cluster's membership (offline: the
    /// gateway must be stopped; a volume a gateway still uses is refused).
    Rebuild {
        /// New, empty index directory; start the gateway with `--db` pointing at it.
        #[arg(long)]
        db: std::path::PathBuf,
        /// Every volume daemon URL, comma-separated.
        #[arg(long, env = "CAIRN_VOLUMES", value_delimiter = ',', required = true)]
        volumes: Vec<String>,
        /// Secret shared with the volume daemons.
        #[arg(long, env = "CAIRN_CLUSTER_SECRET", hide_env_values = true)]
        cluster_secret: String,
        /// Rebuild even if member volumes are missing or cannot be read (what they hold is
        /// left out; they are named).
        #[arg(long)]
        partial: bool,
        #[command(flatten)]
        offline: Offline,
    },
    /// The index itself, offline (the gateway stopped).
    Index {
        #[command(subcommand)]
        command: IndexCommand,
    },
    /// Delete blobs of overwritten and deleted versions, aborted uploads and failed writes;
    /// abort multipart uploads older than the gateway's `--upload-ttl`.
    Gc {
        /// Only blobs older than this are touched (e.g. 1h, 30m, 90s, 0).
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        grace: Duration,
        /// Count what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
enum IndexCommand {
    /// Copy a whole index into another engine or place (e.g. RocksDB to PostgreSQL), then
    /// compare both sides row by row; exit 1 on any difference. Offline: stop the gateway
    /// first. The target must be empty.
    Migrate {
        /// The index to copy: rocksdb:DIR or postgres://USER:PASSWORD@HOST/DB.
        #[arg(long, env = "CAIRN_MIGRATE_FROM", hide_env_values = true)]
        from: String,
        /// The empty index to fill: rocksdb:DIR (created if missing) or postgres://… (its
        /// tables are created); then start the gateway with `--index` set to it.
        #[arg(long, env = "CAIRN_MIGRATE_TO", hide_env_values = true)]
        to: String,
        #[command(flatten)]
        offline: Offline,
    },
}

/// `--admin-url` and `--token` are global (most commands are clients of the admin API), but
/// rebuild and index migrate work on the volumes or the index directly. clap does not
/// propagate a global argument into a subcommand that has one of the same id, so these hidden
/// ones keep both out of those commands' `--help`, and refuse them after the command with a
/// message that says why.
#[derive(Debug, clap::Args)]
struct Offline {
    #[arg(long, hide = true, value_parser = online_only)]
    admin_url: Option<String>,
    #[arg(long, hide = true, value_parser = online_only)]
    token: Option<String>,
}

fn online_only(_: &str) -> Result<String, String> {
    Err("this command works offline, on the volumes or the index directly; it does not use the gateway's admin API"
        .into())
}

#[derive(Debug, Subcommand)]
enum VolumeCommand {
    /// Add a volume daemon (new writes use it at once; rebalance moves old data).
    Add {
        /// Its URL.
        url: String,
        /// Failure domain; replicas prefer distinct zones.
        #[arg(long)]
        zone: Option<String>,
        /// Share of new data relative to other volumes.
        #[arg(long)]
        weight: Option<f64>,
    },
    /// Set a volume's placement weight.
    Weight {
        /// Its URL.
        url: String,
        /// New weight (0 drains).
        weight: f64,
    },
    /// Set or clear a volume's zone (failure domain; replicas prefer distinct zones).
    Zone {
        /// Its URL.
        url: String,
        /// The zone.
        #[arg(required_unless_present = "clear")]
        zone: Option<String>,
        /// Clear the zone instead.
        #[arg(long, conflicts_with = "zone")]
        clear: bool,
    },
    /// Take no new data; the next rebalance moves everything off.
    Drain {
        /// Its URL.
        url: String,
    },
    /// Forget a volume that holds nothing any more (drain, rebalance and gc first).
    Remove {
        /// Its URL.
        url: String,
        /// The volume is gone for good: drop its copies from the records and let the
        /// repairer rebuild them from the other copies.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Create a key; its secret is printed once.
    Create {
        /// A name for people.
        name: String,
    },
    /// List keys and their grants (never secrets).
    List,
    /// Delete a key; requests signed with it fail at once.
    Delete {
        /// Access key id.
        id: String,
    },
    /// Grant a key permissions on a bucket.
    Allow(GrantArgs),
    /// Take permissions away (all of them on the bucket if none is named).
    Deny(GrantArgs),
    /// Write every key, secrets included, to a new file sealed with a passphrase (from
    /// CAIRN_KEY_PASSPHRASE or --passphrase-file). Keys are not on the volumes: keep an
    /// export to bring them back after a rebuild.
    Export {
        /// The file to create (it must not exist yet).
        #[arg(long)]
        out: std::path::PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Store every key of a sealed export file; keys with the same id are replaced, so
    /// importing twice is harmless.
    Import {
        /// A file written by `key export`.
        file: std::path::PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
}

/// Where the passphrase of a key file comes from: never a command-line value, which other
/// users can read in the process list and which lands in shell history.
#[derive(Debug, clap::Args)]
struct PassphraseArgs {
    /// Read the passphrase from this file (its first line) instead of CAIRN_KEY_PASSPHRASE.
    #[arg(long)]
    passphrase_file: Option<std::path::PathBuf>,
}

impl PassphraseArgs {
    fn read(&self) -> Result<zeroize::Zeroizing<String>, String> {
        let passphrase = match &self.passphrase_file {
            Some(path) => {
                let text = zeroize::Zeroizing::new(
                    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
                );
                zeroize::Zeroizing::new(text.lines().next().unwrap_or_default().to_string())
            }
            None => zeroize::Zeroizing::new(std::env::var("CAIRN_KEY_PASSPHRASE").map_err(|_| {
                "a passphrase is needed: set CAIRN_KEY_PASSPHRASE or pass --passphrase-file".to_string()
            })?),
        };
        if passphrase.is_empty() {
            return Err("the passphrase is empty".into());
        }
        Ok(passphrase)
    }
}

#[derive(Debug, clap::Args)]
struct GrantArgs {
    /// Access key id.
    id: String,
    /// Bucket name.
    bucket: String,
    /// Read objects and list.
    #[arg(long)]
    read: bool,
    /// Write and delete objects.
    #[arg(long)]
    write: bool,
    /// Create and delete the bucket.
    #[arg(long)]
    owner: bool,
}

/// The admin API, for one invocation.
struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<String, String> {
        let url = format!("{}{path}", self.base.trim_end_matches('/'));
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
        let code = response.status();
        let text = response.text().await.map_err(|e| format!("{url}: {e}"))?;
        if !code.is_success() {
            return Err(format!("{url} answered {code}: {}", text.trim()));
        }
        Ok(text)
    }

    async fn get(&self, path: &str) -> Result<String, String> {
        self.call(reqwest::Method::GET, path, None).await
    }
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| format!("unexpected answer: {e}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Rebuild { db, volumes, cluster_secret, partial, .. } = &cli.command {
        volumed::serve::init_logging(volumed::serve::LogFormat::Text);
        return finish(rebuild(db, volumes, cluster_secret, *partial, cli.json).await);
    }
    if let Command::Index { command: IndexCommand::Migrate { from, to, .. } } = &cli.command {
        volumed::serve::init_logging(volumed::serve::LogFormat::Text);
        return finish(migrate(from, to, cli.json).await);
    }
    let Some(token) = cli.token.clone() else {
        eprintln!("cairn-admin: an admin token is required (--token or CAIRN_ADMIN_TOKEN)");
        return ExitCode::from(2);
    };
    let api = Api { base: cli.admin_url.clone(), token, http: reqwest::Client::new() };
    let result = match cli.command {
        Command::Status => status(&api, cli.json).await,
        Command::Rebuild { .. } | Command::Index { .. } => Ok(()),
        Command::Key { command } => key(&api, command, cli.json).await,
        Command::Gc { grace, dry_run } => gc(&api, grace, dry_run, cli.json).await,
        Command::Verify { repair } => verify(&api, repair, cli.json).await,
        Command::Volume { command } => volume(&api, command, cli.json).await,
        Command::Rebalance { dry_run, rate } => rebalance(&api, dry_run, rate, cli.json).await,
    };
    finish(result)
}

fn finish(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("cairn-admin: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn rebuild(
    db: &std::path::Path,
    volumes: &[String],
    cluster_secret: &str,
    partial: bool,
    as_json: bool,
) -> Result<(), String> {
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut last_print = std::time::Instant::now();
    let report = gateway::rebuild::rebuild(db, volumes, cluster_secret, partial, |r| {
        if !as_json && (terminal || last_print.elapsed() >= Duration::from_secs(1)) {
            let line = format!("rebuild: listed {} blobs ({} bytes)", r.blobs, r.bytes);
            if terminal {
                print!("\r{line}\x1b[K");
                let _ = std::io::Write::flush(&mut std::io::stdout());
            } else {
                println!("{line}");
            }
            last_print = std::time::Instant::now();
        }
    })
    .await
    .map_err(offline_message)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    } else {
        if terminal {
            println!();
        }
        println!(
            "rebuilt {}: {} buckets, {} objects, {} deleted keys, {} old blobs queued for gc, {} never committed, {} skipped; {} deleted buckets, {} tag sets changed after the write; {} blobs ({} bytes) in {:.1} s ({:.0} objects/s, {:.1} MB/s)",
            db.display(),
            report.buckets,
            report.objects,
            report.tombstones,
            report.queued,
            report.uncommitted,
            report.skipped,
            report.deleted_buckets,
            report.tags,
            report.blobs,
            report.bytes,
            report.seconds,
            report.objects as f64 / report.seconds.max(1e-9),
            report.bytes as f64 / 1e6 / report.seconds.max(1e-9),
        );
    }
    if !as_json {
        println!(
            "membership restored: {} volumes with their weights and zones, {} removed; cluster {}, epoch {}",
            report.volumes, report.removed, report.cluster_id, report.epoch
        );
    }
    for missing in &report.missing_volumes {
        eprintln!(
            "cairn-admin: warning: {missing}; not read, what it holds is left out of the index (it stays a member)"
        );
    }
    for what in &report.unreadable {
        eprintln!("cairn-admin: warning: not read, left out of the index: {what}");
    }
    for bucket in &report.buckets_from_objects {
        eprintln!(
            "cairn-admin: warning: bucket {bucket} was recreated because objects are in it, though its bucket blobs say it was deleted (or none was found)"
        );
    }
    // Keys are not on the volumes; say so where a person reads it, and keep --json's stdout
    // parseable.
    let note = "access keys are not on the volumes and were not rebuilt: import them with `cairn-admin key import FILE` (a file written by `cairn-admin key export`) once the gateway runs";
    if as_json {
        eprintln!("cairn-admin: {note}");
    } else {
        println!("{note}");
    }
    if report.skipped > 0 {
        return Err(format!("{} blobs or objects could not be restored (see the log)", report.skipped));
    }
    Ok(())
}

/// An error of an offline command as the person should read it.
fn offline_message(err: gateway::Error) -> String {
    match err {
        // Their messages say it all; no "config:" in front.
        gateway::Error::Config(message) | gateway::Error::Unavailable(message) => message,
        e => e.to_string(),
    }
}

async fn migrate(from: &str, to: &str, as_json: bool) -> Result<(), String> {
    use gateway::config::IndexLocation;
    let from = IndexLocation::parse(from).map_err(|e| format!("--from: {}", offline_message(e)))?;
    let to = IndexLocation::parse(to).map_err(|e| format!("--to: {}", offline_message(e)))?;
    let started = std::time::Instant::now();
    // Locations are printed through IndexLocation's Display, which leaves the password out.
    let migration = gateway::migrate::migrate(&from, &to, |p| {
        if p.done && !as_json {
            println!("copied {}: {} rows ({} bytes)", p.table.name(), p.rows, p.bytes);
        }
    })
    .await
    .map_err(|e| {
        // A failure during the copy leaves part of it in the target, which a second migrate
        // refuses as not empty.
        let partial = if matches!(e, gateway::Error::Config(_)) {
            ""
        } else {
            "; the target may hold part of the copy: empty it (a new database, or remove the directory) before trying again"
        };
        format!("{}{partial}", offline_message(e))
    })?;
    let mismatch = migration.first_mismatch();
    if as_json {
        let tables: Vec<serde_json::Value> = migration
            .copied
            .iter()
            .zip(&migration.compared)
            .map(|(copied, compared)| {
                json!({
                    "table": copied.table.name(),
                    "rows": copied.rows,
                    "bytes": copied.bytes,
                    "source_rows": compared.first_rows,
                    "target_rows": compared.second_rows,
                    "first_difference": compared.difference.as_ref().map(|d| d.to_string()),
                })
            })
            .collect();
        let report = json!({
            "from": from.to_string(),
            "to": to.to_string(),
            "tables": tables,
            "rows": migration.rows(),
            "verified": mismatch.is_none(),
            "seconds": started.elapsed().as_secs_f64(),
        });
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    } else {
        for (copied, compared) in migration.copied.iter().zip(&migration.compared) {
            let verdict = match &compared.difference {
                None if compared.first_rows == compared.second_rows => "equal".to_string(),
                None => "counts differ".to_string(),
                Some(difference) => format!("differs at {difference}"),
            };
            println!(
                "{:<10} {:>10} rows {:>14} bytes  source {} rows, target {} rows: {verdict}",
                copied.table.name(),
                copied.rows,
                copied.bytes,
                compared.first_rows,
                compared.second_rows
            );
        }
    }
    if let Some((copied, compared)) = mismatch {
        let what = match &compared.difference {
            Some(difference) => format!("first difference at {difference}"),
            None => format!("{} rows copied, {} in the source now", copied.rows, compared.first_rows),
        };
        return Err(format!(
            "verification failed: table {} of {to} is not equal to {from} (source {} rows, target {} rows; {what}); do not start a gateway on it",
            copied.table.name(),
            compared.first_rows,
            compared.second_rows,
        ));
    }
    if !as_json {
        println!(
            "migrated {} rows in {} tables from {from} to {to} in {:.1} s; verified equal",
            migration.rows(),
            migration.copied.len(),
            started.elapsed().as_secs_f64()
        );
        println!("next: start the gateway with --index set to the target");
    }
    Ok(())
}

async fn status(api: &Api, json: bool) -> Result<(), String> {
    let body = api.get("/status").await?;
    let status: Status = parse(&body)?;
    if json {
        println!("{body}");
        return Ok(());
    }
    println!(
        "objects {}  bytes {}  buckets {}  gc queue {}  repair queue {}",
        status.objects, status.bytes, status.buckets, status.gc_queue, status.repair_queue
    );
    println!("cluster {}  membership epoch {}", status.cluster_id, status.membership_epoch);
    println!("{:<18} {:<28} {:>6} {:<10} {:<8} free per subvolume", "volume", "url", "weight", "zone", "health");
    for volume in &status.volumes {
        let free: Vec<String> =
            volume.free_bytes.iter().map(|b| format!("{:.1} GiB", *b as f64 / (1u64 << 30) as f64)).collect();
        println!(
            "{:<18} {:<28} {:>6} {:<10} {:<8} {}",
            volume.id,
            volume.url,
            volume.weight,
            volume.zone.as_deref().unwrap_or("-"),
            if volume.healthy { "up" } else { "DOWN" },
            free.join(", ")
        );
    }
    println!("{:<18} {:<22} {:<22} {:>8}  last beat (its clock)", "gateway", "s3", "admin", "beats");
    for gateway in &status.gateways {
        let ago = gateway::time::now_ms().saturating_sub(gateway.beat_ms) as f64 / 1000.0;
        println!(
            "{:<18} {:<22} {:<22} {:>8}  {ago:.1} s ago",
            gateway.id, gateway.s3_address, gateway.admin_address, gateway.beats
        );
    }
    let jobs = &status.jobs;
    for line in [
        jobs.gc.as_ref().map(gc_line),
        jobs.verify.as_ref().map(verify_line),
        jobs.rebalance.as_ref().map(rebalance_line),
    ]
    .into_iter()
    .flatten()
    {
        println!("{line}");
    }
    if status.volumes.iter().any(|v| !v.healthy) {
        return Err("some volumes are down".into());
    }
    Ok(())
}

async fn key(api: &Api, command: KeyCommand, as_json: bool) -> Result<(), String> {
    let grant = |args: GrantArgs, allow: bool| {
        let body =
            json!({"bucket": args.bucket, "read": args.read, "write": args.write, "owner": args.owner, "allow": allow});
        (format!("/keys/{}/grants", args.id), body)
    };
    match command {
        KeyCommand::Create { name } => {
            let text = api.call(reqwest::Method::POST, "/keys", Some(json!({ "name": name }))).await?;
            let key: CreatedKey = parse(&text)?;
            if as_json {
                println!("{}", json!({"access_key_id": key.access_key_id, "secret_access_key": key.secret_access_key}));
            } else {
                println!("access key id      {}", key.access_key_id);
                println!("secret access key  {}   (shown only now)", key.secret_access_key);
            }
            Ok(())
        }
        KeyCommand::List => print_keys(&api.get("/keys").await?, as_json),
        KeyCommand::Delete { id } => {
            api.call(reqwest::Method::DELETE, &format!("/keys/{id}"), None).await?;
            if !as_json {
                println!("deleted {id}");
            }
            Ok(())
        }
        KeyCommand::Allow(args) => {
            let (path, body) = grant(args, true);
            print_keys(&api.call(reqwest::Method::POST, &path, Some(body)).await?, as_json)
        }
        KeyCommand::Deny(args) => {
            let (path, body) = grant(args, false);
            print_keys(&api.call(reqwest::Method::POST, &path, Some(body)).await?, as_json)
        }
        KeyCommand::Export { out, passphrase } => export_keys(api, &out, &passphrase, as_json).await,
        KeyCommand::Import { file, passphrase } => import_keys(api, &file, &passphrase, as_json).await,
    }
}

async fn export_keys(
    api: &Api,
    out: &std::path::Path,
    passphrase: &PassphraseArgs,
    as_json: bool,
) -> Result<(), String> {
    let passphrase = passphrase.read()?;
    if passphrase.chars().count() < keyfile::MIN_PASSPHRASE {
        return Err(format!("the passphrase must be at least {} characters long", keyfile::MIN_PASSPHRASE));
    }
    let keys = zeroize::Zeroizing::new(api.get("/keys/export").await?);
    let count = parse::<Vec<serde_json::Value>>(&keys)?.len();
    let sealed = keyfile::seal(keys.as_bytes(), passphrase.as_bytes())?;
    // A new file, readable by its owner only; never over an existing one (an older export
    // may be the only copy of keys deleted since).
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(out)
            .map_err(|e| format!("{}: {e}", out.display()))?
    };
    std::io::Write::write_all(&mut file, &sealed).map_err(|e| format!("{}: {e}", out.display()))?;
    file.sync_all().map_err(|e| format!("{}: {e}", out.display()))?;
    if as_json {
        println!("{}", json!({"exported": count, "file": out.display().to_string()}));
    } else {
        println!("exported {count} keys to {} (sealed; keep the passphrase apart from the file)", out.display());
    }
    Ok(())
}

async fn import_keys(
    api: &Api,
    path: &std::path::Path,
    passphrase: &PassphraseArgs,
    as_json: bool,
) -> Result<(), String> {
    let passphrase = passphrase.read()?;
    let file = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let keys = keyfile::open(&file, passphrase.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    let keys: serde_json::Value =
        serde_json::from_slice(&keys).map_err(|e| format!("{}: not a list of keys: {e}", path.display()))?;
    let text = api.call(reqwest::Method::POST, "/keys/import", Some(keys)).await?;
    if as_json {
        println!("{text}");
    } else {
        let imported: gateway::admin::keys::Imported = parse(&text)?;
        println!("imported {} keys ({} replaced) from {}", imported.imported, imported.replaced, path.display());
    }
    Ok(())
}

fn print_keys(text: &str, as_json: bool) -> Result<(), String> {
    if as_json {
        println!("{text}");
        return Ok(());
    }
    let keys: Vec<KeyInfo> = parse(text)?;
    println!("{:<22} {:<20} grants", "access key id", "name");
    for key in keys {
        let grants: Vec<String> = key
            .grants
            .iter()
            .map(|g| {
                let mut perms = String::new();
                // Owner implies read and write, and is shown with them.
                for (on, letter) in [(g.read || g.owner, 'r'), (g.write || g.owner, 'w'), (g.owner, 'o')] {
                    perms.push(if on { letter } else { '-' });
                }
                format!("{}:{perms}", g.bucket)
            })
            .collect();
        println!("{:<22} {:<20} {}", key.access_key_id, key.name, grants.join(" "));
    }
    Ok(())
}

/// Where a job runs (or ran), for its line: `  on ADDRESS`, and how often it was taken over.
fn owner_of(status: &gateway::admin::jobs::JobStatus) -> String {
    let mut out = String::new();
    if !status.owner_address.is_empty() {
        out.push_str(&format!("  on {}", status.owner_address));
    }
    if status.takeovers > 0 {
        out.push_str(&format!(" (taken over {})", count(status.takeovers, "time", "times")));
    }
    out
}

fn gc_line(p: &GcProgress) -> String {
    format!(
        "gc {}: uploads aborted {}  queue {}/{}  listed {}  orphans {} ({} bytes)  tombstones {} (buckets {})  deleted {}  errors {}",
        p.status.state,
        p.uploads_aborted,
        p.queue_done,
        p.queue_total,
        p.blobs_listed,
        p.orphans,
        p.orphan_bytes,
        p.tombstones,
        p.bucket_tombstones,
        p.deleted,
        p.status.errors
    ) + &owner_of(&p.status)
}

async fn gc(api: &Api, grace: Duration, dry_run: bool, as_json: bool) -> Result<(), String> {
    let body = json!({"grace_secs": grace.as_secs(), "dry_run": dry_run});
    run_job::<GcProgress>(api, "gc", body, as_json, gc_line).await.map(drop)
}

async fn volume(api: &Api, command: VolumeCommand, as_json: bool) -> Result<(), String> {
    let post = |path: &'static str, body: serde_json::Value| async move {
        api.call(reqwest::Method::POST, path, Some(body)).await
    };
    let text = match command {
        VolumeCommand::Add { url, zone, weight } => {
            post("/volumes", json!({"url": url, "zone": zone, "weight": weight})).await?
        }
        VolumeCommand::Weight { url, weight } => post("/volumes/weight", json!({"url": url, "weight": weight})).await?,
        VolumeCommand::Zone { url, zone, clear: _ } => post("/volumes/zone", json!({"url": url, "zone": zone})).await?,
        VolumeCommand::Drain { url } => post("/volumes/weight", json!({"url": url, "weight": 0.0})).await?,
        VolumeCommand::Remove { url, force } => {
            let text = post("/volumes/remove", json!({ "url": url, "force": force })).await?;
            if let Some(forgotten) = parse::<serde_json::Value>(&text)?.get("forgotten").filter(|f| !f.is_null())
                && !as_json
            {
                println!(
                    "dropped {} copies from the records; {} blobs queued for repair; {} blobs had no other copy (lost)",
                    forgotten["copies"], forgotten["repairs"], forgotten["lost"]
                );
            }
            text
        }
    };
    if as_json {
        println!("{text}");
        return Ok(());
    }
    let membership: Membership = parse(&text)?;
    println!("{:<34} {:<28} {:>6} {:<10} subvolumes", "volume", "url", "weight", "zone");
    for v in &membership.volumes {
        println!(
            "{:<34} {:<28} {:>6} {:<10} {}",
            v.id,
            v.url,
            v.weight,
            v.zone.as_deref().unwrap_or("-"),
            v.subvolumes
        );
    }
    Ok(())
}

/// `1 bucket`, `2 buckets`.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn rebalance_line(p: &RebalanceProgress) -> String {
    let verb = if p.dry_run { "would move" } else { "moved" };
    // What the entries are, so that their total is not read as an object count: the objects
    // are `status`'s objects, the rest are the other records that name blobs.
    let mut kinds = vec![count(p.objects, "object", "objects")];
    for (n, one, many) in [
        (p.deleted_keys, "deleted key", "deleted keys"),
        (p.buckets, "bucket", "buckets"),
        (p.deleted_buckets, "deleted bucket", "deleted buckets"),
    ] {
        if n > 0 {
            kinds.push(count(n, one, many));
        }
    }
    format!(
        "rebalance {}: entries {}/{} ({})  misplaced {}  {verb} {} blobs, {} bytes  changed meanwhile {}  errors {}",
        p.status.state,
        p.entries_done,
        p.entries_total,
        kinds.join(", "),
        p.entries_misplaced,
        p.blobs_moved,
        p.bytes_moved,
        p.skipped_changed,
        p.status.errors
    ) + &owner_of(&p.status)
}

async fn rebalance(api: &Api, dry_run: bool, rate: Option<f64>, as_json: bool) -> Result<(), String> {
    let body = json!({"dry_run": dry_run, "rate_mb_s": rate});
    let progress = run_job::<RebalanceProgress>(api, "rebalance", body, as_json, rebalance_line).await?;
    if !as_json && progress.upload_parts > 0 {
        println!(
            "parts of uploads in progress: {}, misplaced {} (not moved: a part moves with its object once its upload completes)",
            progress.upload_parts, progress.upload_parts_misplaced
        );
    }
    if !as_json && !dry_run {
        let seconds = progress
            .status
            .finished_ms
            .unwrap_or(progress.status.started_ms)
            .saturating_sub(progress.status.started_ms) as f64
            / 1000.0;
        println!(
            "{:.1} s: {:.0} entries/s, {:.1} MB/s",
            seconds,
            progress.entries_done as f64 / seconds.max(1e-3),
            progress.bytes_moved as f64 / 1e6 / seconds.max(1e-3)
        );
    }
    Ok(())
}

fn verify_line(p: &VerifyProgress) -> String {
    format!(
        "verify {}: objects {}/{}  replicas {}  bytes {}  missing {}  corrupt {}  repaired {}  errors {}",
        p.status.state,
        p.objects_done,
        p.objects_total,
        p.replicas_checked,
        p.bytes_checked,
        p.missing,
        p.corrupt,
        p.repaired,
        p.status.errors
    ) + &owner_of(&p.status)
}

async fn verify(api: &Api, repair: bool, as_json: bool) -> Result<(), String> {
    let progress = run_job::<VerifyProgress>(api, "verify", json!({ "repair": repair }), as_json, verify_line).await?;
    if !as_json {
        for problem in &progress.problems {
            println!("  {problem}");
        }
    }
    let bad = progress.missing + progress.corrupt;
    if bad > progress.repaired {
        return Err(format!("{} replicas missing or corrupt, {} repaired", bad, progress.repaired));
    }
    Ok(())
}

/// Starts a background job on the gateway and follows it to the end, printing one progress
/// line per change (rewritten in place on a terminal, a line each in a log).
async fn run_job<P>(
    api: &Api,
    kind: &str,
    body: serde_json::Value,
    as_json: bool,
    line_of: impl Fn(&P) -> String,
) -> Result<P, String>
where
    P: Progress + serde::de::DeserializeOwned + serde::Serialize,
{
    let path = format!("/jobs/{kind}");
    api.call(reqwest::Method::POST, &path, Some(body)).await?;
    // A bar on a terminal; in a log (or with --json) no bar, but a line per change.
    let terminal = !as_json && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let bar = terminal.then(|| {
        let bar = indicatif::ProgressBar::new(0);
        let style = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} {wide_msg}");
        if let Ok(style) = style {
            bar.set_style(style);
        }
        bar
    });
    let mut last_line = String::new();
    let mut progress = loop {
        let progress: Option<P> = parse(&api.get(&path).await?)?;
        let mut progress = progress.ok_or("the gateway forgot the job (restarted?)")?;
        let line = line_of(&progress);
        match &bar {
            Some(bar) => {
                let (done, total) = progress.done_of();
                bar.set_length(total);
                bar.set_position(done);
                bar.set_message(line);
            }
            None if !as_json && line != last_line => {
                println!("{line}");
                last_line = line;
            }
            None => {}
        }
        if progress.status().state != "running" {
            break progress;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
        println!("{}", line_of(&progress));
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&progress).map_err(|e| e.to_string())?);
    }
    let status = progress.status().clone();
    match (status.state.as_str(), status.errors) {
        ("done", 0) => Ok(progress),
        ("done", n) => Err(format!("{kind} finished with {n} errors; last: {}", status.last_error.unwrap_or_default())),
        _ => Err(format!("{kind} {}: {}", status.state, status.last_error.unwrap_or_default())),
    }
}
