//! Volume membership, changed online: new writes follow the new ring at once; reads keep
//! using the volumes the records name until rebalance moves the blobs.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use super::{AdminApi, Failure, json, read_json};
use crate::error::Error;
use crate::index::records::Membership;

/// `POST /volumes` body: add (or update) a volume.
#[derive(Debug, Serialize, Deserialize)]
pub struct AddVolume {
    /// The volume daemon's URL.
    pub url: String,
    /// Its failure domain.
    pub zone: Option<String>,
    /// Its share of new data relative to the others (default 1).
    pub weight: Option<f64>,
}

/// `POST /volumes/weight` body; `drain` is weight 0.
#[derive(Debug, Serialize, Deserialize)]
pub struct SetWeight {
    /// The volume's URL.
    pub url: String,
    /// Its new weight.
    pub weight: f64,
}

/// `POST /volumes/zone` body; no zone clears it.
#[derive(Debug, Serialize, Deserialize)]
pub struct SetZone {
    /// The volume's URL.
    pub url: String,
    /// Its zone; `None` clears it.
    pub zone: Option<String>,
}

/// `POST /volumes/remove` body.
#[derive(Debug, Serialize, Deserialize)]
pub struct RemoveVolume {
    /// The volume's URL.
    pub url: String,
    /// Remove it even though records name copies on it (it is gone for good): those copies
    /// are dropped from the records and rebuilt from the others by the repairer.
    #[serde(default)]
    pub force: bool,
}

/// `POST /volumes/remove` answer.
#[derive(Debug, serde::Serialize)]
struct Removed<'a> {
    #[serde(flatten)]
    membership: &'a Membership,
    /// With `force`: what was dropped from the records.
    forgotten: Option<crate::index::Forgotten>,
}

fn normalise(url: &str) -> String {
    url.trim().trim_end_matches('/').to_string()
}

fn answer(membership: &Membership) -> Response<Full<Bytes>> {
    json(StatusCode::OK, membership)
}

pub(super) async fn add(api: &AdminApi, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Failure> {
    let body: AddVolume = read_json(req).await?;
    if body.weight.is_some_and(|w| !(w.is_finite() && w >= 0.0)) {
        return Err(Failure(StatusCode::BAD_REQUEST, "weight must be a number >= 0".into()));
    }
    let url = normalise(&body.url);
    let membership =
        api.cluster.add_volume(&api.index, &api.volumes, &url, body.zone, body.weight).await.map_err(|e| match e {
            // A volume of another cluster.
            Error::Config(refused) => Failure(StatusCode::CONFLICT, refused),
            e => Failure(StatusCode::BAD_GATEWAY, format!("{url}: {e}")),
        })?;
    tracing::info!(%url, "volume added");
    Ok(answer(&membership))
}

pub(super) async fn weight(api: &AdminApi, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Failure> {
    let body: SetWeight = read_json(req).await?;
    if !(body.weight.is_finite() && body.weight >= 0.0) {
        return Err(Failure(StatusCode::BAD_REQUEST, "weight must be a number >= 0".into()));
    }
    let url = normalise(&body.url);
    let membership = change_volume(api, &url, |volume| volume.weight = body.weight).await?;
    tracing::info!(%url, weight = body.weight, "volume weight set");
    Ok(answer(&membership))
}

/// Changes the member volume at `url` with `change` (404 if there is none).
async fn change_volume(
    api: &AdminApi,
    url: &str,
    change: impl Fn(&mut crate::index::records::VolumeRecord) + Send + Sync,
) -> Result<Membership, Failure> {
    let changed = api
        .cluster
        .update(&api.index, |m| {
            let volume =
                m.volumes.iter_mut().find(|v| v.url == url).ok_or_else(|| Error::Config(format!("no volume {url}")))?;
            change(volume);
            Ok(())
        })
        .await;
    changed.map_err(|e| Failure(StatusCode::NOT_FOUND, e.to_string()))
}

pub(super) async fn zone(api: &AdminApi, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Failure> {
    let body: SetZone = read_json(req).await?;
    let zone = body.zone.map(|z| z.trim().to_string()).filter(|z| !z.is_empty());
    let url = normalise(&body.url);
    let membership = change_volume(api, &url, |volume| volume.zone = zone.clone()).await?;
    tracing::info!(%url, ?zone, "volume zone set");
    Ok(answer(&membership))
}

pub(super) async fn remove(api: &AdminApi, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Failure> {
    let body: RemoveVolume = read_json(req).await?;
    let url = normalise(&body.url);
    let id = api
        .cluster
        .membership()
        .volumes
        .iter()
        .find(|v| v.url == url)
        .map(|v| v.id.clone())
        .ok_or_else(|| Failure(StatusCode::NOT_FOUND, format!("no volume {url}")))?;
    // Forgetting comes before leaving the membership, so a forced removal cut short can be
    // run again. Meanwhile placement and repairs skip the volume: it is down.
    let (in_use, forgotten) = if body.force {
        (false, Some(api.index.forget_volume(&id).await?))
    } else {
        (api.index.volume_in_use(&id).await?, None)
    };
    if in_use {
        return Err(Failure(
            StatusCode::CONFLICT,
            format!(
                "{url} still holds blobs: drain it, rebalance and gc first, then remove it (or, if it is gone for good, remove it with --force)"
            ),
        ));
    }
    let membership = api
        .cluster
        .update(&api.index, |m| {
            m.volumes.retain(|v| v.id != id);
            if !m.removed.contains(&id) {
                m.removed.push(id.clone());
            }
            Ok(())
        })
        .await?;
    tracing::info!(%url, ?forgotten, "volume removed");
    Ok(json(StatusCode::OK, &Removed { membership: &membership, forgotten }))
}
