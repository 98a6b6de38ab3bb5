//! Wiring: open the index, join the cluster, and serve S3 and the admin API until shutdown.

use std::sync::Arc;

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
use crate::request_id::{Access, RequestContext};
use crate::s3::Gateway;
use crate::volume_client::VolumeClient;

/// Runs the gateway on the given listeners until `shutdown` is cancelled.
pub async fn run(
    settings: Settings,
    s3_listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<()> {
    // Before any listener answers, so no SIGHUP can find the default action (ending the process).
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    // A certificate that does not load stops the start before anything else is touched.
    let tls = match &settings.tls {
        Some(files) => {
            Some(Arc::new(volumed::tls::ReloadableTls::load(&files.cert, &files.key).map_err(crate::Error::Config)?))
        }
        None => None,
    };
    let engine = crate::engine::open(&settings.index).await?;
    tracing::info!(index = ?settings.index, "index open");
    let index = Arc::new(Index::with_engine(engine).await?);
    index.set_replica_target(settings.replicas);
    let volumes = VolumeClient::with_timeouts(&settings.cluster_secret, settings.timeouts)?;
    // Asking the volumes who they are takes up to the answer timeout when one is frozen: a
    // signal meanwhile stops the gateway at once.
    let (cluster, unjoined) = tokio::select! {
        joined = Cluster::join(&index, &volumes, &settings.volumes) => joined?,
        () = shutdown.cancelled() => {
            tracing::info!("shutdown complete (before joining the cluster)");
            return Ok(());
        }
    };
    tracing::info!(
        volumes = cluster.membership().volumes.len(),
        replicas = settings.replicas,
        write_quorum = settings.write_quorum,
        "cluster joined"
    );
    let instance_id = hex::encode(rand::random::<[u8; 8]>());
    let admin_address = admin_listener.local_addr().map_or_else(|_| settings.admin_listen.clone(), |a| a.to_string());
    let in_flight = if index.engine().shared() {
        crate::in_flight::InFlight::shared(index.clone(), instance_id.clone())
    } else {
        crate::in_flight::InFlight::default()
    };
    let presence = crate::gateways::Presence {
        index: index.clone(),
        record: crate::index::GatewayRecord {
            id: instance_id.clone(),
            s3_address: settings.listen.clone(),
            admin_address: admin_address.clone(),
            started_ms: crate::time::now_ms(),
            beats: 0,
            beat_ms: crate::time::now_ms(),
        },
        cluster: cluster.clone(),
        in_flight: in_flight.clone(),
    };
    presence.register().await?;
    // The same id owns its cluster-wide jobs (see `admin::jobs`); alone on an embedded index,
    // whose directory lock admits one process.
    let instance =
        crate::admin::jobs::Instance { id: instance_id, address: admin_address, sole: !index.engine().shared() };
    let repair_lease = crate::admin::jobs::RepairLease::default();
    let (damage, damage_inbox) = crate::repair::damage_channel();
    let gateway_name = crate::membership::gateway_name(cluster.id());
    let background = [
        tokio::spawn(presence.clone().run(shutdown.clone())),
        tokio::spawn(cluster.clone().keep_joining(index.clone(), volumes.clone(), unjoined, shutdown.clone())),
        tokio::spawn(crate::health::probe(cluster.clone(), volumes.clone(), gateway_name.clone(), shutdown.clone())),
        tokio::spawn(crate::membership::push(cluster.clone(), volumes.clone(), shutdown.clone())),
        tokio::spawn(
            crate::repair::Repairer {
                index: index.clone(),
                cluster: cluster.clone(),
                volumes: volumes.clone(),
                in_flight: in_flight.clone(),
                lease: repair_lease.clone(),
            }
            .run(damage_inbox, shutdown.clone()),
        ),
    ];

    let gateway = Gateway {
        index: index.clone(),
        cluster: cluster.clone(),
        volumes: volumes.clone(),
        replicas: settings.replicas,
        write_quorum: settings.write_quorum,
        region: settings.region.clone(),
        in_flight: in_flight.clone(),
        damage,
    };
    let mut builder = S3ServiceBuilder::new(gateway.clone());
    builder.set_auth(KeyStore::new(settings.access_key.clone(), settings.secret_key.clone(), index.clone()));
    builder.set_access(AccessPolicy::new(settings.access_key.clone(), index.clone()).with_sigv2(settings.sigv2));
    if let Some(domain) = &settings.domain {
        builder.set_host(VirtualHosts { domain: domain.clone() });
    }
    builder.set_config(crate::guard::s3_config());
    let s3 = builder.build();
    let front = Arc::new(Front {
        index: index.clone(),
        gateway: gateway.clone(),
        domain: settings.domain.clone(),
        post: crate::s3::PostAuth {
            root_access_key: settings.access_key.clone(),
            root_secret_key: settings.secret_key.clone(),
            sigv2: settings.sigv2,
        },
    });
    let s3 = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let request_id = hex::encode(rand::random::<[u8; 8]>()).to_uppercase();
        let span =
            // At ERROR so the span is on whatever the filter lets through (see `volumed::http`).
            tracing::error_span!("s3", request_id = %request_id, method = %req.method(), path = %req.uri().path());
        let s3 = s3.clone();
        let close_after = expects_continue_without_body(&req);
        let started = std::time::Instant::now();
        let bytes_in = content_length(req.headers());
        let front = front.clone();
        async move {
            let _in_flight = InFlightRequest::start();
            let context = RequestContext::new(request_id.clone());
            let served = front.serve(&s3, req);
            let mut response = crate::request_id::scope(context.clone(), served).await?;
            let error = crate::error::complete_message(&mut response);
            log_access(&context.access(), response.status(), error.as_ref(), bytes_in, &response, started);
            count_request(&context.access(), response.status(), bytes_in, &response, started);
            if let Ok(value) = http::HeaderValue::from_str(&request_id) {
                response.headers_mut().insert("x-amz-request-id", value);
            }
            if close_after {
                response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
            }
            Ok::<_, s3s::HttpError>(response)
        }
        .instrument(span)
    });

    let admin = Arc::new(
        AdminApi::new(
            index.clone(),
            cluster.clone(),
            volumes.clone(),
            in_flight,
            settings.admin_token.clone(),
            settings.replicas,
        )
        .with_upload_ttl(settings.upload_ttl)
        .with_lifecycle(gateway.clone(), settings.lifecycle_day)
        .with_write_quorum(settings.write_quorum)
        .with_instance(instance, repair_lease),
    );
    let job_watcher = tokio::spawn(admin.clone().watch_jobs(shutdown.clone()));
    let lifecycle_scheduler = tokio::spawn(admin.clone().schedule_lifecycle(shutdown.clone()));
    let admin = hyper::service::service_fn(move |req| admin.clone().handle(req));
    let admin_shutdown = shutdown.clone();
    tracing::info!(addr = ?admin_listener.local_addr().ok(), "admin API serving");
    let admin_task =
        tokio::spawn(volumed::serve::serve(admin_listener, admin, async move { admin_shutdown.cancelled().await }));

    let reloader = tokio::spawn(reload_on_sighup(hangups, tls.clone(), shutdown.clone()));
    match tls {
        Some(tls) => {
            tracing::info!(addr = ?s3_listener.local_addr().ok(), "S3 endpoint serving HTTPS");
            volumed::serve::serve_tls(s3_listener, s3, shutdown.cancelled(), tls).await;
        }
        None => {
            tracing::info!(addr = ?s3_listener.local_addr().ok(), "S3 endpoint serving");
            volumed::serve::serve(s3_listener, s3, shutdown.cancelled()).await;
        }
    }
    let _ = admin_task.await;
    let _ = reloader.await;
    for task in background {
        let _ = task.await;
    }
    let _ = job_watcher.await;
    let _ = lifecycle_scheduler.await;
    // Only now: no probe names the gateway any more.
    crate::membership::leave(&cluster, &volumes, &gateway_name).await;
    presence.leave().await;
    tracing::info!("shutdown complete");
    Ok(())
}

