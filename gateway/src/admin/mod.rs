//! The admin API (separate listener, bearer admin token), the status console at `/`, and
//! the probes and metrics (no token).
//!
//! ```text
//! GET    /                       the status console (a page that signs in with the token)
//! GET    /status                 volumes, counts, jobs
//! POST   /keys                   {"name"} → a new access key with its secret (shown once)
//! GET    /keys                   keys and grants, no secrets
//! GET    /keys/export            every key with its secret (cairn-admin seals them)
//! POST   /keys/import            [{"access_key_id", "secret_access_key", "name", …}]
//!                                → stored, replacing keys with the same id
//! DELETE /keys/{id}
//! POST   /keys/{id}/grants       {"bucket", "read", "write", "owner", "allow"}
//! POST   /jobs/gc                {"grace_secs", "dry_run"} → starts GC (one at a time)
//! GET    /jobs/gc                progress of the running or last GC (wherever it runs)
//! POST   /jobs/verify            {"repair"} → starts verify (and repair)
//! GET    /jobs/verify            progress of the running or last verify
//! POST   /jobs/rebalance         {"dry_run", "rate_mb_s"} → starts a rebalance
//! GET    /jobs/rebalance         progress of the running or last rebalance
//! POST   /jobs/lifecycle         → applies the buckets' lifecycle rules now (one at a time)
//! GET    /jobs/lifecycle         progress of the running or last lifecycle job
//! POST   /volumes                {"url", "zone", "weight"} → add (or update) a volume
//! POST   /volumes/weight         {"url", "weight"} (0 drains)
//! POST   /volumes/zone           {"url", "zone"} (null clears it)
//! POST   /volumes/remove         {"url"} → only once nothing is left on it
//! ```

mod console;
mod gauges;
pub mod gc;
pub mod jobs;
pub mod keys;
pub mod lifecycle;
pub mod probes;
pub mod rebalance;
pub mod verify;
pub mod volumes;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::cluster::Cluster;
use crate::in_flight::InFlight;
use crate::index::Index;
use crate::volume_client::VolumeClient;

/// State of the admin API.
#[derive(Debug)]
pub struct AdminApi {
    pub(crate) index: Arc<Index>,
    pub(crate) cluster: Cluster,
    pub(crate) volumes: VolumeClient,
    pub(crate) in_flight: InFlight,
    pub(crate) token: Option<String>,
    /// This gateway as the owner of jobs.
    pub(crate) instance: jobs::Instance,
    /// Whether this gateway runs the repairer (shared with it).
    pub(crate) repair_lease: jobs::RepairLease,
    pub(crate) gc: jobs::JobSlot<gc::GcProgress>,
    pub(crate) verify: jobs::JobSlot<verify::VerifyProgress>,
    pub(crate) rebalance: jobs::JobSlot<rebalance::RebalanceProgress>,
    pub(crate) lifecycle: jobs::JobSlot<lifecycle::LifecycleProgress>,
    /// The S3 gateway the lifecycle job deletes through, as S3 requests do.
    pub(crate) gateway: Option<crate::s3::Gateway>,
    /// How long a lifecycle day is, in ms (`--lifecycle-day-secs`).
    pub(crate) lifecycle_day_ms: u64,
    pub(crate) replicas: usize,
    /// Volumes a write needs (for `/ready`).
    pub(crate) write_quorum: usize,
    /// Age after which GC aborts an incomplete multipart upload.
    pub(crate) upload_ttl: std::time::Duration,
    /// The gauges `/metrics` reads from the index.
    pub(crate) index_gauges: gauges::IndexGauges,
}

impl AdminApi {
    /// The admin API over the gateway's state.
    pub fn new(
        index: Arc<Index>,
        cluster: Cluster,
        volumes: VolumeClient,
        in_flight: InFlight,
        token: Option<String>,
        replicas: usize,
    ) -> Self {
        let instance = jobs::Instance::new("", false);
        Self {
            gc: jobs::JobSlot::new("gc", index.clone(), instance.clone()),
            verify: jobs::JobSlot::new("verify", index.clone(), instance.clone()),
            rebalance: jobs::JobSlot::new("rebalance", index.clone(), instance.clone()),
            lifecycle: jobs::JobSlot::new("lifecycle", index.clone(), instance.clone()),
            gateway: None,
            lifecycle_day_ms: crate::config::DEFAULT_LIFECYCLE_DAY.as_millis() as u64,
            instance,
            repair_lease: jobs::RepairLease::default(),
            index,
            cluster,
            volumes,
            in_flight,
            token,
            replicas,
            write_quorum: replicas,
            upload_ttl: crate::config::DEFAULT_UPLOAD_TTL,
            index_gauges: gauges::IndexGauges::default(),
        }
    }

