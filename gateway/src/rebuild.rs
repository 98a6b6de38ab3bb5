//! Offline rebuild of a lost index from the volumes alone (gateway stopped).
//!
//! Every subvolume is listed; each blob's metadata (written by the gateway) names its
//! bucket, key, kind and write timestamp. Per key the newest timestamp wins: an object or
//! manifest becomes the live record, a tombstone keeps the key deleted, and every losing
//! blob goes to the GC queue. A manifest's body names its part blobs, found by id in the
//! same listing. Buckets are those the blobs name.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use futures::TryStreamExt as _;

use crate::blob_meta::{BlobKind, BlobMeta, Manifest};
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::index::records::{BlobRef, ObjectEntry, ObjectRecord, PartRecord, Replica};
use crate::volume_client::VolumeClient;

/// Blobs per listing page.
const LIST_PAGE: usize = 1000;
/// Largest manifest read (10,000 parts of JSON fit with room to spare).
const MAX_MANIFEST: usize = 16 * 1024 * 1024;

/// What a rebuild found and wrote.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RebuildReport {
    /// Blob replicas listed.
    pub blobs: u64,
    /// Bytes in them.
    pub bytes: u64,
    /// Buckets recreated.
    pub buckets: u64,
    /// Live objects recreated.
    pub objects: u64,
    /// Keys that stay deleted.
    pub tombstones: u64,
    /// Blobs queued for GC (older versions, unreadable metadata is skipped instead).
    pub queued: u64,
    /// Blobs whose metadata could not be read, and manifests missing parts.
    pub skipped: u64,
    /// Blobs no commit log names: written, never committed; left for GC.
    pub uncommitted: u64,
    /// Volumes (or subvolumes) that could not be read, with why: with `partial`, what they
    /// hold is missing from the index.
    pub unreadable: Vec<String>,
    /// Seconds it took.
    pub seconds: f64,
}

/// One blob as found: its metadata and where its copies are.
struct Found {
    meta: BlobMeta,
    size: u64,
    sha256: String,
    md5: String,
    replicas: Vec<Replica>,
}

