//! `volumed`: the Cairn volume daemon, a blob store over local disks.
//!
//! ```text
//! HTTP request ──► http::Api (cluster-secret check, routing)
//!                     ├─► store::Store (identity, locks; ids checked; one BlobStore per subvolume)
//!                     │      ├─► backend::BlobStore (write, open, delete, list ids; one test suite)
//!                     │      │      └─► subvolume::Subvolume (known small size? packed : file)
//!                     │      │             ├─► packed::Packed (segments, group commit, index)
//!                     │      │             └─► files::FileBlobs (a file per blob, durable rename)
//!                     │      ├─► blob (blob format: data | block CRCs | metadata JSON | footer)
//!                     │      └─► read (data out block by block, each checked first)
//!                     └─► membership::Membership (the cluster's membership as last pushed; gateways seen)
//! ```
//!
//! It knows nothing about S3: bucket, key and the other S3 facts travel in the opaque
//! metadata the gateway attaches to each blob. `serve` holds the accept loop that every Cairn
//! listener shares.

pub mod backend;
pub mod blob;
mod cached;
pub mod commit_log;
pub mod config;
pub mod error;
mod files;
pub mod http;
pub mod membership;
pub mod metrics;
mod packed;
pub mod read;
pub mod serve;
pub mod store;
mod subvolume;
pub mod tls;

use std::future::Future;
use std::path::PathBuf;

use tokio::net::TcpListener;

pub use crate::error::{Error, Result};
pub use crate::store::{OpenOptions, PackOptions, Store, VolumeStats, WriteReceipt};

/// Starts a volume daemon on `listener` over `dirs` (one subvolume each) and serves until
/// `shutdown` resolves; small blobs are packed as [`PackOptions::default`] says.
pub async fn run(
    listener: TcpListener,
    dirs: Vec<PathBuf>,
    options: OpenOptions,
    cluster_secret: String,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    run_with(listener, dirs, options, PackOptions::default(), cluster_secret, shutdown).await
}

/// [`run`] with the given packing of small blobs.
pub async fn run_with(
    listener: TcpListener,
    dirs: Vec<PathBuf>,
    options: OpenOptions,
    pack: PackOptions,
    cluster_secret: String,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let store = Store::open_with(&dirs, options, pack)?;
    let membership = membership::Membership::open(&dirs)?;
    tracing::info!(volume_id = store.volume_id(), addr = ?listener.local_addr().ok(), subvolumes = dirs.len(), "volume daemon serving");
    let api = http::Api::new(store, membership, cluster_secret);
    let service = hyper::service::service_fn(move |req| api.clone().handle(req));
    serve::serve_with_max_head(listener, service, shutdown, http::MAX_REQUEST_HEAD).await;
    Ok(())
}