    /// Sets who this gateway is as a job owner, and the repairer's lease it keeps.
    #[must_use]
    pub fn with_instance(mut self, instance: jobs::Instance, repair_lease: jobs::RepairLease) -> Self {
        self.gc = jobs::JobSlot::new("gc", self.index.clone(), instance.clone());
        self.verify = jobs::JobSlot::new("verify", self.index.clone(), instance.clone());
        self.rebalance = jobs::JobSlot::new("rebalance", self.index.clone(), instance.clone());
        self.lifecycle = jobs::JobSlot::new("lifecycle", self.index.clone(), instance.clone());
        self.instance = instance;
        self.repair_lease = repair_lease;
        self
    }

    /// Every [`jobs::WATCH_EVERY`] until `shutdown`: reads the job records, resumes here the
    /// jobs whose owners died (see `jobs`), and keeps or claims the repairer's lease. On
    /// shutdown, hands what runs here over for another gateway to resume at once.
    pub async fn watch_jobs(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let mut observer = jobs::Observer::default();
        loop {
            if let Err(err) = self.watch_once(&mut observer).await {
                tracing::warn!(%err, "reading the job records failed");
            }
            tokio::select! {
                () = tokio::time::sleep(jobs::WATCH_EVERY) => {}
                () = shutdown.cancelled() => break,
            }
        }
        self.gc.release().await;
        self.verify.release().await;
        self.rebalance.release().await;
        self.lifecycle.release().await;
        self.repair_lease.release(&self.index, &self.instance).await;
    }

    /// Until `shutdown`, every [`LIFECYCLE_CHECK_EVERY`] (or lifecycle day, if shorter):
    /// starts the lifecycle job unless one started within the last lifecycle day, here or on
    /// another gateway, or no bucket has rules. Checking often, not once a day, keeps
    /// gateways restarted more often than daily from never running it.
    pub async fn schedule_lifecycle(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let every = std::time::Duration::from_millis(self.lifecycle_day_ms).min(LIFECYCLE_CHECK_EVERY);
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = shutdown.cancelled() => return,
            }
            if let Err(err) = lifecycle::start_if_due(&self).await {
                tracing::warn!(%err, "the lifecycle job did not start; trying again in a lifecycle day");
            }
        }
    }

    async fn watch_once(&self, observer: &mut jobs::Observer) -> crate::Result<()> {
        let sole = self.instance.sole;
        if let Some(record) = self.index.job("gc").await?
            && observer.dead_owner(&record, std::time::Instant::now(), sole)
            && !self.gc.runs_here()
        {
            gc::resume(self, record.lease).await?;
        }
        if let Some(record) = self.index.job("verify").await?
            && observer.dead_owner(&record, std::time::Instant::now(), sole)
            && !self.verify.runs_here()
        {
            verify::resume(self, record.lease).await?;
        }
        if let Some(record) = self.index.job("rebalance").await?
            && observer.dead_owner(&record, std::time::Instant::now(), sole)
            && !self.rebalance.runs_here()
        {
            rebalance::resume(self, record.lease).await?;
        }
        if let Some(record) = self.index.job("lifecycle").await?
            && observer.dead_owner(&record, std::time::Instant::now(), sole)
            && !self.lifecycle.runs_here()
        {
            lifecycle::resume(self, record.lease).await?;
        }
        let record = self.index.job(jobs::REPAIR).await?;
        let dead = record.as_ref().is_some_and(|r| observer.dead_owner(r, std::time::Instant::now(), sole));
        self.repair_lease.tick(&self.index, &self.instance, record, dead).await
    }

    /// Sets the number of volumes a write needs (default: every replica), for `/ready`.
    #[must_use]
    pub fn with_write_quorum(mut self, write_quorum: usize) -> Self {
        self.write_quorum = write_quorum;
        self
    }

    /// Sets the S3 gateway the lifecycle job acts through, and the length of a lifecycle day.
    #[must_use]
    pub fn with_lifecycle(mut self, gateway: crate::s3::Gateway, day: std::time::Duration) -> Self {
        self.gateway = Some(gateway);
        self.lifecycle_day_ms = u64::try_from(day.as_millis()).unwrap_or(u64::MAX).max(1);
        self
    }

    /// Sets the age after which GC aborts an incomplete multipart upload.
    #[must_use]
    pub fn with_upload_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.upload_ttl = ttl;
        self
    }
}

