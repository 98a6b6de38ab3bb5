use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Cairn volume daemon: stores blobs on local disks for the Cairn gateway.
#[derive(Debug, Parser)]
#[command(name = "cairn-volumed", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "CAIRN_VOLUMED_LISTEN", default_value = "127.0.0.1:9101")]
    listen: String,
    /// Data directory; repeat once per disk (subvolume). Order matters and is checked.
    #[arg(long = "dir", env = "CAIRN_VOLUMED_DIRS", value_delimiter = ',', required = true)]
    dirs: Vec<PathBuf>,
    /// Shared secret the gateway presents (`Authorization: Bearer …`).
    #[arg(long, env = "CAIRN_CLUSTER_SECRET", hide_env_values = true, required_unless_present = "cluster_secret_file")]
    cluster_secret: Option<String>,
    /// Make the directories Cairn subvolumes if they are not yet (first start on new disks);
    /// without it a missing or foreign directory is refused, so an unmounted disk is noticed.
    #[arg(long)]
    init: bool,
    /// Accept several --dir on one file system (tests, trying Cairn out).
    #[arg(long)]
    allow_shared_fs: bool,
    /// File holding the cluster secret (kept out of the process list; systemd credentials).
    #[arg(long, env = "CAIRN_CLUSTER_SECRET_FILE", conflicts_with = "cluster_secret")]
    cluster_secret_file: Option<PathBuf>,
    /// Log lines as text or as JSON objects (`RUST_LOG` filters them).
    #[arg(long, env = "CAIRN_LOG_FORMAT", value_enum, default_value_t)]
    log_format: volumed::serve::LogFormat,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    volumed::serve::init_logging(args.log_format);
    let cluster_secret = match (&args.cluster_secret, &args.cluster_secret_file) {
        (Some(secret), _) => secret.clone(),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(text) => text.trim_end_matches(['\n', '\r']).to_string(),
            Err(err) => {
                eprintln!("cairn-volumed: {}: {err}", path.display());
                return ExitCode::from(2);
            }
        },
        (None, None) => String::new(),
    };
    if cluster_secret.is_empty() {
        eprintln!("cairn-volumed: --cluster-secret must not be empty");
        return ExitCode::from(2);
    }
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("cairn-volumed: cannot listen on {}: {err}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let options = volumed::OpenOptions { init: args.init, allow_shared_fs: args.allow_shared_fs };
    match volumed::run(listener, args.dirs, options, cluster_secret, volumed::serve::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cairn-volumed: {err}");
            ExitCode::FAILURE
        }
    }
}
