//! Probes for load balancers and orchestrators, answered without the admin token (they carry
//! no secret and change nothing): `GET /health` says the process serves; `GET /ready` says it
//! can take writes now — its index answers and enough member volumes are up for the write
//! quorum. A not-ready gateway answers 503 with the reasons, so a load balancer in front of
//! several gateways sends clients to the others.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

use super::{AdminApi, json};

/// `GET /ready`'s answer.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Readiness {
    /// Whether the gateway can take writes.
    pub ready: bool,
    /// The index answered a read.
    pub index: bool,
    /// Member volumes taken to be up.
    pub volumes_up: usize,
    /// Member volumes.
    pub volumes: usize,
    /// Volumes a write needs.
    pub write_quorum: usize,
    /// Why not, when not.
    pub reasons: Vec<String>,
}

pub(super) fn health() -> Response<Full<Bytes>> {
    super::reply(StatusCode::OK, "ok".into())
}

/// `GET /metrics`: Prometheus text format, no token (see `volumed::metrics`).
pub(super) fn metrics() -> Response<Full<Bytes>> {
    let mut response = super::reply(StatusCode::OK, volumed::metrics::render());
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(volumed::metrics::CONTENT_TYPE));
    response
}

pub(super) async fn ready(api: &AdminApi) -> Response<Full<Bytes>> {
    let index_ok = match api.index.cluster_id().await {
        Ok(_) => true,
        Err(err) => {
            tracing::warn!(%err, "readiness: the index does not answer");
            false
        }
    };
    let membership = api.cluster.membership();
    let health = api.volumes.health();
    let volumes_up = membership.volumes.iter().filter(|v| v.weight > 0.0 && health.is_up(&v.url)).count();
    let mut reasons = Vec::new();
    if !index_ok {
        reasons.push("the index does not answer".to_string());
    }
    if volumes_up < api.write_quorum {
        reasons.push(format!("{volumes_up} volumes taking writes are up; a write needs {}", api.write_quorum));
    }
    let readiness = Readiness {
        ready: reasons.is_empty(),
        index: index_ok,
        volumes_up,
        volumes: membership.volumes.len(),
        write_quorum: api.write_quorum,
        reasons,
    };
    let status = if readiness.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    json(status, &readiness)
}
