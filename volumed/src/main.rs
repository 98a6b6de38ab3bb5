use std::process::ExitCode;

use clap::Parser;
use volumed::config::VolumedArgs;

#[tokio::main]
async fn main() -> ExitCode {
    let args = VolumedArgs::parse();
    volumed::serve::init_logging(args.log_format);
    volumed::metrics::install();
    let print_config = args.print_config;
    let settings = match args.resolve() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("cairn-volumed: {err}");
            return ExitCode::from(2);
        }
    };
    if print_config {
        print!("{}", settings.to_toml());
        return ExitCode::SUCCESS;
    }
    let listener = match tokio::net::TcpListener::bind(&settings.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("cairn-volumed: cannot listen on {}: {err}", settings.listen);
            return ExitCode::FAILURE;
        }
    };
    let options = volumed::OpenOptions { init: settings.init, allow_shared_fs: settings.allow_shared_fs };
    let shutdown = volumed::serve::shutdown_signal();
    match volumed::run_with(listener, settings.dirs, options, settings.pack, settings.cluster_secret, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cairn-volumed: {err}");
            ExitCode::FAILURE
        }
    }
}
