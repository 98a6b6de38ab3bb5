//! Access keys in the index (`keys` column family: access key id → [`KeyRecord`]).

use super::records::{Grant, KeyRecord, decode};
use super::{Index, read_in, write_in};
use crate::engine::Table;
use crate::error::Result;
use crate::in_transaction;

impl Index {
    /// Stores (creates or replaces) a key.
    pub async fn put_key(&self, id: &str, record: &KeyRecord) -> Result<()> {
        in_transaction!(self.engine, tx, { write_in(tx, Table::Keys, id.as_bytes(), record) })
    }

    /// Stores (creates or replaces) every key of `keys` in one transaction; how many
    /// replaced a key of the same id.
    pub async fn put_keys(&self, keys: &[(String, KeyRecord)]) -> Result<usize> {
        in_transaction!(self.engine, tx, {
            let mut replaced = 0;
            for (id, record) in keys {
                replaced += usize::from(tx.get(Table::Keys, id.as_bytes()).await?.is_some());
                write_in(tx, Table::Keys, id.as_bytes(), record)?;
            }
            Ok(replaced)
        })
    }

    /// A key by id.
    pub async fn key(&self, id: &str) -> Result<Option<KeyRecord>> {
        self.read(Table::Keys, id.as_bytes()).await
    }

    /// Every key, by id.
    pub async fn keys(&self) -> Result<Vec<(String, KeyRecord)>> {
        let rows = self.scan_all(Table::Keys, b"", None).await?;
        rows.into_iter().map(|(id, value)| Ok((String::from_utf8_lossy(&id).into_owned(), decode(&value)?))).collect()
    }

    /// Deletes a key; whether it existed.
    pub async fn delete_key(&self, id: &str) -> Result<bool> {
        in_transaction!(self.engine, tx, {
            let existed = tx.get(Table::Keys, id.as_bytes()).await?.is_some();
            tx.delete(Table::Keys, id.as_bytes());
            Ok(existed)
        })
    }

    /// Changes a key's grant on `bucket` with `change` in one transaction (so concurrent
    /// allow/deny calls do not lose updates; `change` may run more than once); `false` if
    /// there is no such key.
    pub async fn update_grant(
        &self,
        id: &str,
        bucket: &str,
        change: impl Fn(&mut Grant) + Send + Sync,
    ) -> Result<bool> {
        in_transaction!(self.engine, tx, {
            let Some(mut record) = read_in::<KeyRecord>(tx, Table::Keys, id.as_bytes()).await? else {
                return Ok(false);
            };
            let position = match record.grants.iter().position(|g| g.bucket == bucket) {
                Some(position) => position,
                None => {
                    record.grants.push(Grant { bucket: bucket.to_string(), ..Default::default() });
                    record.grants.len() - 1
                }
            };
            change(&mut record.grants[position]);
            if !(record.grants[position].read || record.grants[position].write || record.grants[position].owner) {
                record.grants.remove(position);
            }
            write_in(tx, Table::Keys, id.as_bytes(), &record)?;
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_and_grants() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).await.unwrap();
        let record = KeyRecord { name: "app".into(), secret: "s3cr3t".into(), created_ms: 1, ..Default::default() };
        index.put_key("CK1", &record).await.unwrap();
        assert!(!format!("{record:?}").contains("s3cr3t"));
        assert!(index.update_grant("CK1", "a", |g| g.read = true).await.unwrap());
        assert!(index.update_grant("CK1", "a", |g| g.write = true).await.unwrap());
        let grants = index.key("CK1").await.unwrap().unwrap().grants;
        assert_eq!(grants.len(), 1);
        assert!(grants[0].read && grants[0].write && !grants[0].owner);
        assert!(index.update_grant("CK1", "a", |g| *g = Default::default()).await.unwrap());
        assert!(index.key("CK1").await.unwrap().unwrap().grants.is_empty(), "an empty grant is dropped");
        assert!(!index.update_grant("nope", "a", |g| g.read = true).await.unwrap());
        assert_eq!(index.keys().await.unwrap().len(), 1);
        assert!(index.delete_key("CK1").await.unwrap());
        assert!(!index.delete_key("CK1").await.unwrap());

        // Importing the same keys twice replaces them.
        let other = KeyRecord { name: "other".into(), secret: "x".into(), created_ms: 2, ..Default::default() };
        let keys = vec![("CK1".to_string(), record.clone()), ("CK2".to_string(), other)];
        assert_eq!(index.put_keys(&keys).await.unwrap(), 0);
        assert_eq!(index.put_keys(&keys).await.unwrap(), 2);
        assert_eq!(index.keys().await.unwrap().len(), 2);
        assert_eq!(index.key("CK1").await.unwrap(), Some(record));
    }
}
