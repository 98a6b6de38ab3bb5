//! Offline rebuild of a lost index from the volumes alone (gateway stopped).
//!
//! First the membership: every volume keeps the membership the gateway last pushed to it
//! ([`volumed::membership`]). The newest copy names every member volume with its weight and
//! zone, the removed ones, the cluster id and the epoch; all of it is restored. A member that
//! was not given (or does not answer) fails the rebuild unless `partial`, volumes of another
//! cluster fail it always, and so does a volume a gateway used in the last [`GATEWAY_QUIET`]:
//! a running gateway would neither serve from the new index nor stop changing the volumes.
//!
//! Then the data: every subvolume is listed; each blob's metadata (written by the gateway) names its
//! bucket, key, kind and write timestamp. Per key the newest timestamp wins: an object or
//! manifest becomes the live record, a tombstone keeps the key deleted, and every losing
//! blob goes to the GC queue. A manifest's body names its part blobs, found by id in the
//! same listing. A live version takes the tags of the newest tags blob naming it. Buckets
//! come from bucket blobs: a bucket exists if a creation is newer than its newest deletion
//! (see [`bucket_entry`] for buckets that objects name). Access keys are not on the volumes.
//!
//! Memory does not grow with the number of blobs: what the listings and commit logs say is
//! written to a scratch RocksDB beside the new index ([`scratch`]), which sorts it by blob id,
//! then by key (each key's versions oldest first), tags by version and bucket blobs by bucket;
//! each of those is then walked a page at a time.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use futures::TryStreamExt as _;
use volumed::membership::Document;

use crate::blob_meta::{BlobKind, BlobMeta, Manifest};
use crate::error::{Error, Result};
use crate::index::Index;
use crate::index::Restore;
use crate::index::records::{
    BlobRef, BucketEntry, BucketRecord, CommitOrder, Membership, ObjectEntry, ObjectRecord, PartRecord, Replica,
    TagsBlob, Version, VolumeRecord,
};
use crate::volume_client::{Commit, ListedBlob, VolumeClient};

mod scratch;
use scratch::{Scratch, Space, key_of, prefix_of};

/// Blobs per listing page.
const LIST_PAGE: usize = 1000;
/// Largest manifest read (10,000 parts of JSON fit with room to spare).
const MAX_MANIFEST: usize = 16 * 1024 * 1024;
/// A volume that a gateway probed more recently than this is taken to be in use: five of the
/// gateway's one-second probes. A gateway that stops cleanly says goodbye and holds nothing
/// up; one that was killed holds a rebuild up this long.
pub const GATEWAY_QUIET: Duration = Duration::from_secs(5);

/// What a rebuild found and wrote.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RebuildReport {
    /// The cluster id restored (from the volumes' membership; a new one if none had any).
    pub cluster_id: String,
    /// The membership epoch restored.
    pub epoch: u64,
    /// Member volumes restored, with their weights and zones.
    pub volumes: u64,
    /// Volumes removed from the cluster, remembered as such.
    pub removed: u64,
    /// Member volumes that were not read (not given, or not answering): with `partial`, what
    /// they hold is missing from the index. They stay members.
    pub missing_volumes: Vec<MissingVolume>,
    /// Blob replicas listed.
    pub blobs: u64,
    /// Bytes in them.
    pub bytes: u64,
    /// Buckets recreated.
    pub buckets: u64,
    /// Deleted buckets whose deletion is kept (until GC has deleted their older bucket
    /// blobs).
    pub deleted_buckets: u64,
    /// Buckets recreated only because live objects name them, although no bucket blob
    /// restores them (see [`rebuild`]): worth a look.
    pub buckets_from_objects: Vec<String>,
    /// Objects whose tags, changed after the write, came back from a tags blob.
    pub tags: u64,
    /// Live objects recreated.
    pub objects: u64,
    /// Noncurrent versions restored (of buckets that had versioning).
    #[serde(default)]
    pub noncurrent_versions: u64,
    /// Keys that stay deleted.
    pub tombstones: u64,
    /// Versions deleted by id whose deletion is kept (until GC has deleted the version).
    #[serde(default)]
    pub removals: u64,
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

/// A member volume a rebuild did not read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MissingVolume {
    /// Its id.
    pub id: String,
    /// Where the gateway last reached it.
    pub url: String,
    /// Why it was not read.
    pub why: String,
}

impl std::fmt::Display for MissingVolume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "volume {} (last at {}) {}", self.id, self.url, self.why)
    }
}

/// One blob as found: its metadata and where its copies are.
#[derive(serde::Serialize, serde::Deserialize)]
struct Found {
    meta: BlobMeta,
    size: u64,
    sha256: String,
    md5: String,
    replicas: Vec<Replica>,
}

impl Found {
    fn blob_ref(&self, id: &str) -> BlobRef {
        BlobRef { id: id.to_string(), replicas: self.replicas.clone() }
    }
}

/// What one given volume said of itself.
struct Answer {
    url: String,
    stats: volumed::VolumeStats,
    document: Option<Document>,
}

/// The membership to restore, as the given volumes tell it.
#[derive(Debug, PartialEq)]
struct Survey {
    /// The volumes to read (URL as given, subvolume count from their `/stats`).
    readable: Vec<VolumeRecord>,
    /// The cluster id, if any volume holds a membership.
    cluster_id: Option<String>,
    /// Every member, with weights and zones, and the removed ids.
    membership: Membership,
    epoch: u64,
    /// Members not among the readable volumes.
    missing: Vec<MissingVolume>,
    /// Given URLs that did not answer (and are no member's last URL), with why.
    unanswered: Vec<String>,
}

/// Asks every volume at `urls` for its id and the membership it holds, and refuses to go on
/// when they belong to different clusters or while a gateway uses them.
async fn survey(client: &VolumeClient, urls: &[String]) -> Result<Survey> {
    let asked = futures::future::join_all(urls.iter().map(|url| async move {
        let stats = client.stats(url).await?;
        let document = client.membership(url).await?;
        Ok::<_, Error>(Answer { url: url.clone(), stats, document })
    }))
    .await;
    let mut answers = Vec::new();
    let mut unanswered = Vec::new();
    for (url, answer) in urls.iter().zip(asked) {
        match answer {
            Ok(answer) => answers.push(answer),
            Err(err) => unanswered.push((url.clone(), err.to_string())),
        }
    }
    let in_use: Vec<(String, String)> = answers
        .iter()
        .filter_map(|a| {
            let ago = Duration::from_millis(a.stats.gateway_seen_ms_ago?);
            let what = format!("volume {} at {} ({} ms ago)", a.stats.volume_id, a.url, ago.as_millis());
            (ago < GATEWAY_QUIET).then(|| (a.stats.volume_id.clone(), what))
        })
        .collect();
    let survey = plan(answers, unanswered)?;
    // A running gateway probes every member each second. A removed volume is probed no more,
    // and gets no goodbye either: it may have heard from the gateway just before its removal.
    let in_use: Vec<String> =
        in_use.into_iter().filter(|(id, _)| !survey.membership.removed.contains(id)).map(|(_, what)| what).collect();
    if !in_use.is_empty() {
        return Err(Error::Config(format!(
            "a gateway is using the volumes: {}; stop the gateway first (a rebuild writes a new index offline; a gateway that was killed rather than stopped holds it up for {} s)",
            in_use.join(", "),
            GATEWAY_QUIET.as_secs()
        )));
    }
    Ok(survey)
}

