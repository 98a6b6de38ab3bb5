//! HTTP client for the volume daemons: pooled keep-alive connections with TCP_NODELAY.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use reqwest::StatusCode;
use volumed::http::{META_HEADER, SHA256_HEADER, SIZE_HEADER};
use volumed::{VolumeStats, WriteReceipt};

use crate::error::{Error, Result};

/// A byte stream read from a volume.
pub type ByteStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// Talks to volume daemons on behalf of the gateway.
#[derive(Debug, Clone)]
pub struct VolumeClient {
    http: reqwest::Client,
    auth: String,
}

impl VolumeClient {
    /// A client presenting `cluster_secret` to every volume.
    pub fn new(cluster_secret: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .connect_timeout(Duration::from_secs(3))
            .http1_only()
            .build()
            .map_err(|e| Error::Config(format!("volume client: {e}")))?;
        Ok(Self { http, auth: format!("Bearer {cluster_secret}") })
    }

    fn blob_url(base: &str, subvolume: u32, id: &str) -> String {
        format!("{}/blob/{subvolume}/{id}", base.trim_end_matches('/'))
    }

    /// Streams `body` into blob `id` on one volume and returns what the volume wrote.
    pub async fn put(
        &self,
        base: &str,
        subvolume: u32,
        id: &str,
        meta: &[u8],
        size: Option<u64>,
        body: reqwest::Body,
    ) -> Result<WriteReceipt> {
        let mut request = self
            .http
            .put(Self::blob_url(base, subvolume, id))
            .header(reqwest::header::AUTHORIZATION, &self.auth)
            .header(META_HEADER, base64::engine::general_purpose::STANDARD.encode(meta))
            .body(body);
        if let Some(size) = size {
            request = request.header(SIZE_HEADER, size);
        }
        let response = request.send().await.map_err(|e| Error::Volume(format!("PUT {base}: {e}")))?;
        let response = check(response, base).await?;
        response.json().await.map_err(|e| Error::Volume(format!("PUT {base}: bad receipt: {e}")))
    }

    /// Opens `[start, end)` of a blob (the whole blob when `range` is `None`).
    pub async fn get(&self, base: &str, subvolume: u32, id: &str, range: Option<(u64, u64)>) -> Result<ByteStream> {
        let mut request =
            self.http.get(Self::blob_url(base, subvolume, id)).header(reqwest::header::AUTHORIZATION, &self.auth);
        if let Some((start, end)) = range {
            if end <= start {
                return Ok(Box::pin(futures::stream::empty()));
            }
            request = request.header(reqwest::header::RANGE, format!("bytes={start}-{}", end - 1));
        }
        let response = request.send().await.map_err(|e| Error::Volume(format!("GET {base}: {e}")))?;
        let response = check(response, base).await?;
        let base = base.to_string();
        Ok(Box::pin(response.bytes_stream().map_err(move |e| Error::Volume(format!("GET {base}: {e}")))))
    }

    /// Copies blob `id` from one volume to another (same id, same metadata), volume to volume
    /// through this client; returns what the target wrote, which the caller checks.
    pub async fn copy(
        &self,
        from: &str,
        from_subvolume: u32,
        to: &str,
        to_subvolume: u32,
        id: &str,
    ) -> Result<WriteReceipt> {
        let head = self
            .head(from, from_subvolume, id)
            .await?
            .ok_or_else(|| Error::Volume(format!("blob {id} is not on {from}")))?;
        let stream = self.get(from, from_subvolume, id, None).await?;
        let receipt =
            self.put(to, to_subvolume, id, &head.meta, Some(head.size), reqwest::Body::wrap_stream(stream)).await?;
        if receipt.sha256 != head.sha256 {
            return Err(Error::Volume(format!("copy of {id} to {to} does not match its source")));
        }
        Ok(receipt)
    }

