use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gateway::config::ServeArgs;
use gateway::dev::DevArgs;
use tokio_util::sync::CancellationToken;

/// Cairn: an S3-compatible object gateway over replicated volumes.
#[derive(Debug, Parser)]
#[command(name = "cairn-gateway", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as text or as JSON objects (`RUST_LOG` filters them).
    #[arg(long, global = true, env = "CAIRN_LOG_FORMAT", value_enum, default_value_t)]
    log_format: gateway::logging::LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve S3 over volume daemons that run elsewhere.
    Serve(Box<ServeArgs>),
    /// Start a complete local cluster (gateway + 3 volumes) in one process.
    Dev(DevArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    gateway::logging::init(cli.log_format);
    volumed::metrics::install();
    let result = match cli.command {
        Command::Dev(args) => gateway::dev::run(args).await,
        Command::Serve(args) => serve(*args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(gateway::Error::Config(message)) => {
            eprintln!("cairn-gateway: {message}");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("cairn-gateway: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> gateway::Result<()> {
    let print_config = args.print_config;
    let settings = args.resolve()?;
    if print_config {
        print!("{}", settings.to_toml());
        return Ok(());
    }
    let bind = |addr: String| async move {
        tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| gateway::Error::Config(format!("cannot listen on {addr}: {e}")))
    };
    let s3_listener = bind(settings.listen.clone()).await?;
    let admin_listener = bind(settings.admin_listen.clone()).await?;
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        volumed::serve::shutdown_signal().await;
        stop.cancel();
    });
    gateway::server::run(settings, s3_listener, admin_listener, shutdown).await
}