/// The access log: the one line every S3 request gets, at INFO under the target `access`, once
/// the answer's head is ready (the request id, method and path come from the request's span):
/// operation, bucket, key, status, and for an error the code and message the client reads.
/// A client's mistake is reported here only (s3s's own reports of it are dropped, see
/// `logging.rs`); an internal failure's cause was logged at ERROR where it happened
/// (`error.rs`). Bucket and key are quoted (a key may hold any character); the access key id
/// is named, never a secret or a signature. `bytes_out` is the answer's length as announced.
fn log_access(
    access: &Access,
    status: http::StatusCode,
    error: Option<&crate::error::WireError>,
    bytes_in: Option<u64>,
    response: &http::Response<s3s::Body>,
    started: std::time::Instant,
) {
    let op = access.op.as_deref().unwrap_or("-");
    let access_key = access.access_key.as_deref().unwrap_or("-");
    let bytes_out = content_length(response.headers());
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let (code, message) = error.map_or(("", ""), |e| (e.code.as_str(), e.message.as_str()));
    tracing::info!(
        target: "access",
        op = %op,
        bucket = ?access.bucket.as_deref().unwrap_or(""),
        key = ?access.key.as_deref().unwrap_or(""),
        status = status.as_u16(),
        code = %code,
        error_message = ?message,
        bytes_in = bytes_in.unwrap_or(0),
        bytes_out = bytes_out.unwrap_or(0),
        ms = format_args!("{ms:.1}"),
        access_key = %access_key,
        "request"
    );
}