    /// What a volume knows of a blob without reading it, or `None` if it does not have it.
    pub async fn head(&self, base: &str, subvolume: u32, id: &str) -> Result<Option<BlobHead>> {
        let response = self
            .http
            .head(Self::blob_url(base, subvolume, id))
            .header(reqwest::header::AUTHORIZATION, &self.auth)
            .send()
            .await
            .map_err(|e| Error::Volume(format!("HEAD {base}: {e}")))?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = check(response, base).await?;
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let meta = header(META_HEADER)
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .ok_or_else(|| Error::Volume(format!("HEAD {base}: no metadata")))?;
        let sha256 = header(SHA256_HEADER).ok_or_else(|| Error::Volume(format!("HEAD {base}: no sha256")))?;
        let size = header(SIZE_HEADER)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::Volume(format!("HEAD {base}: no size")))?;
        Ok(Some(BlobHead { meta, sha256, size }))
    }

    /// Deletes a blob; a blob that is already gone counts as deleted.
    pub async fn delete(&self, base: &str, subvolume: u32, id: &str) -> Result<()> {
        let response = self
            .http
            .delete(Self::blob_url(base, subvolume, id))
            .header(reqwest::header::AUTHORIZATION, &self.auth)
            .send()
            .await
            .map_err(|e| Error::Volume(format!("DELETE {base}: {e}")))?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        check(response, base).await.map(drop)
    }

    /// One page of the blobs of a subvolume, in id order after `after`; and the id to
    /// continue after, if there are more.
    pub async fn list(
        &self,
        base: &str,
        subvolume: u32,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<ListedBlob>, Option<String>)> {
        let mut url = format!("{}/list/{subvolume}?limit={limit}", base.trim_end_matches('/'));
        if let Some(after) = after {
            url.push_str("&after=");
            url.push_str(after);
        }
        let response = self
            .http
            .get(&url)
            .header(reqwest::header::AUTHORIZATION, &self.auth)
            .send()
            .await
            .map_err(|e| Error::Unavailable(format!("{base}: {e}")))?;
        let page: ListPage = check(response, base)
            .await?
            .json()
            .await
            .map_err(|e| Error::Volume(format!("{base}: bad listing: {e}")))?;
        Ok((page.blobs, page.next))
    }

    /// The volume's id and space per subvolume.
    pub async fn stats(&self, base: &str) -> Result<VolumeStats> {
        let response = self
            .http
            .get(format!("{}/stats", base.trim_end_matches('/')))
            .header(reqwest::header::AUTHORIZATION, &self.auth)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| Error::Unavailable(format!("{base}: {e}")))?;
        let response = check(response, base).await?;
        response.json().await.map_err(|e| Error::Volume(format!("{base}: bad stats: {e}")))
    }
}

/// A blob's metadata and footer facts, from a HEAD.
#[derive(Debug, Clone)]
pub struct BlobHead {
    /// The gateway's metadata.
    pub meta: Vec<u8>,
    /// SHA-256 of the data as the volume wrote it, hex.
    pub sha256: String,
    /// Data bytes.
    pub size: u64,
}

/// A blob as a volume lists it: its footer facts and the gateway's metadata.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ListedBlob {
    /// Blob id.
    pub id: String,
    /// Data bytes.
    pub data_len: u64,
    /// SHA-256 of the data, hex.
    pub sha256: String,
    /// MD5 of the data, hex.
    pub md5: String,
    /// When the volume wrote it, unix milliseconds.
    pub written_at_ms: u64,
    /// The metadata the gateway wrote with it.
    pub meta: serde_json::Value,
}

#[derive(Debug, serde::Deserialize)]
struct ListPage {
    blobs: Vec<ListedBlob>,
    next: Option<String>,
}

async fn check(response: reqwest::Response, base: &str) -> Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    // The volume's corrupt-blob contract (see `volumed::http`): 422 *and* the marker header,
    // so no other 422 is ever taken for a corrupt replica.
    let corrupt = status == StatusCode::UNPROCESSABLE_ENTITY
        && response
            .headers()
            .get(volumed::http::ERROR_HEADER)
            .is_some_and(|value| value.as_bytes() == volumed::http::CORRUPT.as_bytes());
    let text = response.text().await.unwrap_or_default();
    if corrupt {
        return Err(Error::CorruptReplica(format!("{base}: {}", text.trim())));
    }
    Err(Error::Volume(format!("{base} answered {status}: {}", text.trim())))
}