/// The membership to restore from what the volumes answered (see [`survey`]).
fn plan(answers: Vec<Answer>, unanswered: Vec<(String, String)>) -> Result<Survey> {
    // The cluster most volumes name (the newest epoch breaks a tie); volumes of any other are
    // refused by name.
    let mut clusters: HashMap<&str, (usize, u64)> = HashMap::new();
    for document in answers.iter().filter_map(|a| a.document.as_ref()) {
        let entry = clusters.entry(&document.cluster_id).or_default();
        entry.0 += 1;
        entry.1 = entry.1.max(document.epoch);
    }
    let cluster_id = clusters.iter().max_by_key(|(id, count)| (**count, *id)).map(|(id, _)| id.to_string());
    let foreign: Vec<String> = answers
        .iter()
        .filter_map(|a| {
            let document = a.document.as_ref()?;
            (Some(&document.cluster_id) != cluster_id.as_ref()).then(|| {
                format!("volume {} at {} belongs to cluster {}", a.stats.volume_id, a.url, document.cluster_id)
            })
        })
        .collect();
    if let (Some(ours), false) = (&cluster_id, foreign.is_empty()) {
        return Err(Error::Config(format!(
            "{}, not to cluster {ours} like the others; leave it out of --volumes",
            foreign.join("; ")
        )));
    }
    let newest = answers.iter().filter_map(|a| a.document.as_ref()).max_by_key(|d| d.epoch);
    let mut membership = newest.map(crate::membership::membership_of).unwrap_or_default();
    let mut readable: Vec<VolumeRecord> = Vec::new();
    for answer in &answers {
        let id = &answer.stats.volume_id;
        if membership.removed.contains(id) {
            tracing::warn!(url = %answer.url, volume_id = %id, "volume was removed from the cluster; not read");
            continue;
        }
        if readable.iter().any(|v| v.id == *id) {
            tracing::warn!(url = %answer.url, volume_id = %id, "volume given twice; read once");
            continue;
        }
        let subvolumes =
            u32::try_from(answer.stats.subvolumes.len()).map_err(|_| Error::Config("too many subvolumes".into()))?;
        let volume = match membership.volumes.iter_mut().find(|v| v.id == *id) {
            Some(member) => {
                member.url = answer.url.clone();
                member.subvolumes = subvolumes;
                member.clone()
            }
            None => {
                let volume =
                    VolumeRecord { id: id.clone(), url: answer.url.clone(), weight: 1.0, zone: None, subvolumes };
                membership.volumes.push(volume.clone());
                volume
            }
        };
        readable.push(volume);
    }
    let mut missing = Vec::new();
    let mut unanswered: BTreeMap<String, String> = unanswered.into_iter().collect();
    for member in membership.volumes.iter().filter(|m| !readable.iter().any(|v| v.id == m.id)) {
        let why = match unanswered.remove(&member.url) {
            Some(err) => format!("did not answer: {err}"),
            None => "is a member of the cluster but was not among the volumes given".to_string(),
        };
        missing.push(MissingVolume { id: member.id.clone(), url: member.url.clone(), why });
    }
    // The epoch the volumes hold, or the next one if the rebuilt membership differs from it
    // (new URLs, volumes that were not members yet), so that the volumes take it.
    let epoch = match newest {
        Some(document) if crate::membership::membership_of(document) == membership => document.epoch,
        Some(document) => document.epoch + 1,
        None => 1,
    };
    let unanswered = unanswered.into_iter().map(|(url, err)| format!("volume {url} did not answer: {err}")).collect();
    Ok(Survey { readable, cluster_id, membership, epoch, missing, unanswered })
}