/// Reads the TLS certificate and key files again on every SIGHUP until `shutdown`, so a
/// renewed certificate is served to new connections without a restart; one that does not load
/// is logged and the previous one stays. Without TLS a SIGHUP only says there is nothing to
/// reload (rather than ending the process, SIGHUP's default), so `systemctl reload` is safe.
async fn reload_on_sighup(
    hangups: std::io::Result<tokio::signal::unix::Signal>,
    tls: Option<Arc<volumed::tls::ReloadableTls>>,
    shutdown: CancellationToken,
) {
    let mut hangups = match hangups {
        Ok(signal) => signal,
        Err(err) => {
            tracing::warn!(%err, "no SIGHUP handler: the TLS certificate is reloaded only by a restart");
            return;
        }
    };
    loop {
        tokio::select! {
            received = hangups.recv() => {
                if received.is_none() {
                    return;
                }
                let Some(tls) = tls.clone() else {
                    tracing::info!("SIGHUP: nothing to reload (no TLS)");
                    continue;
                };
                // Reading the files is blocking work: off the async workers.
                match tokio::task::spawn_blocking(move || tls.reload()).await {
                    Ok(Ok(())) => tracing::info!("TLS certificate reloaded"),
                    Ok(Err(err)) => tracing::error!(%err, "TLS certificate not reloaded; the previous one stays"),
                    Err(err) => tracing::error!(%err, "TLS certificate reload failed; the previous one stays"),
                }
            }
            () = shutdown.cancelled() => return,
        }
    }
}

/// The metrics of one S3 request, as its access log line has them: requests by operation and
/// status, time to the answer's head by operation, bytes in and out (as announced).
fn count_request(
    access: &Access,
    status: http::StatusCode,
    bytes_in: Option<u64>,
    response: &http::Response<s3s::Body>,
    started: std::time::Instant,
) {
    let op = access.op.clone().unwrap_or_else(|| "-".into());
    let status = status.as_u16().to_string();
    metrics::counter!("cairn_s3_requests_total", "op" => op.clone(), "status" => status).increment(1);
    metrics::histogram!("cairn_s3_request_duration_seconds", "op" => op).record(started.elapsed().as_secs_f64());
    metrics::counter!("cairn_s3_received_bytes_total").increment(bytes_in.unwrap_or(0));
    metrics::counter!("cairn_s3_sent_bytes_total").increment(content_length(response.headers()).unwrap_or(0));
}

/// Counts an S3 request in `cairn_s3_requests_in_flight` while it lives (until its answer's
/// head is ready, or the client goes away).
struct InFlightRequest;

impl InFlightRequest {
    fn start() -> Self {
        metrics::gauge!("cairn_s3_requests_in_flight").increment(1.0);
        Self
    }
}

impl Drop for InFlightRequest {
    fn drop(&mut self) {
        metrics::gauge!("cairn_s3_requests_in_flight").decrement(1.0);
    }
}

/// What the S3 listener does around s3s: CORS (see `cors.rs`) and form uploads
/// (`s3/post.rs`).
#[derive(Debug)]
struct Front {
    index: Arc<Index>,
    gateway: Gateway,
    domain: Option<String>,
    post: crate::s3::PostAuth,
}

impl Front {
    /// Serves one S3 request: a CORS preflight is answered from the bucket's rules; a form
    /// upload to a bucket goes to `s3::serve_post_object`, anything else to s3s; an actual
    /// request with an `Origin` then gets the CORS headers on whatever was answered.
    async fn serve(
        &self,
        s3: &s3s::service::S3Service,
        req: http::Request<hyper::body::Incoming>,
    ) -> std::result::Result<s3s::HttpResponse, s3s::HttpError> {
        let domain = self.domain.as_deref();
        let origin = crate::cors::origin(req.headers());
        let addressed = addressed_bucket(req.headers(), req.uri().path(), domain);
        let bucket = addressed.as_ref().map(|(bucket, _)| bucket.clone());
        if let Some(origin) = &origin
            && crate::cors::is_preflight(req.method(), req.headers())
        {
            crate::request_id::note_access(Access {
                op: Some("PreflightCors".into()),
                bucket: bucket.clone(),
                ..Default::default()
            });
            return Ok(crate::cors::preflight(&self.index, bucket.as_deref(), origin, req.headers()).await);
        }
        let method = req.method().clone();
        // A form upload: a multipart/form-data POST to a bucket's URL (no key).
        let form_upload = method == http::Method::POST && crate::guard::is_form_data(req.headers());
        let mut response = match addressed {
            Some((target, false)) if form_upload => {
                crate::s3::serve_post_object(&self.gateway, &self.post, target, req).await
            }
            _ => crate::guard::serve(s3, req).await?,
        };
        if let (Some(origin), Some(bucket)) = (&origin, &bucket) {
            crate::cors::decorate(&self.index, bucket, origin, &method, &mut response).await;
        }
        Ok(response)
    }
}