/// How often each gateway looks whether the lifecycle job is due.
const LIFECYCLE_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Largest JSON body the admin API reads.
const MAX_BODY: usize = 64 * 1024;

/// An admin request failed: the status and a message for the operator.
#[derive(Debug)]
pub(crate) struct Failure(StatusCode, String);

impl From<crate::Error> for Failure {
    fn from(err: crate::Error) -> Self {
        tracing::error!(%err, "admin request failed");
        Failure(StatusCode::INTERNAL_SERVER_ERROR, err.to_string())
    }
}

/// Reads a JSON body (an empty body reads as `{}`).
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Result<T, Failure> {
    read_json_limited(req, MAX_BODY).await
}

/// Reads a JSON body of at most `limit` bytes (an empty body reads as `{}`).
pub(crate) async fn read_json_limited<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
    limit: usize,
) -> Result<T, Failure> {
    let bytes = Limited::new(req.into_body(), limit)
        .collect()
        .await
        .map_err(|e| Failure(StatusCode::BAD_REQUEST, format!("body: {e}")))?
        .to_bytes();
    let bytes = if bytes.is_empty() { Bytes::from_static(b"{}") } else { bytes };
    serde_json::from_slice(&bytes).map_err(|e| Failure(StatusCode::BAD_REQUEST, format!("bad JSON: {e}")))
}

/// `GET /status` answer.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Status {
    /// The cluster's id (made with the index; a rebuild restores it).
    #[serde(default)]
    pub cluster_id: String,
    /// The membership epoch: grows with every membership change.
    #[serde(default)]
    pub membership_epoch: u64,
    /// Ids of volumes removed with `volume remove`.
    #[serde(default)]
    pub removed: Vec<String>,
    /// Volumes with their health and space.
    pub volumes: Vec<VolumeStatus>,
    /// Number of buckets.
    pub buckets: u64,
    /// Live objects and bytes of each bucket, by name.
    #[serde(default)]
    pub bucket_usage: std::collections::BTreeMap<String, crate::index::BucketUsage>,
    /// Live objects.
    pub objects: u64,
    /// Bytes in live objects (one copy).
    pub bytes: u64,
    /// Blobs waiting for GC.
    pub gc_queue: u64,
    /// Object bytes in the blobs waiting for GC (entries queued before this was recorded count 0).
    #[serde(default)]
    pub gc_queue_bytes: u64,
    /// Blobs with fewer copies than `--replicas`, waiting for the repairer.
    #[serde(default)]
    pub repair_queue: u64,
    /// The running or last job of each kind.
    pub jobs: Jobs,
    /// The gateways serving the index, with their heartbeats.
    #[serde(default)]
    pub gateways: Vec<crate::index::GatewayRecord>,
}

/// The running or last job of each kind, in `/status`.
#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub struct Jobs {
    /// Garbage collection.
    pub gc: Option<gc::GcProgress>,
    /// Verify / repair.
    pub verify: Option<verify::VerifyProgress>,
    /// Rebalance.
    pub rebalance: Option<rebalance::RebalanceProgress>,
    /// Lifecycle.
    #[serde(default)]
    pub lifecycle: Option<lifecycle::LifecycleProgress>,
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
    /// File system size per subvolume (empty when unhealthy).
    #[serde(default)]
    pub total_bytes: Vec<u64>,
}

