//! The commands that work without the gateway: `rebuild` (from the volumes) and `index
//! migrate` (between engines).

use std::time::Duration;

use clap::Subcommand;
use serde_json::json;

#[derive(Debug, Subcommand)]
pub(crate) enum IndexCommand {
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
pub(crate) struct Offline {
    #[arg(long, hide = true, value_parser = online_only)]
    admin_url: Option<String>,
    #[arg(long, hide = true, value_parser = online_only)]
    token: Option<String>,
}

pub(crate) fn online_only(_: &str) -> Result<String, String> {
    Err("this command works offline, on the volumes or the index directly; it does not use the gateway's admin API"
        .into())
}

pub(crate) async fn rebuild(
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
pub(crate) fn offline_message(err: gateway::Error) -> String {
    match err {
        // Their messages say it all; no "config:" in front.
        gateway::Error::Config(message) | gateway::Error::Unavailable(message) => message,
        e => e.to_string(),
    }
}

pub(crate) async fn migrate(from: &str, to: &str, as_json: bool) -> Result<(), String> {
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
