//! Access keys in the index (`keys` column family: access key id → [`KeyRecord`]).

use rocksdb::IteratorMode;

use super::records::{KeyRecord, decode, encode};
use super::{CF_KEYS, Index, synced};
use crate::error::Result;

impl Index {
    /// Stores (creates or replaces) a key.
    pub fn put_key(&self, id: &str, record: &KeyRecord) -> Result<()> {
        self.db.put_cf_opt(self.cf(CF_KEYS)?, id.as_bytes(), encode(record)?, &synced())?;
        Ok(())
    }

    /// Stores (creates or replaces) every key of `keys` in one synced batch; how many
    /// replaced a key of the same id.
    pub fn put_keys(&self, keys: &[(String, KeyRecord)]) -> Result<usize> {
        let _guard = self.lock()?;
        let mut batch = rocksdb::WriteBatch::default();
        let mut replaced = 0;
        for (id, record) in keys {
            replaced += usize::from(self.key(id)?.is_some());
            batch.put_cf(self.cf(CF_KEYS)?, id.as_bytes(), encode(record)?);
        }
        self.db.write_opt(batch, &synced())?;
        Ok(replaced)
    }

    /// A key by id.
    pub fn key(&self, id: &str) -> Result<Option<KeyRecord>> {
        self.db.get_cf(self.cf(CF_KEYS)?, id.as_bytes())?.map(|b| decode(&b)).transpose()
    }

    /// Every key, by id.
    pub fn keys(&self) -> Result<Vec<(String, KeyRecord)>> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_KEYS)?, IteratorMode::Start) {
            let (id, value) = item?;
            out.push((String::from_utf8_lossy(&id).into_owned(), decode(&value)?));
        }
        Ok(out)
    }

    /// Deletes a key; whether it existed.
    pub fn delete_key(&self, id: &str) -> Result<bool> {
        let existed = self.key(id)?.is_some();
        self.db.delete_cf_opt(self.cf(CF_KEYS)?, id.as_bytes(), &synced())?;
        Ok(existed)
    }

    /// Changes a key's grant on `bucket` with `change` under the commit lock (so concurrent
    /// allow/deny calls do not lose updates); `false` if there is no such key.
    pub fn update_grant(
        &self,
        id: &str,
        bucket: &str,
        change: impl FnOnce(&mut super::records::Grant),
    ) -> Result<bool> {
        let _guard = self.lock()?;
        let Some(mut record) = self.key(id)? else { return Ok(false) };
        let position = match record.grants.iter().position(|g| g.bucket == bucket) {
            Some(position) => position,
            None => {
                record.grants.push(super::records::Grant { bucket: bucket.to_string(), ..Default::default() });
                record.grants.len() - 1
            }
        };
        change(&mut record.grants[position]);
        if !(record.grants[position].read || record.grants[position].write || record.grants[position].owner) {
            record.grants.remove(position);
        }
        self.put_key(id, &record)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_grants() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).unwrap();
        let record = KeyRecord { name: "app".into(), secret: "s3cr3t".into(), created_ms: 1, grants: vec![] };
        index.put_key("CK1", &record).unwrap();
        assert!(!format!("{record:?}").contains("s3cr3t"));
        assert!(index.update_grant("CK1", "a", |g| g.read = true).unwrap());
        assert!(index.update_grant("CK1", "a", |g| g.write = true).unwrap());
        let grants = index.key("CK1").unwrap().unwrap().grants;
        assert_eq!(grants.len(), 1);
        assert!(grants[0].read && grants[0].write && !grants[0].owner);
        assert!(index.update_grant("CK1", "a", |g| *g = Default::default()).unwrap());
        assert!(index.key("CK1").unwrap().unwrap().grants.is_empty(), "an empty grant is dropped");
        assert!(!index.update_grant("nope", "a", |g| g.read = true).unwrap());
        assert_eq!(index.keys().unwrap().len(), 1);
        assert!(index.delete_key("CK1").unwrap());
        assert!(!index.delete_key("CK1").unwrap());

        // Importing the same keys twice replaces them.
        let other = KeyRecord { name: "other".into(), secret: "x".into(), created_ms: 2, grants: vec![] };
        let keys = vec![("CK1".to_string(), record.clone()), ("CK2".to_string(), other)];
        assert_eq!(index.put_keys(&keys).unwrap(), 0);
        assert_eq!(index.put_keys(&keys).unwrap(), 2);
        assert_eq!(index.keys().unwrap().len(), 2);
        assert_eq!(index.key("CK1").unwrap(), Some(record));
    }
}
