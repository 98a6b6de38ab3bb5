//! Wiring: open the index, join the cluster, and serve S3 and the admin API until shutdown.

use std::sync::Arc;
use std::time::Duration;

use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::admin::AdminApi;
use crate::auth::{AccessPolicy, KeyStore};
use crate::cluster::Cluster;
use crate::config::Settings;
use crate::error::Result;
use crate::index::Index;
use crate::s3::Gateway;
use crate::volume_client::VolumeClient;

/// How long startup waits for each configured volume to answer.
const VOLUME_WAIT: Duration = Duration::from_secs(30);

/// Runs the gateway on the given listeners until `shutdown` is cancelled.
pub async fn run(
    settings: Settings,
    s3_listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<()> {
    let index = Arc::new(Index::open(&settings.db)?);
    let volumes = VolumeClient::new(&settings.cluster_secret)?;
    let cluster = Cluster::join(&index, &volumes, &settings.volumes, VOLUME_WAIT).await?;
    tracing::info!(volumes = cluster.membership().volumes.len(), replicas = settings.replicas, "cluster joined");

    let gateway = Gateway::new(
        index.clone(),
        cluster.clone(),
        volumes.clone(),
        settings.replicas,
        settings.write_quorum,
        settings.region.clone(),
    );
    let mut builder = S3ServiceBuilder::new(gateway);
    builder.set_auth(KeyStore::new(settings.access_key.clone(), settings.secret_key.clone()));
    builder.set_access(AccessPolicy);
    let s3 = builder.build();
    let s3 = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let request_id = hex::encode(rand::random::<[u8; 8]>()).to_uppercase();
        let span =
            tracing::info_span!("s3", request_id = %request_id, method = %req.method(), path = %req.uri().path());
        let s3 = s3.clone();
        async move {
            let mut response = hyper::service::Service::call(&s3, req).await?;
            tracing::debug!(status = response.status().as_u16(), "done");
            if let Ok(value) = http::HeaderValue::from_str(&request_id) {
                response.headers_mut().insert("x-amz-request-id", value);
            }
            Ok::<_, s3s::HttpError>(response)
        }
        .instrument(span)
    });

    let admin = Arc::new(AdminApi { index, cluster, volumes, token: settings.admin_token.clone() });
    let admin = hyper::service::service_fn(move |req| admin.clone().handle(req));
    let admin_shutdown = shutdown.clone();
    let admin_task =
        tokio::spawn(volumed::serve::serve(admin_listener, admin, async move { admin_shutdown.cancelled().await }));

    tracing::info!(addr = ?s3_listener.local_addr().ok(), "S3 endpoint serving");
    volumed::serve::serve(s3_listener, s3, shutdown.cancelled()).await;
    let _ = admin_task.await;
    Ok(())
}
