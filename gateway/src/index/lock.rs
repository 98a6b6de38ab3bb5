//! Object lock in the index (see docs/design.md, "Object lock"): a bucket's lock
//! configuration, carried to the volumes by its bucket blob, and each version's retention and
//! legal hold, set by its write or changed later with a lock blob on the volumes (as tags
//! are), so that a rebuild restores the newest. What a lock forbids is refused here, below
//! the S3 layer: changes that would weaken it (`Index::set_lock`), deleting the version
//! (`Index::delete_version`), dropping it on a write (`Index::retire_current`), and suspending
//! the bucket's versioning or removing its lock configuration (`BucketConfig::refuses`).

use super::records::{
    BlobRef, BucketEntry, BucketRecord, CommitOrder, Lock, LockMode, ObjectEntry, ObjectLockConfig, Retention,
    TagsBlob, Versioning,
};
use super::{Committed, Index, read_in, write_in};
use crate::engine::Table;
use crate::error::{Error, Result};
use crate::in_transaction;

impl Lock {
    /// Why changing this lock to `new` at `now_ms` is forbidden, if it is: a retention in
    /// force may be extended (or GOVERNANCE turned into COMPLIANCE), never shortened or
    /// removed, except GOVERNANCE with `bypass_governance`. A legal hold may always change.
    pub fn forbids_change(&self, new: &Lock, now_ms: u64, bypass_governance: bool) -> Option<String> {
        let Retention { mode, until_ms } = self.retention.filter(|r| r.until_ms > now_ms)?;
        let kept =
            new.retention.is_some_and(|r| r.until_ms >= until_ms && (mode == LockMode::Governance || r.mode == mode));
        match mode {
            _ if kept => None,
            LockMode::Governance if bypass_governance => None,
            LockMode::Governance => Some(format!(
                "GOVERNANCE retention until {until_ms} ms can be shortened or removed only with x-amz-bypass-governance-retention"
            )),
            LockMode::Compliance => {
                Some(format!("COMPLIANCE retention until {until_ms} ms cannot be shortened, weakened or removed"))
            }
        }
    }
}

impl Index {
    /// Creates bucket `name` (see [`Index::create_bucket`]) with object lock enabled: the
    /// bucket is versioned from the start, and `config` gives its default retention.
    pub async fn create_locked_bucket(
        &self,
        name: &str,
        ts: u64,
        created_ms: u64,
        blob: &BlobRef,
        config: ObjectLockConfig,
    ) -> Result<bool> {
        let record = BucketRecord {
            created_ms,
            ts,
            blob: Some(blob.clone()),
            versioning: Versioning::Enabled,
            object_lock: Some(config),
            ..Default::default()
        };
        self.create_bucket_as(name, record).await
    }

    /// Changes the lock of the version of `bucket`/`key` whose blob is `version` from
    /// `expected` (what the caller read, and computed `new` and wrote `change`'s lock blob
    /// from) to `new`. Refused, with `change`'s blob going to GC: when the bucket has no object
    /// lock (`InvalidRequest`); when the version is gone (`NoSuchKey`); when its lock is no
    /// longer `expected` (`OperationAborted`: another change got in first; the caller may
    /// retry); when the change would weaken a retention in force (`ObjectLocked`, see
    /// [`Lock::forbids_change`]). One transaction.
    pub async fn set_lock(
        &self,
        (bucket, key, version): (&str, &str, &str),
        expected: Lock,
        new: Lock,
        change: &TagsBlob,
        bypass_governance: bool,
        now_ms: u64,
    ) -> Result<Committed> {
        in_transaction!(self.engine, tx, {
            let locking = read_in::<BucketEntry>(tx, Table::Buckets, bucket.as_bytes())
                .await?
                .and_then(BucketEntry::live)
                .is_some_and(|record| record.object_lock.is_some());
            let (table, at, entry) = Self::version_by_blob(tx, bucket, key, version).await?;
            let outcome = match entry {
                _ if !locking => Err(Error::InvalidRequest("Bucket is missing Object Lock Configuration".into())),
                Some(ObjectEntry::Live(mut record)) if record.blob.id == version => {
                    if record.lock != expected {
                        Err(Error::OperationAborted)
                    } else if let Some(why) = record.lock.forbids_change(&new, now_ms, bypass_governance) {
                        Err(Error::ObjectLocked(why))
                    } else {
                        if let Some(old) = record.lock_blob.replace(change.clone()) {
                            self.queue_gc(tx, bucket, key, &old.blob, 0)?;
                        }
                        record.lock = new;
                        self.consume_claim(tx, &change.blob.id).await?;
                        self.queue_repairs(tx, bucket, key, None, [&change.blob]).await?;
                        self.stage_unlogged(tx, &change.blob, CommitOrder::plain(change.ts))?;
                        write_in(tx, table, &at, &ObjectEntry::Live(record))?;
                        Ok(Committed::Current)
                    }
                }
                _ => Err(Error::NoSuchKey),
            };
            if outcome.is_err() {
                self.queue_gc(tx, bucket, key, &change.blob, 0)?;
            }
            Ok(outcome)
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: u64 = 24 * 3600 * 1000;

    fn retained(mode: LockMode, until_ms: u64) -> Lock {
        Lock { retention: Some(Retention { mode, until_ms }), legal_hold: false }
    }

    /// What each lock allows: deletion, and changes to it.
    #[test]
    fn locks_forbid_what_s3_forbids() {
        let now = 100 * DAY_MS;
        let (governance, compliance) =
            (retained(LockMode::Governance, now + DAY_MS), retained(LockMode::Compliance, now + DAY_MS));
        let held = Lock { retention: None, legal_hold: true };
        let expired = retained(LockMode::Compliance, now - 1);
        assert!(Lock::default().forbids_deletion(now, false).is_none());
        assert!(expired.forbids_deletion(now, false).is_none());
        assert!(governance.forbids_deletion(now, false).unwrap().contains("GOVERNANCE"));
        assert!(governance.forbids_deletion(now, true).is_none(), "bypassed");
        assert!(compliance.forbids_deletion(now, true).unwrap().contains("COMPLIANCE"), "never bypassed");
        assert!(held.forbids_deletion(now, true).unwrap().contains("legal hold"));

        let longer = |mode| retained(mode, now + 2 * DAY_MS);
        let shorter = |mode| retained(mode, now + DAY_MS / 2);
        // COMPLIANCE: only extended, never weakened, shortened or removed, bypass or not.
        assert!(compliance.forbids_change(&longer(LockMode::Compliance), now, false).is_none());
        for weaker in [shorter(LockMode::Compliance), longer(LockMode::Governance), Lock::default()] {
            assert!(compliance.forbids_change(&weaker, now, true).is_some(), "{weaker:?}");
        }
        // GOVERNANCE: extended or made COMPLIANCE freely; shortened or removed with bypass only.
        assert!(governance.forbids_change(&longer(LockMode::Governance), now, false).is_none());
        assert!(governance.forbids_change(&longer(LockMode::Compliance), now, false).is_none());
        for weaker in [shorter(LockMode::Governance), Lock::default()] {
            assert!(governance.forbids_change(&weaker, now, false).is_some());
            assert!(governance.forbids_change(&weaker, now, true).is_none());
        }
        // A legal hold comes and goes; an expired retention is no retention.
        assert!(held.forbids_change(&Lock::default(), now, false).is_none());
        assert!(expired.forbids_change(&Lock::default(), now, false).is_none());
        let with_hold = Lock { legal_hold: true, ..compliance };
        assert!(compliance.forbids_change(&with_hold, now, false).is_none());
    }
}