/// Rebuilds into the empty index directory `db` from the volumes at `urls`; `progress` is
/// called with the report as listing goes on. A volume that cannot be read fails the rebuild
/// (an index rebuilt without it would silently miss its objects) unless `partial`, when it
/// is left out and named in the report.
pub async fn rebuild(
    db: &Path,
    urls: &[String],
    cluster_secret: &str,
    partial: bool,
    mut progress: impl FnMut(&RebuildReport),
) -> Result<RebuildReport> {
    let started = std::time::Instant::now();
    if db.exists() && std::fs::read_dir(db)?.next().is_some() {
        return Err(Error::Config(format!("{} is not empty; rebuild writes a fresh index", db.display())));
    }
    let index = Index::open(db)?;
    let client = VolumeClient::new(cluster_secret)?;
    let (cluster, unjoined) = Cluster::join(&index, &client, urls).await?;
    let mut report = RebuildReport::default();
    let unreadable = |report: &mut RebuildReport, what: String| -> Result<()> {
        if !partial {
            return Err(Error::Unavailable(format!(
                "{what}; a rebuild without it would miss what it holds (rerun with --partial to accept that)"
            )));
        }
        tracing::warn!(%what, "left out of the rebuild");
        report.unreadable.push(what);
        Ok(())
    };
    for url in unjoined {
        unreadable(&mut report, format!("volume {url} did not answer"))?;
    }
    let mut blobs: HashMap<String, Found> = HashMap::new();

    for volume in &cluster.membership().volumes {
        for subvolume in 0..volume.subvolumes {
            let mut after: Option<String> = None;
            loop {
                let (page, next) = match client.list(&volume.url, subvolume, after.as_deref(), LIST_PAGE).await {
                    Ok(listed) => listed,
                    Err(err) => {
                        unreadable(&mut report, format!("volume {} subvolume {subvolume}: {err}", volume.url))?;
                        break;
                    }
                };
                for listed in page {
                    report.blobs += 1;
                    report.bytes += listed.data_len;
                    let replica = Replica { volume: volume.id.clone(), subvolume };
                    if let Some(found) = blobs.get_mut(&listed.id) {
                        found.replicas.push(replica);
                        continue;
                    }
                    match serde_json::from_value::<BlobMeta>(listed.meta) {
                        Ok(meta) => {
                            let found = Found {
                                meta,
                                size: listed.data_len,
                                sha256: listed.sha256,
                                md5: listed.md5,
                                replicas: vec![replica],
                            };
                            blobs.insert(listed.id, found);
                        }
                        Err(err) => {
                            tracing::warn!(blob = %listed.id, %err, "unreadable blob metadata; skipped");
                            report.skipped += 1;
                        }
                    }
                }
                progress(&report);
                match next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
    }

    // Only blobs some volume's commit log names were ever committed; the others reached the
    // volumes but lost a conditional write or a crash took their commit. GC collects them.
    let mut committed: HashSet<String> = HashSet::new();
    for volume in &cluster.membership().volumes {
        for subvolume in 0..volume.subvolumes {
            let mut from = 0;
            loop {
                match client.read_commits(&volume.url, subvolume, from, LIST_PAGE).await {
                    Ok((ids, next)) => {
                        committed.extend(ids);
                        match next {
                            Some(next) => from = next,
                            None => break,
                        }
                    }
                    Err(err) => {
                        unreadable(&mut report, format!("commit log of {} subvolume {subvolume}: {err}", volume.url))?;
                        break;
                    }
                }
            }
        }
    }

    // Newest committed version per key; BTreeMap keeps bucket creation and commits in order.
    let mut winners: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut losers: Vec<String> = Vec::new();
    for (id, found) in &blobs {
        if found.meta.kind == BlobKind::Part {
            continue;
        }
        if !committed.contains(id) {
            report.uncommitted += 1;
            continue;
        }
        let slot = (found.meta.bucket.clone(), found.meta.key.clone());
        match winners.get(&slot) {
            Some(current) if blobs[current].meta.ts >= found.meta.ts => losers.push(id.clone()),
            _ => {
                if let Some(previous) = winners.insert(slot, id.clone()) {
                    losers.push(previous);
                }
            }
        }
    }

    let mut max_ts = 0;
    let mut buckets: BTreeMap<String, u64> = BTreeMap::new();
    for ((bucket, key), id) in &winners {
        let found = &blobs[id];
        max_ts = max_ts.max(found.meta.ts);
        let created = buckets.entry(bucket.clone()).or_insert(found.meta.modified_ms);
        *created = (*created).min(found.meta.modified_ms);
        let blob = BlobRef { id: id.clone(), replicas: found.replicas.clone() };
        let entry = match found.meta.kind {
            BlobKind::Tombstone => {
                report.tombstones += 1;
                ObjectEntry::Deleted { ts: found.meta.ts, blob }
            }
            BlobKind::Object => ObjectEntry::Live(Box::new(record(found, blob, found.md5.clone(), found.size, vec![]))),
            BlobKind::Manifest => match manifest_record(&client, &cluster, &blobs, found, blob).await {
                Ok(record) => ObjectEntry::Live(Box::new(record)),
                Err(err) => {
                    tracing::warn!(%bucket, %key, %err, "manifest unusable; object skipped");
                    report.skipped += 1;
                    continue;
                }
            },
            BlobKind::Part => continue,
        };
        if matches!(entry, ObjectEntry::Live(_)) {
            report.objects += 1;
        }
        index.restore_object(bucket, key, &entry)?;
    }
    for (bucket, created_ms) in &buckets {
        index.restore_bucket(bucket, *created_ms)?;
    }
    report.buckets = buckets.len() as u64;
    for id in losers {
        let found = &blobs[&id];
        let blob = BlobRef { id: id.clone(), replicas: found.replicas.clone() };
        index.restore_gc(&found.meta.bucket, &found.meta.key, &blob)?;
        report.queued += 1;
    }
    index.finish_restore(max_ts)?;
    report.seconds = started.elapsed().as_secs_f64();
    progress(&report);
    Ok(report)
}

fn record(found: &Found, blob: BlobRef, etag: String, size: u64, parts: Vec<PartRecord>) -> ObjectRecord {
    let meta = &found.meta;
    ObjectRecord {
        ts: meta.ts,
        modified_ms: meta.modified_ms,
        size,
        etag,
        sha256: if parts.is_empty() { found.sha256.clone() } else { String::new() },
        headers: meta.headers.clone(),
        user_meta: meta.user_meta.clone(),
        tags: meta.tags.clone(),
        checksum: meta.checksum.clone(),
        parts,
        blob,
    }
}

/// Reads a manifest blob and ties its parts to the blobs found.
async fn manifest_record(
    client: &VolumeClient,
    cluster: &Cluster,
    blobs: &HashMap<String, Found>,
    found: &Found,
    blob: BlobRef,
) -> Result<ObjectRecord> {
    let mut body = Vec::new();
    let mut last_error = None;
    for replica in &blob.replicas {
        let Some(url) = cluster.url_of(&replica.volume) else { continue };
        match client.get(&url, replica.subvolume, &blob.id, None).await {
            Ok(stream) => match stream
                .try_fold(Vec::new(), |mut acc, chunk| async move {
                    acc.extend_from_slice(&chunk);
                    Ok(acc)
                })
                .await
            {
                Ok(bytes) if bytes.len() <= MAX_MANIFEST => {
                    body = bytes;
                    last_error = None;
                    break;
                }
                Ok(_) => last_error = Some(Error::Volume("manifest too large".into())),
                Err(err) => last_error = Some(err),
            },
            Err(err) => last_error = Some(err),
        }
    }
    if let Some(err) = last_error {
        return Err(err);
    }
    let manifest: Manifest =
        serde_json::from_slice(&body).map_err(|e| Error::Volume(format!("manifest {}: {e}", blob.id)))?;
    let mut parts = Vec::with_capacity(manifest.parts.len());
    for part in manifest.parts {
        let found_part =
            blobs.get(&part.blob).ok_or_else(|| Error::Volume(format!("part blob {} is missing", part.blob)))?;
        parts.push(PartRecord {
            number: part.number,
            size: part.size,
            etag: part.etag,
            sha256: part.sha256,
            checksum: part.checksum,
            modified_ms: found_part.meta.modified_ms,
            blob: BlobRef { id: part.blob, replicas: found_part.replicas.clone() },
        });
    }
    let size = parts.iter().map(|p| p.size).sum();
    let etag = found.meta.etag.clone().ok_or_else(|| Error::Volume(format!("manifest {} has no ETag", blob.id)))?;
    Ok(record(found, blob, etag, size, parts))
}
