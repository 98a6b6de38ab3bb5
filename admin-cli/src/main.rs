//! `cairn-admin`: operator commands, a client of the gateway's admin API; `rebuild` and
//! `index migrate` work offline instead, on the volumes or the index directly. One module per
//! command group.

mod api;
mod jobs;
mod keyfile;
mod keys;
mod offline;
mod status;
mod volumes;

use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory as _, Parser, Subcommand};
use gateway::time::parse_duration;

use crate::api::Api;
use crate::keys::KeyCommand;
use crate::offline::{IndexCommand, Offline, migrate, rebuild};
use crate::volumes::VolumeCommand;

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
    /// Print a shell completion script: `cairn-admin completions bash > /etc/bash_completion.d/cairn-admin`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Buckets' lifecycle rules.
    Lifecycle {
        #[command(subcommand)]
        command: LifecycleCommand,
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
enum LifecycleCommand {
    /// Apply every bucket's lifecycle rules now and follow the job to its end (the gateway
    /// runs it by itself once a day): expire, delete noncurrent versions and lone delete
    /// markers, abort old uploads; object lock keeps what it protects.
    Run,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "cairn-admin", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
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
    let api = match Api::new(cli.admin_url.clone(), token) {
        Ok(api) => api,
        Err(message) => return finish(Err(message)),
    };
    let result = match cli.command {
        Command::Status => status::status(&api, cli.json).await,
        Command::Completions { .. } | Command::Rebuild { .. } | Command::Index { .. } => Ok(()),
        Command::Key { command } => keys::key(&api, command, cli.json).await,
        Command::Gc { grace, dry_run } => jobs::gc(&api, grace, dry_run, cli.json).await,
        Command::Lifecycle { command: LifecycleCommand::Run } => jobs::lifecycle(&api, cli.json).await,
        Command::Verify { repair } => jobs::verify(&api, repair, cli.json).await,
        Command::Volume { command } => volumes::volume(&api, command, cli.json).await,
        Command::Rebalance { dry_run, rate } => jobs::rebalance(&api, dry_run, rate, cli.json).await,
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