/// The bucket a request names — the host's first label under `domain` (virtual-hosted
/// style), else the path's first segment — and whether a key follows it.
pub(crate) fn addressed_bucket(headers: &http::HeaderMap, path: &str, domain: Option<&str>) -> Option<(String, bool)> {
    let path = path.trim_start_matches('/');
    let host = headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    if let Some(bucket) = domain.and_then(|domain| virtual_host_bucket(domain, host)) {
        return Some((bucket.to_string(), !path.is_empty()));
    }
    let (first, rest) = path.split_once('/').unwrap_or((path, ""));
    (!first.is_empty())
        .then(|| (percent_encoding::percent_decode_str(first).decode_utf8_lossy().into_owned(), !rest.is_empty()))
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers.get(http::header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Virtual-host-style addressing under one base domain: `BUCKET.DOMAIN[:port]` names the
/// bucket; any other host (the domain itself, an IP address, localhost) is path style. Unlike
/// s3s's `SingleDomain`, an unknown host is never taken as a bucket name, so clients that
/// connect by IP keep working.
#[derive(Debug)]
struct VirtualHosts {
    domain: String,
}

impl s3s::host::S3Host for VirtualHosts {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> s3s::S3Result<s3s::host::VirtualHost<'a>> {
        Ok(match virtual_host_bucket(&self.domain, host) {
            Some(bucket) => s3s::host::VirtualHost::new(self.domain.as_str()).with_bucket(bucket),
            None => s3s::host::VirtualHost::new(self.domain.as_str()),
        })
    }
}

/// The bucket a `Host` header names under `domain`, if it does.
pub(crate) fn virtual_host_bucket<'a>(domain: &str, host: &'a str) -> Option<&'a str> {
    let name = host.rsplit_once(':').filter(|(_, port)| port.parse::<u16>().is_ok()).map_or(host, |(name, _)| name);
    let bucket = name.strip_suffix(domain)?.strip_suffix('.')?;
    (!bucket.is_empty()).then_some(bucket)
}

/// botocore (aws cli, boto3) sends `Expect: 100-continue` even with an empty body. hyper
/// then answers without the interim `100 Continue`, and botocore misreads the next response
/// on that connection and stalls for its whole read timeout (boto/botocore#3755). Such a
/// connection is closed after its response instead, which costs one reconnect.
fn expects_continue_without_body<B>(req: &http::Request<B>) -> bool {
    let headers = req.headers();
    let expects = headers.get(http::header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    expects && headers.get(http::header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() == b"0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_bucket_in_the_host_or_the_path() {
        let bucket_of = |headers: &http::HeaderMap, path: &str, domain: Option<&str>| {
            addressed_bucket(headers, path, domain).map(|(bucket, _)| bucket)
        };
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::HOST, http::HeaderValue::from_static("photos.s3.example.com:9000"));
        assert_eq!(bucket_of(&headers, "/cat.jpg", Some("s3.example.com")).as_deref(), Some("photos"));
        assert_eq!(bucket_of(&headers, "/b%20x/cat.jpg", None).as_deref(), Some("b x"));
        headers.insert(http::header::HOST, http::HeaderValue::from_static("s3.example.com"));
        assert_eq!(bucket_of(&headers, "/site/index.html", Some("s3.example.com")).as_deref(), Some("site"));
        assert_eq!(bucket_of(&headers, "/", None), None);
        // Whether a key follows: a form upload goes to the bucket's own URL.
        assert_eq!(addressed_bucket(&headers, "/site/", None), Some(("site".into(), false)));
        assert_eq!(addressed_bucket(&headers, "/site/k", None), Some(("site".into(), true)));
        headers.insert(http::header::HOST, http::HeaderValue::from_static("photos.s3.example.com"));
        assert_eq!(addressed_bucket(&headers, "/", Some("s3.example.com")), Some(("photos".into(), false)));
    }

    #[test]
    fn virtual_hosts_name_buckets_only_under_the_domain() {
        assert_eq!(virtual_host_bucket("s3.example", "photos.s3.example:9000"), Some("photos"));
        assert_eq!(virtual_host_bucket("s3.example", "my.dotted.bucket.s3.example"), Some("my.dotted.bucket"));
        assert_eq!(virtual_host_bucket("s3.example", "s3.example:9000"), None);
        assert_eq!(virtual_host_bucket("s3.example", "127.0.0.1:9000"), None);
        assert_eq!(virtual_host_bucket("s3.example", "evils3.example"), None);
    }
}