impl AdminApi {
    /// Handles one request; never fails at the HTTP level.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        if req.method() == http::Method::GET {
            if let Some(page) = console::asset(req.uri().path()) {
                return Ok(page);
            }
            match req.uri().path() {
                "/health" => return Ok(probes::health()),
                "/ready" => return Ok(probes::ready(&self).await),
                "/metrics" => {
                    self.index_gauges.refresh(&self).await;
                    return Ok(probes::metrics());
                }
                _ => {}
            }
        }
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
        let method = req.method().clone();
        let path = req.uri().path().trim_end_matches('/').to_string();
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let result = match (method.as_str(), segments.as_slice()) {
            ("GET", ["status"]) => self.status().await.map(|s| json(StatusCode::OK, &s)).map_err(Failure::from),
            ("POST", ["keys"]) => keys::create(&self, req).await,
            ("GET", ["keys"]) => keys::list(&self).await,
            ("GET", ["keys", "export"]) => keys::export(&self).await,
            ("POST", ["keys", "import"]) => keys::import(&self, req).await,
            ("DELETE", ["keys", id]) => keys::delete(&self, id).await,
            ("POST", ["keys", id, "grants"]) => keys::grant(&self, id, req).await,
            ("POST", ["jobs", "gc"]) => gc::start(&self, req).await,
            ("GET", ["jobs", "gc"]) => self.gc.read().await.map(|p| json(StatusCode::OK, &p)).map_err(Failure::from),
            ("POST", ["jobs", "verify"]) => verify::start(&self, req).await,
            ("POST", ["jobs", "rebalance"]) => rebalance::start(&self, req).await,
            ("POST", ["jobs", "lifecycle"]) => lifecycle::start(&self).await,
            ("GET", ["jobs", "lifecycle"]) => {
                self.lifecycle.read().await.map(|p| json(StatusCode::OK, &p)).map_err(Failure::from)
            }
            ("GET", ["jobs", "rebalance"]) => {
                self.rebalance.read().await.map(|p| json(StatusCode::OK, &p)).map_err(Failure::from)
            }
            ("POST", ["volumes"]) => volumes::add(&self, req).await,
            ("POST", ["volumes", "weight"]) => volumes::weight(&self, req).await,
            ("POST", ["volumes", "zone"]) => volumes::zone(&self, req).await,
            ("POST", ["volumes", "remove"]) => volumes::remove(&self, req).await,
            ("GET", ["jobs", "verify"]) => {
                self.verify.read().await.map(|p| json(StatusCode::OK, &p)).map_err(Failure::from)
            }
            _ => Err(Failure(StatusCode::NOT_FOUND, "not found".into())),
        };
        Ok(result.unwrap_or_else(|Failure(status, message)| reply(status, message)))
    }

    async fn status(&self) -> crate::Result<Status> {
        let document = self.cluster.document();
        let membership = crate::membership::membership_of(&document);
        let answers =
            futures::future::join_all(membership.volumes.iter().map(|volume| self.volumes.stats(&volume.url))).await;
        let mut volumes = Vec::with_capacity(membership.volumes.len());
        for (volume, stats) in membership.volumes.iter().zip(answers) {
            let stats = stats.ok();
            volumes.push(VolumeStatus {
                id: volume.id.clone(),
                url: volume.url.clone(),
                weight: volume.weight,
                zone: volume.zone.clone(),
                healthy: stats.is_some(),
                free_bytes: stats
                    .as_ref()
                    .map(|s| s.subvolumes.iter().map(|sv| sv.free_bytes).collect())
                    .unwrap_or_default(),
                total_bytes: stats.map(|s| s.subvolumes.iter().map(|sv| sv.total_bytes).collect()).unwrap_or_default(),
            });
        }
        let index = &self.index;
        let bucket_usage = index.bucket_usage().await?;
        let (objects, bytes) =
            bucket_usage.values().fold((0, 0), |(count, bytes), usage| (count + usage.objects, bytes + usage.bytes));
        let (gc_queue, gc_queue_bytes) = index.gc_queue_totals().await?;
        let repair_queue = index.repair_queue_len().await?;
        let gateways = index.gateways().await?;
        let jobs = Jobs {
            gc: self.gc.read().await?,
            verify: self.verify.read().await?,
            rebalance: self.rebalance.read().await?,
            lifecycle: self.lifecycle.read().await?,
        };
        Ok(Status {
            cluster_id: document.cluster_id,
            membership_epoch: document.epoch,
            removed: membership.removed,
            volumes,
            buckets: bucket_usage.len() as u64,
            bucket_usage,
            objects,
            bytes,
            gc_queue,
            gc_queue_bytes,
            repair_queue,
            jobs,
            gateways,
        })
    }
}

pub(crate) fn reply(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response
}

pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec_pretty(value) {
        Ok(bytes) => {
            let mut response = Response::new(Full::new(Bytes::from(bytes)));
            *response.status_mut() = status;
            response.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
            response
        }
        Err(err) => reply(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    }
}
