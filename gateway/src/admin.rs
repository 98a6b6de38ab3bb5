//! The admin API (separate listener, bearer admin token). For now: `GET /status`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::cluster::Cluster;
use crate::index::Index;
use crate::volume_client::VolumeClient;

/// State of the admin API.
#[derive(Debug)]
pub struct AdminApi {
    pub(crate) index: Arc<Index>,
    pub(crate) cluster: Cluster,
    pub(crate) volumes: VolumeClient,
    pub(crate) token: Option<String>,
}

/// `GET /status` answer.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Status {
    /// Volumes with their health and space.
    pub volumes: Vec<VolumeStatus>,
    /// Number of buckets.
    pub buckets: u64,
    /// Live objects.
    pub objects: u64,
    /// Bytes in live objects (one copy).
    pub bytes: u64,
    /// Blobs waiting for GC.
    pub gc_queue: u64,
}

/// One volume in `/status`.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct VolumeStatus {
    /// Volume id.
    pub id: String,
    /// URL.
    pub url: String,
    /// Placement weight.
    pub weight: f64,
    /// Zone.
    pub zone: Option<String>,
    /// Answered `/stats` just now.
    pub healthy: bool,
    /// Free bytes per subvolume (empty when unhealthy).
    pub free_bytes: Vec<u64>,
}

impl AdminApi {
    /// Handles one request; never fails at the HTTP level.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let Some(token) = self.token.as_deref() else {
            return Ok(reply(
                StatusCode::UNAUTHORIZED,
                "no admin token is configured; start the gateway with --admin-token".into(),
            ));
        };
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
            return Ok(reply(StatusCode::UNAUTHORIZED, "unauthorized".into()));
        }
        let response = match (req.method().as_str(), req.uri().path()) {
            ("GET", "/status") => match self.status().await {
                Ok(status) => json(&status),
                Err(err) => {
                    tracing::error!(%err, "status failed");
                    reply(StatusCode::INTERNAL_SERVER_ERROR, err.to_string())
                }
            },
            _ => reply(StatusCode::NOT_FOUND, "not found".into()),
        };
        Ok(response)
    }

    async fn status(&self) -> crate::Result<Status> {
        let membership = self.cluster.membership();
        let mut volumes = Vec::with_capacity(membership.volumes.len());
        for volume in &membership.volumes {
            let stats = self.volumes.stats(&volume.url).await.ok();
            volumes.push(VolumeStatus {
                id: volume.id.clone(),
                url: volume.url.clone(),
                weight: volume.weight,
                zone: volume.zone.clone(),
                healthy: stats.is_some(),
                free_bytes: stats.map(|s| s.subvolumes.iter().map(|sv| sv.free_bytes).collect()).unwrap_or_default(),
            });
        }
        let index = self.index.clone();
        let (buckets, (objects, bytes), gc_queue) = tokio::task::spawn_blocking(move || -> crate::Result<_> {
            Ok((index.buckets()?.len() as u64, index.object_totals()?, index.gc_queue()?.len() as u64))
        })
        .await
        .map_err(|e| crate::Error::Index(e.to_string()))??;
        Ok(Status { volumes, buckets, objects, bytes, gc_queue })
    }
}

fn reply(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response
}

fn json<T: Serialize>(value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec_pretty(value) {
        Ok(bytes) => {
            let mut response = Response::new(Full::new(Bytes::from(bytes)));
            response.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
            response
        }
        Err(err) => reply(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    }
}
