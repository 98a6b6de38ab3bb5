//! `cairn-admin`: operator commands, a client of the gateway's admin API.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gateway::admin::Status;

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
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(token) = cli.token.clone() else {
        eprintln!("cairn-admin: an admin token is required (--token or CAIRN_ADMIN_TOKEN)");
        return ExitCode::from(2);
    };
    let result = match cli.command {
        Command::Status => status(&cli.admin_url, &token, cli.json).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("cairn-admin: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn status(admin_url: &str, token: &str, json: bool) -> Result<(), String> {
    let url = format!("{}/status", admin_url.trim_end_matches('/'));
    let response =
        reqwest::Client::new().get(&url).bearer_auth(token).send().await.map_err(|e| format!("{url}: {e}"))?;
    let code = response.status();
    let body = response.text().await.map_err(|e| format!("{url}: {e}"))?;
    if !code.is_success() {
        return Err(format!("{url} answered {code}: {}", body.trim()));
    }
    let status: Status = serde_json::from_str(&body).map_err(|e| format!("{url}: unexpected answer: {e}"))?;
    if json {
        println!("{body}");
        return Ok(());
    }
    println!(
        "objects {}  bytes {}  buckets {}  gc queue {}",
        status.objects, status.bytes, status.buckets, status.gc_queue
    );
    println!("{:<18} {:<28} {:>6} {:<8} free per subvolume", "volume", "url", "weight", "health");
    for volume in &status.volumes {
        let free: Vec<String> =
            volume.free_bytes.iter().map(|b| format!("{:.1} GiB", *b as f64 / (1u64 << 30) as f64)).collect();
        println!(
            "{:<18} {:<28} {:>6} {:<8} {}",
            volume.id,
            volume.url,
            volume.weight,
            if volume.healthy { "up" } else { "DOWN" },
            free.join(", ")
        );
    }
    if status.volumes.iter().any(|v| !v.healthy) {
        return Err("some volumes are down".into());
    }
    Ok(())
}