/// Rebuilds into the empty index directory `db` from the volumes at `urls`; `progress` is
/// called with the report as listing goes on. A member volume that is not given or cannot
/// be read fails the rebuild (an index rebuilt without it would silently miss its objects)
/// unless `partial`, when it is left out and named in the report. Volumes of another cluster
/// and volumes a gateway still uses fail it in any case.
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
    let client = VolumeClient::new(cluster_secret)?;
    let survey = survey(&client, urls).await?;
    let left_out: Vec<String> =
        survey.missing.iter().map(ToString::to_string).chain(survey.unanswered.iter().cloned()).collect();
    if !left_out.is_empty() && !partial {
        return Err(Error::Unavailable(format!(
            "{}; a rebuild without them would miss what they hold (give every volume, or rerun with --partial to accept that)",
            left_out.join("; ")
        )));
    }
    for what in &left_out {
        tracing::warn!(%what, "left out of the rebuild");
    }
    let index = Index::open(db).await?;
    let mut restore = index.restore();
    let mut report = RebuildReport {
        cluster_id: match &survey.cluster_id {
            Some(id) => id.clone(),
            None => index.cluster_id().await?,
        },
        epoch: survey.epoch,
        volumes: survey.membership.volumes.len() as u64,
        removed: survey.membership.removed.len() as u64,
        missing_volumes: survey.missing.clone(),
        unreadable: survey.unanswered.clone(),
        ..RebuildReport::default()
    };
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
    let urls_by_id: HashMap<String, String> = survey.readable.iter().map(|v| (v.id.clone(), v.url.clone())).collect();
    let scratch = Scratch::create(db)?;
    // The clock must pass every timestamp found, not only the winners': new tag changes and
    // bucket operations are ordered against restored ones.
    let mut max_ts = 0;

    for volume in &survey.readable {
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
                let replica = Replica { volume: volume.id.clone(), subvolume };
                max_ts = max_ts.max(record_listed(&scratch, &mut report, &replica, page).await?);
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
    // Each keeps the highest commit order any log gives it.
    for volume in &survey.readable {
        for subvolume in 0..volume.subvolumes {
            let mut from = 0;
            loop {
                match client.read_commits(&volume.url, subvolume, from, LIST_PAGE).await {
                    Ok((commits, next)) => {
                        max_ts = max_ts.max(record_commits(&scratch, commits).await?);
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

    file_committed(&scratch, &mut restore, &mut report).await?;
    let context = Manifests { client: &client, urls_by_id: &urls_by_id, scratch: &scratch };
    let with_objects = restore_objects(&context, &mut restore, &mut report).await?;
    restore_buckets(&scratch, with_objects, &mut restore, &mut report).await?;
    restore.membership(&report.cluster_id, &survey.membership, survey.epoch).await?;
    restore.finish(max_ts).await?;
    report.seconds = started.elapsed().as_secs_f64();
    progress(&report);
    Ok(report)
}

fn decode_found(bytes: &[u8]) -> Result<Found> {
    serde_json::from_slice(bytes).map_err(|e| Error::Index(format!("rebuild scratch: {e}")))
}

fn encode_found(found: &Found) -> Result<Vec<u8>> {
    serde_json::to_vec(found).map_err(|e| Error::Index(format!("rebuild scratch: {e}")))
}

/// The blobs stored under `ids` in the scratch space, in order; an id not there is an error
/// (every key of the other spaces was filed from a blob found).
async fn found_all(scratch: &Scratch, ids: Vec<Vec<u8>>) -> Result<Vec<(String, Found)>> {
    let values = scratch.get_all(Space::Found, ids.clone()).await?;
    ids.into_iter()
        .zip(values)
        .map(|(id, value)| {
            let id = String::from_utf8(id).map_err(|_| Error::Index("rebuild scratch: blob id not UTF-8".into()))?;
            let value = value.ok_or_else(|| Error::Index(format!("rebuild scratch: blob {id} not found")))?;
            Ok((id, decode_found(&value)?))
        })
        .collect()
}

/// Records one listing page of `replica`'s subvolume: each blob's metadata, from the first copy
/// listed whose metadata reads, and every copy after that one. Returns the newest timestamp
/// among them.
async fn record_listed(
    scratch: &Scratch,
    report: &mut RebuildReport,
    replica: &Replica,
    page: Vec<ListedBlob>,
) -> Result<u64> {
    // A subvolume lists an id once, so the ids of one page are distinct.
    let known = scratch.get_all(Space::Found, page.iter().map(|l| l.id.as_bytes().to_vec()).collect()).await?;
    let mut writes = Vec::with_capacity(page.len());
    let mut max_ts = 0;
    for (listed, known) in page.into_iter().zip(known) {
        report.blobs += 1;
        report.bytes += listed.data_len;
        let mut found = match known {
            Some(bytes) => decode_found(&bytes)?,
            None => match serde_json::from_value::<BlobMeta>(listed.meta) {
                Ok(meta) => {
                    Found { meta, size: listed.data_len, sha256: listed.sha256, md5: listed.md5, replicas: vec![] }
                }
                Err(err) => {
                    tracing::warn!(blob = %listed.id, %err, "unreadable blob metadata; skipped");
                    report.skipped += 1;
                    continue;
                }
            },
        };
        max_ts = max_ts.max(found.meta.ts);
        found.replicas.push(replica.clone());
        writes.push((listed.id.into_bytes(), encode_found(&found)?));
    }
    scratch.put_all(Space::Found, writes).await?;
    Ok(max_ts)
}

/// Records a page of a commit log: each id with the commit of highest order seen for it (a
/// copy made without knowing the order logs 0; logs from before orders say nothing either).
/// Returns the highest order in the page.
async fn record_commits(scratch: &Scratch, commits: Vec<Commit>) -> Result<u64> {
    let mut newest: BTreeMap<Vec<u8>, CommitOrder> = BTreeMap::new();
    for commit in commits {
        let logged = CommitOrder { order: commit.order, version: Version::from_code(commit.kind) };
        let kept = newest.entry(commit.id.into_bytes()).or_insert(logged);
        if logged.order > kept.order {
            *kept = logged;
        }
    }
    let known = scratch.get_all(Space::Committed, newest.keys().cloned().collect()).await?;
    let mut writes = Vec::with_capacity(newest.len());
    let mut highest = 0;
    for ((id, commit), known) in newest.into_iter().zip(known) {
        let commit = match known.as_deref().map(scratch_commit) {
            Some(known) if known.order > commit.order => known,
            _ => commit,
        };
        highest = highest.max(commit.order);
        writes.push((id, scratch_bytes(commit).to_vec()));
    }
    scratch.put_all(Space::Committed, writes).await?;
    Ok(highest)
}

/// A commit as the scratch space keeps it: the order (big-endian, so keys sort by it) and the
/// version's byte.
fn scratch_bytes(commit: CommitOrder) -> [u8; 9] {
    let mut bytes = [0; 9];
    bytes[..8].copy_from_slice(&commit.order.to_be_bytes());
    bytes[8] = commit.version.code();
    bytes
}

/// The commit [`scratch_bytes`] wrote (anything shorter: order 0, not known).
fn scratch_commit(bytes: &[u8]) -> CommitOrder {
    CommitOrder {
        order: bytes.get(..8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_be_bytes),
        version: Version::from_code(bytes.get(8).copied().unwrap_or(0)),
    }
}

/// Queues the blob `id` for GC: it lost to a newer one.
async fn queue_gc(restore: &mut Restore<'_>, report: &mut RebuildReport, id: &str, found: &Found) -> Result<()> {
    report.queued += 1;
    restore.gc(&found.meta.bucket, &found.meta.key, &found.blob_ref(id), found.size).await
}

/// Files every committed blob under what it competes with: object versions (objects,
/// tombstones, manifests) under their key, tags blobs under the version they tag, bucket
/// blobs under their bucket, each group oldest first. Uncommitted blobs are counted and left
/// for GC's orphan pass; parts are looked up by id later.
async fn file_committed(scratch: &Scratch, restore: &mut Restore<'_>, report: &mut RebuildReport) -> Result<()> {
    let mut walk = scratch.walk(Space::Found, Vec::new());
    loop {
        let page = walk.page().await?;
        if page.is_empty() {
            return Ok(());
        }
        let committed = scratch.get_all(Space::Committed, page.iter().map(|(id, _)| id.clone()).collect()).await?;
        let (mut versions, mut tags, mut locks, mut acls) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut buckets, mut removals) = (Vec::new(), Vec::new());
        for ((id, found), committed) in page.into_iter().zip(committed) {
            let found = decode_found(&found)?;
            if found.meta.kind == BlobKind::Part {
                continue;
            }
            let Some(committed) = committed else {
                report.uncommitted += 1;
                continue;
            };
            // Versions of a key are ordered as their commits were (the blob's own timestamp,
            // from when its write started, only where no log says).
            let mut commit = scratch_commit(&committed);
            if commit.order == 0 {
                commit.order = found.meta.ts;
            }
            let ts = commit.order.to_be_bytes();
            let meta = &found.meta;
            match meta.kind {
                BlobKind::Part => {} // looked up by id later, through their manifests
                BlobKind::Tags | BlobKind::Lock | BlobKind::Acl => match &meta.version {
                    Some(version) => {
                        let filed = ([key_of(&[version.as_bytes()]), ts.to_vec(), id.clone()].concat(), id);
                        match meta.kind {
                            BlobKind::Tags => tags.push(filed),
                            BlobKind::Lock => locks.push(filed),
                            _ => acls.push(filed),
                        }
                    }
                    None => {
                        let id = String::from_utf8_lossy(&id).into_owned();
                        tracing::warn!(blob = %id, kind = ?meta.kind, "change blob names no version; queued for gc");
                        queue_gc(restore, report, &id, &found).await?;
                    }
                },
                BlobKind::Bucket | BlobKind::BucketDeleted => {
                    buckets.push((key_of(&[meta.bucket.as_bytes(), &id]), id))
                }
                BlobKind::VersionDeleted => {
                    let id = String::from_utf8_lossy(&id).into_owned();
                    match &meta.version {
                        Some(version) => {
                            // Kept, as the index kept it, until GC has deleted the version.
                            let record = ObjectEntry::Deleted {
                                ts: commit.order,
                                blob: found.blob_ref(&id),
                                version: Version::Removed,
                            };
                            restore.noncurrent(&meta.bucket, &meta.key, &record).await?;
                            report.removals += 1;
                            removals.push((version.as_bytes().to_vec(), id.into_bytes()));
                        }
                        None => {
                            tracing::warn!(blob = %id, "version deletion names no version; queued for gc");
                            queue_gc(restore, report, &id, &found).await?;
                        }
                    }
                }
                BlobKind::Object | BlobKind::Tombstone | BlobKind::Manifest => {
                    let group = key_of(&[meta.bucket.as_bytes(), meta.key.as_bytes()]);
                    versions.push(([group, scratch_bytes(commit).to_vec(), id.clone()].concat(), id));
                }
            }
        }
        scratch.put_all(Space::Versions, versions).await?;
        scratch.put_all(Space::Tags, tags).await?;
        scratch.put_all(Space::Locks, locks).await?;
        scratch.put_all(Space::Acls, acls).await?;
        scratch.put_all(Space::Buckets, buckets).await?;
        scratch.put_all(Space::Removals, removals).await?;
    }
}

/// What reading manifests needs: the volumes, and the scratch space to find parts in.
struct Manifests<'a> {
    client: &'a VolumeClient,
    urls_by_id: &'a HashMap<String, String>,
    scratch: &'a Scratch,
}

/// A committed version found on the volumes: its id, its commit, its blob.
type FoundVersion = (String, CommitOrder, Found);

/// Whether a found version is its key's `null` version (a tombstone is no version at all).
fn is_null(version: &FoundVersion) -> bool {
    match version.1.version {
        Version::Null => true,
        Version::Unversioned => version.2.meta.kind != BlobKind::Tombstone,
        Version::Id | Version::Removed => false,
    }
}

/// What a rebuild makes of a version found on the volumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fate {
    /// Its key's current version.
    Current,
    /// A noncurrent version of its key.
    Noncurrent,
    /// Superseded for good: queued for GC.
    Garbage,
}

/// The versions of the key being walked that are still to be placed: the newest so far
/// (current, unless a newer one comes), the newest `null` version older than it, and the newest
/// version with an id settled noncurrent (current after all if every newer one was deleted by
/// id). Holds three versions whatever the number of versions of the key.
#[derive(Default)]
struct KeyVersions {
    group: Vec<u8>,
    /// With whether it was deleted by id.
    newest: Option<(FoundVersion, bool)>,
    older_null: Option<FoundVersion>,
    standby: Option<FoundVersion>,
}

impl KeyVersions {
    /// Takes the key's next version (newer than every one before), `removed` if it was deleted
    /// by id later; returns what becomes of the versions that settles, as the commit that
    /// wrote it decided: a write without a version id (the bucket unversioned or suspended)
    /// replaced the key's `null` version and any tombstone; a write with one kept every
    /// version. So the version it supersedes becomes noncurrent if it has an id; if it is the
    /// `null` version under a write with an id, it waits (a later write without an id would
    /// still replace it); anything else is garbage. A version deleted by id is garbage
    /// whatever it would have become, but its write still replaced what it replaced.
    fn push(&mut self, version: FoundVersion, removed: bool) -> Vec<(FoundVersion, Fate)> {
        let replaces_null = version.1.version != Version::Id;
        let mut settled = Vec::new();
        if replaces_null && let Some(null) = self.older_null.take() {
            settled.push((null, Fate::Garbage));
        }
        if let Some((older, older_removed)) = self.newest.replace((version, removed)) {
            if older_removed {
                settled.push((older, Fate::Garbage));
            } else if older.1.version == Version::Id {
                settled.extend(self.standby.replace(older).map(|standby| (standby, Fate::Noncurrent)));
            } else if is_null(&older) && !replaces_null {
                self.older_null = Some(older);
            } else {
                settled.push((older, Fate::Garbage));
            }
        }
        settled
    }

    /// The rest, once the key has no more versions: the newest is current, and the versions
    /// still waiting stay noncurrent. If the newest was deleted by id, the newest of those
    /// is current instead (the index promoted it).
    fn finish(self) -> Vec<(FoundVersion, Fate)> {
        let Some((newest, newest_removed)) = self.newest else { return Vec::new() };
        let mut waiting: Vec<FoundVersion> = self.older_null.into_iter().chain(self.standby).collect();
        waiting.sort_by_key(|version| version.1.order);
        let mut settled: Vec<(FoundVersion, Fate)> = Vec::new();
        if newest_removed {
            settled.push((newest, Fate::Garbage));
        } else {
            waiting.push(newest);
        }
        let current = waiting.pop();
        settled.extend(waiting.into_iter().map(|version| (version, Fate::Noncurrent)));
        settled.extend(current.map(|version| (version, Fate::Current)));
        settled
    }
}

/// Restores each key as the index had it: the newest version current; the versions written
/// with versioning on, and the newest `null` version, noncurrent; the rest (older `null`
/// versions, tombstones) queued for GC. A live version takes the tags of the newest tags blob
/// naming it, and every other tags blob is queued for GC. Returns, for each bucket holding
/// versions, the oldest one's time.
async fn restore_objects(
    context: &Manifests<'_>,
    restore: &mut Restore<'_>,
    report: &mut RebuildReport,
) -> Result<BTreeMap<String, u64>> {
    let scratch = context.scratch;
    let mut with_objects: BTreeMap<String, u64> = BTreeMap::new();
    let mut key = KeyVersions::default();
    let mut walk = scratch.walk(Space::Versions, Vec::new());
    loop {
        let page = walk.page().await?;
        let done = page.is_empty();
        // A version's key: its group (bucket and key), its commit, its id; oldest first.
        let groups: Vec<(Vec<u8>, CommitOrder)> = page
            .iter()
            .map(|(key, _)| {
                let group = prefix_of(key, 2);
                (group.to_vec(), key.get(group.len()..).map_or(CommitOrder::plain(0), scratch_commit))
            })
            .collect();
        let ids: Vec<Vec<u8>> = page.into_iter().map(|(_, id)| id).collect();
        let removals = scratch.get_all(Space::Removals, ids.clone()).await?;
        let found = found_all(scratch, ids).await?;
        for (((group, commit), (id, found)), removal) in groups.into_iter().zip(found).zip(removals) {
            if group != key.group {
                let done_key = std::mem::replace(&mut key, KeyVersions { group, ..KeyVersions::default() });
                place(context, restore, report, &mut with_objects, done_key.finish()).await?;
            }
            let settled = key.push((id, commit, found), removal.is_some());
            place(context, restore, report, &mut with_objects, settled).await?;
        }
        if done {
            place(context, restore, report, &mut with_objects, std::mem::take(&mut key).finish()).await?;
            break;
        }
    }
    // Tags, lock and ACL blobs no live version took: of versions that lost, or whose manifest
    // was unusable.
    for space in [Space::Tags, Space::Locks, Space::Acls] {
        let mut walk = scratch.walk(space, Vec::new());
        loop {
            let page = walk.page().await?;
            if page.is_empty() {
                break;
            }
            for (id, found) in found_all(scratch, page.into_iter().map(|(_, id)| id).collect()).await? {
                queue_gc(restore, report, &id, &found).await?;
            }
        }
    }
    Ok(with_objects)
}

/// Restores or queues for GC versions whose fate is settled.
async fn place(
    context: &Manifests<'_>,
    restore: &mut Restore<'_>,
    report: &mut RebuildReport,
    with_objects: &mut BTreeMap<String, u64>,
    settled: Vec<(FoundVersion, Fate)>,
) -> Result<()> {
    for (version, fate) in settled {
        match fate {
            Fate::Current => restore_version(context, restore, report, with_objects, version, true).await?,
            Fate::Noncurrent => restore_version(context, restore, report, with_objects, version, false).await?,
            Fate::Garbage => queue_gc(restore, report, &version.0, &version.2).await?,
        }
    }
    Ok(())
}

/// Restores `found` as its key's current version or a noncurrent one, with its commit order
/// as its timestamp and the version it became (as the index had them).
async fn restore_version(
    context: &Manifests<'_>,
    restore: &mut Restore<'_>,
    report: &mut RebuildReport,
    with_objects: &mut BTreeMap<String, u64>,
    (id, commit, found): FoundVersion,
    current: bool,
) -> Result<()> {
    let (bucket, key) = (&found.meta.bucket, &found.meta.key);
    let blob = found.blob_ref(&id);
    let mut entry = match found.meta.kind {
        BlobKind::Tombstone => {
            report.tombstones += u64::from(current);
            ObjectEntry::Deleted { ts: found.meta.ts, blob, version: Version::Unversioned }
        }
        BlobKind::Object => ObjectEntry::Live(Box::new(record(&found, blob, found.md5.clone(), found.size, vec![]))),
        BlobKind::Manifest => match manifest_record(context, &found, blob).await {
            Ok(record) => ObjectEntry::Live(Box::new(record)),
            Err(err) => {
                tracing::warn!(%bucket, %key, %err, "manifest unusable; object skipped");
                report.skipped += 1;
                return Ok(());
            }
        },
        BlobKind::Part
        | BlobKind::Tags
        | BlobKind::Lock
        | BlobKind::Acl
        | BlobKind::Bucket
        | BlobKind::BucketDeleted
        | BlobKind::VersionDeleted => return Ok(()),
    };
    if let ObjectEntry::Live(record) = &mut entry {
        // Tags changed after the write: the newest tags blob naming this version.
        if let Some((tags_id, tags)) = take_newest(context.scratch, restore, report, Space::Tags, &id).await? {
            record.tags = tags.meta.tags.clone();
            record.tags_blob = Some(TagsBlob { ts: tags.meta.ts, blob: tags.blob_ref(&tags_id) });
            report.tags += 1;
        }
        // Its lock changed after the write: the newest lock blob naming it.
        if let Some((lock_id, lock)) = take_newest(context.scratch, restore, report, Space::Locks, &id).await? {
            record.lock = lock.meta.lock.unwrap_or_default();
            record.lock_blob = Some(TagsBlob { ts: lock.meta.ts, blob: lock.blob_ref(&lock_id) });
        }
        // Its ACL changed after the write: the newest ACL blob naming it.
        if let Some((acl_id, acl)) = take_newest(context.scratch, restore, report, Space::Acls, &id).await? {
            record.acl = acl.meta.acl.clone();
            record.acl_blob = Some(TagsBlob { ts: acl.meta.ts, blob: acl.blob_ref(&acl_id) });
        }
        if current {
            report.objects += 1;
        }
        let oldest = with_objects.entry(bucket.clone()).or_insert(found.meta.modified_ms);
        *oldest = (*oldest).min(found.meta.modified_ms);
    }
    entry.set_ts(commit.order);
    entry.set_version(commit.version);
    if current {
        restore.object(bucket, key, &entry).await
    } else {
        report.noncurrent_versions += 1;
        restore.noncurrent(bucket, key, &entry).await
    }
}

/// Takes the change blobs (tags or lock blobs, by `space`) naming `version` out of the scratch
/// space: returns the newest, and queues the others for GC.
async fn take_newest(
    scratch: &Scratch,
    restore: &mut Restore<'_>,
    report: &mut RebuildReport,
    space: Space,
    version: &str,
) -> Result<Option<(String, Found)>> {
    let mut newest = None;
    let mut walk = scratch.walk(space, key_of(&[version.as_bytes()]));
    loop {
        let page = walk.page().await?;
        if page.is_empty() {
            return Ok(newest);
        }
        let (keys, ids): (Vec<_>, Vec<_>) = page.into_iter().unzip();
        for (id, found) in found_all(scratch, ids).await? {
            if let Some((older, older_found)) = newest.replace((id, found)) {
                queue_gc(restore, report, &older, &older_found).await?;
            }
        }
        scratch.delete_all(space, keys).await?;
    }
}

/// Restores every bucket its bucket blobs or live objects name; bucket blobs the entry does
/// not reference are queued for GC.
async fn restore_buckets(
    scratch: &Scratch,
    mut with_objects: BTreeMap<String, u64>,
    restore: &mut Restore<'_>,
    report: &mut RebuildReport,
) -> Result<()> {
    // The bucket being walked, with its blobs (a bucket's creations and deletions: few).
    let mut current: Option<(String, Vec<String>, HashMap<String, Found>)> = None;
    let mut walk = scratch.walk(Space::Buckets, Vec::new());
    loop {
        let page = walk.page().await?;
        let done = page.is_empty();
        for (id, found) in found_all(scratch, page.into_iter().map(|(_, id)| id).collect()).await? {
            if current.as_ref().is_some_and(|(name, _, _)| *name != found.meta.bucket)
                && let Some((name, ids, blobs)) = current.take()
            {
                let oldest = with_objects.remove(&name);
                restore_bucket(restore, report, &name, &ids, &blobs, oldest).await?;
            }
            let (_, ids, blobs) =
                current.get_or_insert_with(|| (found.meta.bucket.clone(), Vec::new(), HashMap::new()));
            ids.push(id.clone());
            blobs.insert(id, found);
        }
        if done {
            break;
        }
    }
    if let Some((name, ids, blobs)) = current.take() {
        let oldest = with_objects.remove(&name);
        restore_bucket(restore, report, &name, &ids, &blobs, oldest).await?;
    }
    // Buckets only live objects name.
    for (name, oldest) in with_objects {
        restore_bucket(restore, report, &name, &[], &HashMap::new(), Some(oldest)).await?;
    }
    Ok(())
}

async fn restore_bucket(
    restore: &mut Restore<'_>,
    report: &mut RebuildReport,
    name: &str,
    ids: &[String],
    blobs: &HashMap<String, Found>,
    oldest_object_ms: Option<u64>,
) -> Result<()> {
    let Some(restored) = bucket_entry(ids, blobs, oldest_object_ms) else { return Ok(()) };
    match &restored.entry {
        BucketEntry::Live(_) => report.buckets += 1,
        BucketEntry::Deleted { .. } => report.deleted_buckets += 1,
    }
    if restored.for_objects {
        tracing::warn!(bucket = %name, "objects name a bucket its bucket blobs do not restore; recreated for them");
        report.buckets_from_objects.push(name.to_string());
    }
    for id in ids.iter().filter(|id| Some(*id) != restored.keep.as_ref()) {
        queue_gc(restore, report, id, &blobs[id]).await?;
    }
    restore.bucket(name, &restored.entry).await
}

/// A bucket as its bucket blobs (and objects) say it is.
struct RestoredBucket {
    entry: BucketEntry,
    /// The blob the entry references; the bucket's other bucket blobs go to the GC queue.
    keep: Option<String>,
    /// Recreated only because live objects name it.
    for_objects: bool,
}

/// What the bucket blobs `ids` of a bucket (and its live objects, if any, the oldest
/// written at `oldest_object_ms`) say the bucket is; `None` if nothing does.
///
/// Only committed bucket blobs are passed in (a refused CreateBucket or DeleteBucket never
/// reaches a commit log). The bucket exists if a creation is newer than its newest deletion;
/// the first of those creations made the bucket as it is now and dates it. Otherwise a newest
/// deletion keeps it deleted, unless live objects name it: a rebuild never drops data over a
/// bucket's metadata, so such a bucket is recreated for them (this means bucket blobs that
/// could not be read, or volumes written before buckets had blobs).
fn bucket_entry(
    ids: &[String],
    blobs: &HashMap<String, Found>,
    oldest_object_ms: Option<u64>,
) -> Option<RestoredBucket> {
    let of_kind = |kind: BlobKind| ids.iter().filter(move |id| blobs[*id].meta.kind == kind);
    let ts = |id: &&String| (blobs[*id].meta.ts, (*id).clone());
    let newest_deletion = of_kind(BlobKind::BucketDeleted).max_by_key(ts);
    let deleted_at = newest_deletion.map_or(0, |id| blobs[id].meta.ts);
    let blob_ref = |id: &String| BlobRef { id: id.clone(), replicas: blobs[id].replicas.clone() };
    // Dated by `first`, as configured by `newest`, which the entry keeps.
    let live = |first: &String, newest: &String, for_objects: bool| {
        let meta = &blobs[newest].meta;
        let record = BucketRecord {
            created_ms: blobs[first].meta.modified_ms,
            ts: meta.ts,
            blob: Some(blob_ref(newest)),
            versioning: meta.versioning.unwrap_or_default(),
            object_lock: meta.object_lock.clone(),
            lifecycle: meta.lifecycle.clone(),
            owner: meta.owner.clone().unwrap_or_default(),
            tags: meta.tags.clone(),
            policy: meta.policy.clone(),
            public_access_block: meta.public_access_block,
            cors: meta.cors.clone(),
            ownership: meta.ownership.unwrap_or_default(),
            acl: meta.acl.clone(),
        };
        RestoredBucket { entry: BucketEntry::Live(record), keep: Some(newest.clone()), for_objects }
    };
    let since_deletion = || of_kind(BlobKind::Bucket).filter(|id| blobs[*id].meta.ts > deleted_at);
    if let (Some(first), Some(newest)) = (since_deletion().min_by_key(ts), since_deletion().max_by_key(ts)) {
        return Some(live(first, newest, false));
    }
    if let Some(oldest_object_ms) = oldest_object_ms {
        return Some(match of_kind(BlobKind::Bucket).max_by_key(ts) {
            Some(newest) => live(newest, newest, true),
            None => RestoredBucket {
                entry: BucketEntry::Live(BucketRecord {
                    created_ms: oldest_object_ms,
                    ts: 0,
                    blob: None,
                    ..Default::default()
                }),
                keep: None,
                for_objects: true,
            },
        });
    }
    let deletion = newest_deletion?;
    let entry = BucketEntry::Deleted { ts: deleted_at, blob: blob_ref(deletion) };
    Some(RestoredBucket { entry, keep: Some(deletion.clone()), for_objects: false })
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
        tags_blob: None,
        version: Version::Unversioned,
        lock: meta.lock.unwrap_or_default(),
        lock_blob: None,
        acl: meta.acl.clone(),
        acl_blob: None,
    }
}

/// Reads a manifest blob and ties its parts to the blobs found.
async fn manifest_record(context: &Manifests<'_>, found: &Found, blob: BlobRef) -> Result<ObjectRecord> {
    let Manifests { client, urls_by_id, scratch } = *context;
    let mut body = Vec::new();
    let mut last_error = None;
    for replica in &blob.replicas {
        let Some(url) = urls_by_id.get(&replica.volume) else { continue };
        match client.get(url, replica.subvolume, &blob.id, None).await {
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
    let ids = manifest.parts.iter().map(|part| part.blob.as_bytes().to_vec()).collect();
    let found_parts = scratch.get_all(Space::Found, ids).await?;
    let mut parts = Vec::with_capacity(manifest.parts.len());
    for (part, found_part) in manifest.parts.into_iter().zip(found_parts) {
        let found_part = found_part.ok_or_else(|| Error::Volume(format!("part blob {} is missing", part.blob)))?;
        let found_part = decode_found(&found_part)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn found_version(kind: BlobKind, id: &str, version: Version) -> FoundVersion {
        let meta = BlobMeta::new(kind, "b", "k", 1, 1);
        let found = Found { meta, size: 0, sha256: String::new(), md5: String::new(), replicas: vec![] };
        (id.to_string(), CommitOrder { order: 1, version }, found)
    }

    /// What a rebuild makes of each version of a key, oldest first, as the index made it: a
    /// version with an id stays, the newest `null` version stays, tombstones and older `null`
    /// versions go, the newest is current.
    #[test]
    fn versions_of_a_key_are_placed_as_the_index_had_them() {
        use Fate::{Current, Garbage, Noncurrent};
        let place = |versions: Vec<FoundVersion>| {
            let mut key = KeyVersions::default();
            let mut fates: Vec<(String, Fate)> = Vec::new();
            for (order, mut version) in versions.into_iter().enumerate() {
                // Commit orders grow; an id starting with `x` names a version deleted by id.
                version.1.order = order as u64 + 1;
                let removed = version.0.starts_with('x');
                fates.extend(key.push(version, removed).into_iter().map(|(v, fate)| (v.0, fate)));
            }
            fates.extend(key.finish().into_iter().map(|(v, fate)| (v.0, fate)));
            fates.sort();
            fates
        };
        let object = |id, version| found_version(BlobKind::Object, id, version);
        let deletion = |id, version| found_version(BlobKind::Tombstone, id, version);
        let expect = |pairs: &[(&str, Fate)]| {
            let mut pairs: Vec<(String, Fate)> = pairs.iter().map(|(id, fate)| (id.to_string(), *fate)).collect();
            pairs.sort();
            pairs
        };
        // Never versioned: only the newest stays.
        let unversioned = vec![object("u1", Version::Unversioned), object("u2", Version::Unversioned)];
        assert_eq!(place(unversioned), expect(&[("u1", Garbage), ("u2", Current)]));
        let deleted = vec![object("u1", Version::Unversioned), deletion("t", Version::Unversioned)];
        assert_eq!(place(deleted), expect(&[("u1", Garbage), ("t", Current)]));
        // Enabled after a null version, a tombstone in between.
        let enabled = vec![
            object("u1", Version::Unversioned),
            deletion("t", Version::Unversioned),
            object("u2", Version::Unversioned),
            object("v1", Version::Id),
            deletion("m1", Version::Id),
        ];
        assert_eq!(
            place(enabled),
            expect(&[("u1", Garbage), ("t", Garbage), ("u2", Noncurrent), ("v1", Noncurrent), ("m1", Current)])
        );
        // Suspended: each null write replaces the null version; the versions with ids stay.
        let suspended = vec![
            object("u1", Version::Unversioned),
            object("v1", Version::Id),
            object("n1", Version::Null),
            object("v2", Version::Id),
            deletion("n2", Version::Null),
        ];
        assert_eq!(
            place(suspended),
            expect(&[("u1", Garbage), ("v1", Noncurrent), ("n1", Garbage), ("v2", Noncurrent), ("n2", Current)])
        );
        // A null version under newer versions with ids stays noncurrent.
        let kept = vec![object("n1", Version::Null), object("v1", Version::Id), object("v2", Version::Id)];
        assert_eq!(place(kept), expect(&[("n1", Noncurrent), ("v1", Noncurrent), ("v2", Current)]));

        // Deleted by id: garbage, and when the newest, the newest left is current.
        let newest_deleted = vec![object("v1", Version::Id), object("v2", Version::Id), object("x3", Version::Id)];
        assert_eq!(place(newest_deleted), expect(&[("v1", Noncurrent), ("v2", Current), ("x3", Garbage)]));
        let null_promoted = vec![object("v1", Version::Id), object("n1", Version::Null), object("xv2", Version::Id)];
        assert_eq!(place(null_promoted), expect(&[("v1", Noncurrent), ("n1", Current), ("xv2", Garbage)]));
        let id_promoted = vec![object("n1", Version::Null), object("v1", Version::Id), object("x2", Version::Id)];
        assert_eq!(place(id_promoted), expect(&[("n1", Noncurrent), ("v1", Current), ("x2", Garbage)]));
        let marker_promoted = vec![object("v1", Version::Id), deletion("m1", Version::Id), object("x2", Version::Id)];
        assert_eq!(place(marker_promoted), expect(&[("v1", Noncurrent), ("m1", Current), ("x2", Garbage)]));
        let all_deleted = vec![object("x1", Version::Id), object("x2", Version::Id)];
        assert_eq!(place(all_deleted), expect(&[("x1", Garbage), ("x2", Garbage)]));
        // A deleted null version written while suspended still replaced the null before it.
        let replaced = vec![
            object("n0", Version::Unversioned),
            object("v1", Version::Id),
            object("xn", Version::Null),
            object("v2", Version::Id),
        ];
        assert_eq!(place(replaced), expect(&[("n0", Garbage), ("v1", Noncurrent), ("xn", Garbage), ("v2", Current)]));
        // Deleted in the middle: the others as before.
        let middle = vec![object("v1", Version::Id), object("xm", Version::Id), object("v3", Version::Id)];
        assert_eq!(place(middle), expect(&[("v1", Noncurrent), ("xm", Garbage), ("v3", Current)]));
    }

    /// Commits keep their order and version through the scratch space, sort by order, and
    /// anything short (a scratch entry of an older format) reads as not known.
    #[test]
    fn commits_round_trip_through_the_scratch_space_in_order() {
        let older = CommitOrder { order: 5, version: Version::Id };
        let newer = CommitOrder { order: 0x1_0000, version: Version::Null };
        assert_eq!(scratch_commit(&scratch_bytes(older)), older);
        assert_eq!(scratch_commit(&scratch_bytes(newer)), newer);
        assert!(scratch_bytes(older) < scratch_bytes(newer));
        assert_eq!(scratch_commit(&[]), CommitOrder::plain(0));
        assert_eq!(scratch_commit(&5u64.to_be_bytes()), CommitOrder::plain(5));
    }

    fn member(id: &str, weight: f64, zone: Option<&str>) -> volumed::membership::Member {
        let url = format!("http://{id}");
        volumed::membership::Member { id: id.into(), url, weight, zone: zone.map(Into::into), subvolumes: 2 }
    }

    fn answer(id: &str, document: Option<&Document>) -> Answer {
        let subvolume = volumed::store::SubvolumeStats { index: 0, free_bytes: 0, total_bytes: 0 };
        let stats = volumed::VolumeStats {
            volume_id: id.into(),
            subvolumes: vec![subvolume.clone(), subvolume],
            gateway_seen_ms_ago: None,
        };
        Answer { url: format!("http://{id}"), stats, document: document.cloned() }
    }

    fn document(cluster: &str, epoch: u64) -> Document {
        Document {
            cluster_id: cluster.into(),
            epoch,
            volumes: vec![member("a", 2.0, Some("z1")), member("b", 1.0, Some("z2")), member("c", 0.0, None)],
            removed: vec!["old".into()],
        }
    }

    #[test]
    fn the_newest_membership_is_restored_with_weights_zones_and_removed_volumes() {
        let (older, newer) = (document("c1", 3), document("c1", 4));
        let survey =
            plan(vec![answer("a", Some(&newer)), answer("b", Some(&older)), answer("c", None)], vec![]).unwrap();
        assert_eq!(survey.cluster_id.as_deref(), Some("c1"));
        assert_eq!(survey.membership, crate::membership::membership_of(&newer));
        assert_eq!(survey.epoch, 4, "the same membership keeps its epoch");
        assert!(survey.missing.is_empty() && survey.unanswered.is_empty());
        assert_eq!(survey.readable.len(), 3);

        // A volume at a new address, and one that was never a member: a new epoch.
        let mut moved = answer("b", Some(&newer));
        moved.url = "http://b-moved".into();
        let survey =
            plan(vec![answer("a", Some(&newer)), moved, answer("c", None), answer("d", None)], vec![]).unwrap();
        assert_eq!(survey.epoch, 5);
        let urls: Vec<(&str, &str, f64)> =
            survey.membership.volumes.iter().map(|v| (v.id.as_str(), v.url.as_str(), v.weight)).collect();
        assert_eq!(
            urls,
            [("a", "http://a", 2.0), ("b", "http://b-moved", 1.0), ("c", "http://c", 0.0), ("d", "http://d", 1.0)]
        );

        // A removed volume given again is not read.
        let survey =
            plan(vec![answer("a", Some(&newer)), answer("b", None), answer("c", None), answer("old", None)], vec![])
                .unwrap();
        assert!(!survey.readable.iter().any(|v| v.id == "old"));
        assert_eq!(survey.membership.removed, ["old"]);
    }

    #[test]
    fn members_left_out_are_named_with_their_last_url() {
        let newer = document("c1", 4);
        let unanswered =
            vec![("http://b".to_string(), "refused".to_string()), ("http://x".to_string(), "refused".to_string())];
        let survey = plan(vec![answer("a", Some(&newer))], unanswered).unwrap();
        let missing: Vec<String> = survey.missing.iter().map(ToString::to_string).collect();
        assert_eq!(
            missing,
            [
                "volume b (last at http://b) did not answer: refused",
                "volume c (last at http://c) is a member of the cluster but was not among the volumes given"
            ]
        );
        assert_eq!(survey.unanswered, ["volume http://x did not answer: refused"]);
        assert_eq!(survey.membership.volumes.len(), 3, "missing volumes stay members");
    }

    #[test]
    fn volumes_of_another_cluster_are_refused() {
        let (ours, theirs) = (document("c1", 4), document("c2", 9));
        let answers = vec![answer("a", Some(&ours)), answer("b", Some(&ours)), answer("x", Some(&theirs))];
        let refused = plan(answers, vec![]).unwrap_err().to_string();
        assert!(refused.contains("volume x at http://x belongs to cluster c2, not to cluster c1"), "{refused}");
    }

    fn found(kind: BlobKind, ts: u64, modified_ms: u64) -> Found {
        Found {
            meta: BlobMeta::new(kind, "b", crate::index::BUCKET_KEY, ts, modified_ms),
            size: 0,
            sha256: String::new(),
            md5: String::new(),
            replicas: vec![],
        }
    }

    /// Bucket blobs by id: `c…` creations, `d…` deletions, as (id, ts, modified_ms).
    fn blobs(list: &[(&str, u64, u64)]) -> (Vec<String>, HashMap<String, Found>) {
        let ids = list.iter().map(|(id, _, _)| id.to_string()).collect();
        let found = list
            .iter()
            .map(|(id, ts, ms)| {
                let kind = if id.starts_with('c') { BlobKind::Bucket } else { BlobKind::BucketDeleted };
                (id.to_string(), found(kind, *ts, *ms))
            })
            .collect();
        (ids, found)
    }

    fn restore(
        list: &[(&str, u64, u64)],
        oldest_object_ms: Option<u64>,
    ) -> Option<(BucketEntry, Option<String>, bool)> {
        let (ids, found) = blobs(list);
        bucket_entry(&ids, &found, oldest_object_ms).map(|r| (r.entry, r.keep, r.for_objects))
    }

    fn live(created_ms: u64, ts: u64, id: Option<&str>) -> BucketEntry {
        let blob = id.map(|id| BlobRef { id: id.into(), replicas: vec![] });
        BucketEntry::Live(BucketRecord { created_ms, ts, blob, ..Default::default() })
    }

    #[test]
    fn the_newest_bucket_operation_wins_and_the_first_creation_dates_the_bucket() {
        // Created, then configured: dated by the creation, as the newest blob says, which it keeps.
        let (ids, mut found) = blobs(&[("c1", 10, 1000), ("c2", 20, 1000)]);
        let lock = crate::index::records::ObjectLockConfig {
            default_retention: Some(crate::index::records::DefaultRetention {
                mode: crate::index::records::LockMode::Compliance,
                days: 3,
                years: 0,
            }),
        };
        use crate::index::records::Versioning;
        found.get_mut("c2").unwrap().meta.versioning = Some(Versioning::Enabled);
        found.get_mut("c2").unwrap().meta.object_lock = Some(lock.clone());
        found.get_mut("c2").unwrap().meta.owner = Some("a1b2".into());
        found.get_mut("c2").unwrap().meta.tags = vec![("team".into(), "storage".into())];
        found.get_mut("c2").unwrap().meta.policy = Some("{}".into());
        let restored = bucket_entry(&ids, &found, None).unwrap();
        let configured = BucketRecord {
            created_ms: 1000,
            ts: 20,
            blob: Some(BlobRef { id: "c2".into(), replicas: vec![] }),
            versioning: Versioning::Enabled,
            object_lock: Some(lock),
            owner: "a1b2".into(),
            tags: vec![("team".into(), "storage".into())],
            policy: Some("{}".into()),
            ..Default::default()
        };
        assert_eq!((restored.entry, restored.keep), (BucketEntry::Live(configured), Some("c2".into())));
        // Deleted: stays deleted, keeping the deletion blob.
        let deleted = BucketEntry::Deleted { ts: 20, blob: BlobRef { id: "d1".into(), replicas: vec![] } };
        assert_eq!(restore(&[("c1", 10, 1000), ("d1", 20, 0)], None), Some((deleted, Some("d1".into()), false)));
        // Deleted and created again: the new creation's date.
        assert_eq!(
            restore(&[("c1", 10, 1000), ("d1", 20, 0), ("c2", 30, 3000)], None),
            Some((live(3000, 30, Some("c2")), Some("c2".into()), false))
        );
        // Nothing about the bucket at all.
        assert_eq!(restore(&[], None), None);
    }

    #[test]
    fn live_objects_keep_their_bucket_whatever_its_blobs_say() {
        assert_eq!(
            restore(&[("c1", 10, 1000), ("d1", 20, 0)], Some(1500)),
            Some((live(1000, 10, Some("c1")), Some("c1".into()), true))
        );
        assert_eq!(restore(&[], Some(1500)), Some((live(1500, 0, None), None, true)));
        // With a creation newer than any deletion, the objects change nothing.
        assert_eq!(
            restore(&[("c1", 10, 1000)], Some(1500)),
            Some((live(1000, 10, Some("c1")), Some("c1".into()), false))
        );
    }
}
