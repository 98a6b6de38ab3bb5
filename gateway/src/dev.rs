//! `cairn-gateway dev`: a whole local cluster in one process, for trying Cairn out.
//!
//! Three volume daemons (two subvolumes each) run in-process on ephemeral loopback ports;
//! their ids live in their data directories, so the ports may change between runs while the
//! index keeps finding the data. Credentials are generated on first start and kept in
//! `DATA/credentials.json`. The index is RocksDB under the data directory, or PostgreSQL with
//! `--index postgres://…`.

use std::path::{Path, PathBuf};

use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{ServeArgs, Settings};
use crate::error::{Error, Result};

/// Flags of `cairn-gateway dev`.
#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// Where the volumes, credentials and (without --index) the index live.
    #[arg(long, env = "CAIRN_DATA", default_value = "./cairn-data")]
    pub data: PathBuf,
    /// Keep the index in PostgreSQL (`postgres://USER:PASSWORD@HOST/DB`) instead of RocksDB
    /// under --data; the volumes and credentials stay in --data, so use the database with
    /// the same data directory every time. [default: rocksdb:DATA/index]
    // No `env`: CAIRN_INDEX may be set for a real gateway, and a dev cluster must not write
    // into that index by accident.
    #[arg(long)]
    pub index: Option<String>,
    /// S3 listen address.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: String,
    /// Admin API listen address.
    #[arg(long, default_value = "127.0.0.1:9001")]
    pub admin_listen: String,
    /// Number of volume daemons.
    #[arg(long, default_value_t = 3)]
    pub volumes: usize,
    /// Subvolumes (directories) per volume.
    #[arg(long, default_value_t = 2)]
    pub subvolumes: usize,
    /// Copies of every object.
    #[arg(long, default_value_t = 2)]
    pub replicas: usize,
}

/// Generated once per data directory.
#[derive(Debug, Serialize, Deserialize)]
struct Credentials {
    access_key: String,
    secret_key: String,
    cluster_secret: String,
    admin_token: String,
}

fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::rng();
    (0..len).map(|_| alphabet[rng.random_range(0..alphabet.len())] as char).collect()
}

fn load_or_create_credentials(path: &Path) -> Result<Credentials> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;

    if let Ok(text) = std::fs::read_to_string(path) {
        return serde_json::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())));
    }
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    const MIXED: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let credentials = Credentials {
        access_key: format!("CAIRN{}", random_string(15, UPPER)),
        secret_key: random_string(40, MIXED),
        cluster_secret: random_string(32, MIXED),
        admin_token: random_string(32, MIXED),
    };
    let text = serde_json::to_vec_pretty(&credentials).map_err(|e| Error::Config(e.to_string()))?;
    // Secrets: readable by the owner alone, from the moment the file exists.
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(&text)?;
    file.sync_all()?;
    Ok(credentials)
}

/// The dev cluster's volumes are directories under one data directory, made on first start.
const DEV_VOLUMES: volumed::OpenOptions = volumed::OpenOptions { init: true, allow_shared_fs: true };

/// Runs the dev cluster until Ctrl-C / SIGTERM.
pub async fn run(args: DevArgs) -> Result<()> {
    std::fs::create_dir_all(&args.data)?;
    let data = args.data.canonicalize()?;
    let credentials = load_or_create_credentials(&data.join("credentials.json"))?;
    let shutdown = CancellationToken::new();
    // The volumes stop after the gateway: it finishes its requests and says goodbye to them.
    let volumes_stop = CancellationToken::new();

    let mut urls = Vec::with_capacity(args.volumes);
    let mut volume_tasks = Vec::with_capacity(args.volumes);
    for v in 1..=args.volumes {
        let dirs: Vec<PathBuf> =
            (0..args.subvolumes).map(|s| data.join(format!("volume-{v}")).join(format!("sv{s}"))).collect();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        urls.push(format!("http://{}", listener.local_addr()?));
        let (secret, stop) = (credentials.cluster_secret.clone(), volumes_stop.clone());
        volume_tasks.push(tokio::spawn(async move {
            volumed::run(listener, dirs, DEV_VOLUMES, secret, stop.cancelled_owned()).await
        }));
    }

    let settings: Settings = ServeArgs {
        listen: Some(args.listen.clone()),
        admin_listen: Some(args.admin_listen.clone()),
        // One of the two: `resolve` refuses both.
        db: args.index.is_none().then(|| data.join("index")),
        index: args.index.clone(),
        volumes: urls,
        replicas: Some(args.replicas),
        cluster_secret: Some(credentials.cluster_secret.clone()),
        access_key: Some(credentials.access_key.clone()),
        secret_key: Some(credentials.secret_key.clone()),
        admin_token: Some(credentials.admin_token.clone()),
        ..Default::default()
    }
    .resolve()?;
    let s3_listener = TcpListener::bind(&settings.listen)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {}: {e}", settings.listen)))?;
    let admin_listener = TcpListener::bind(&settings.admin_listen)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {}: {e}", settings.admin_listen)))?;

    println!(
        "Cairn dev cluster: {} volumes x {} subvolumes, {} replicas, data in {}\n\
         \n  S3 endpoint   http://{}\n  Index         {:?}\n  Admin API     http://{}  (token: {})\n  Console       http://{}/  (sign in with that token)\n  Access key    {}\n  Secret key    {}\n\
         \nTry it:\n  export AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} AWS_DEFAULT_REGION=us-east-1\n  \
         aws --endpoint-url http://{} s3 mb s3://demo\n  \
         aws --endpoint-url http://{} s3 cp README.md s3://demo/\n  \
         aws --endpoint-url http://{} s3 ls s3://demo/\n\nOperations:\n  export CAIRN_ADMIN_URL=http://{} CAIRN_ADMIN_TOKEN={}\n  \
         cairn-admin status\n\nCtrl-C stops it; the data stays.",
        args.volumes,
        args.subvolumes,
        args.replicas,
        data.display(),
        settings.listen,
        // Debug: the URL's password is left out.
        settings.index,
        settings.admin_listen,
        credentials.admin_token,
        settings.admin_listen,
        credentials.access_key,
        credentials.secret_key,
        credentials.access_key,
        credentials.secret_key,
        settings.listen,
        settings.listen,
        settings.listen,
        settings.admin_listen,
        credentials.admin_token,
    );

    let stop = shutdown.clone();
    tokio::spawn(async move {
        volumed::serve::shutdown_signal().await;
        stop.cancel();
    });
    let result = crate::server::run(settings, s3_listener, admin_listener, shutdown.clone()).await;
    volumes_stop.cancel();
    for task in volume_tasks {
        if let Ok(Err(err)) = task.await {
            tracing::error!(%err, "volume stopped with an error");
        }
    }
    result
}
