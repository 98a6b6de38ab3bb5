//! The conformance suite every engine runs (from its own tests): the semantics the schema
//! relies on, checked the same way for each.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt as _;

use super::{Engine, Table, transaction};
use crate::error::{Error, Result};

/// Runs every check on a fresh, empty engine made by `open`, which is called again (after the
/// engine is dropped) to check that commits survive a restart.
pub(crate) async fn run<F, Fut>(open: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Box<dyn Engine>>>,
{
    let engine: Arc<dyn Engine> = Arc::from(open().await.unwrap());
    keys_sort_as_unsigned_bytes_and_scans_keep_their_bounds(engine.as_ref()).await;
    tables_are_separate_and_deletes_delete(engine.as_ref()).await;
    a_transaction_reads_committed_data_and_a_dropped_one_writes_nothing(engine.as_ref()).await;
    a_transaction_never_sees_part_of_a_later_commit(engine.as_ref()).await;
    of_two_transactions_each_writing_what_the_other_read_one_fails(engine.as_ref()).await;
    concurrent_commits_of_different_keys_all_land(&engine).await;
    of_racing_creators_exactly_one_wins(std::slice::from_ref(&engine)).await;
    racing_increments_lose_no_update(&engine).await;
    large_batches_commit_whole(engine.as_ref()).await;
    reports_rows_and_bytes_of_every_table(engine.as_ref()).await;
    drop(engine);
    let reopened = open().await.unwrap();
    commits_survive_a_restart(reopened.as_ref()).await;
}

fn keys() -> Vec<Vec<u8>> {
    // In unsigned byte order; 0x00 and 0xFF where the schema uses them (separators, "past").
    let keys: [&[u8]; 12] =
        [b"", b"\x00", b"\x00\x00", b"a", b"a\x00", b"a\x00b", b"ab", b"a\x7f", b"a\xff", b"b", b"\xff", b"\xff\xff"];
    keys.iter().map(|k| k.to_vec()).collect()
}

/// Each table's rows and bytes once, under the shared names, with nothing negative; the
/// engine's own figures follow the `cairn_index_` naming.
async fn reports_rows_and_bytes_of_every_table(engine: &dyn Engine) {
    let stats = engine.stats().await.unwrap();
    for table in Table::ALL {
        for name in ["cairn_index_table_rows", "cairn_index_table_bytes"] {
            let matching = stats.iter().filter(|s| s.name == name && s.table == Some(table)).count();
            assert_eq!(matching, 1, "{name} of {table:?} in {stats:?}");
        }
    }
    for stat in &stats {
        assert!(stat.value >= 0.0 && stat.value.is_finite(), "{stat:?}");
        assert!(stat.name.starts_with("cairn_index_") && !stat.help.is_empty(), "{stat:?}");
        assert!(stat.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{stat:?}");
    }
}

async fn put_all(engine: &dyn Engine, table: Table, rows: Vec<(Vec<u8>, Vec<u8>)>) {
    let mut tx = engine.begin().await.unwrap();
    for (key, value) in &rows {
        tx.put(table, key, value);
    }
    tx.commit().await.unwrap();
}

async fn keys_sort_as_unsigned_bytes_and_scans_keep_their_bounds(engine: &dyn Engine) {
    let sorted = keys();
    let mut shuffled = sorted.clone();
    shuffled.reverse();
    shuffled.swap(2, 7);
    put_all(engine, Table::Objects, shuffled.iter().map(|k| (k.clone(), k.clone())).collect()).await;
    let scan = |start: &'static [u8], end: Option<&'static [u8]>, limit| async move {
        let rows = engine.scan(Table::Objects, start, end, limit).await.unwrap();
        assert!(rows.iter().all(|(k, v)| k == v), "values follow their keys");
        rows.into_iter().map(|(k, _)| k).collect::<Vec<_>>()
    };
    assert_eq!(scan(b"", None, 100).await, sorted, "byte order");
    assert_eq!(scan(b"a", Some(b"a\xff"), 100).await, sorted[3..8], "prefix a: [a, a\\xff)");
    assert_eq!(scan(b"a\x00", Some(b"a\x01"), 100).await, sorted[4..6], "prefix a\\x00");
    assert_eq!(scan(b"\xff", None, 100).await, sorted[10..], "keys from 0xff");
    assert_eq!(scan(b"a\x00", None, 2).await, sorted[4..6], "limit");
    assert!(scan(b"b", Some(b"b"), 100).await.is_empty(), "empty range");
    assert!(scan(b"\xff\xff\x00", None, 100).await.is_empty(), "past the last key");
    assert!(scan(b"", None, 0).await.is_empty(), "limit 0");
    assert!(engine.scan(Table::Parts, b"", None, 100).await.unwrap().is_empty(), "other tables untouched");
}

async fn tables_are_separate_and_deletes_delete(engine: &dyn Engine) {
    let mut tx = engine.begin().await.unwrap();
    tx.put(Table::Buckets, b"same", b"bucket");
    tx.put(Table::Keys, b"same", b"key");
    tx.commit().await.unwrap();
    assert_eq!(engine.get(Table::Buckets, b"same").await.unwrap().as_deref(), Some(&b"bucket"[..]));
    assert_eq!(engine.get(Table::Keys, b"same").await.unwrap().as_deref(), Some(&b"key"[..]));
    assert_eq!(engine.get(Table::Meta, b"same").await.unwrap(), None);

    let mut tx = engine.begin().await.unwrap();
    tx.delete(Table::Buckets, b"same");
    tx.delete(Table::Buckets, b"never there");
    tx.put(Table::Keys, b"same", b"replaced");
    tx.commit().await.unwrap();
    assert_eq!(engine.get(Table::Buckets, b"same").await.unwrap(), None);
    assert_eq!(engine.get(Table::Keys, b"same").await.unwrap().as_deref(), Some(&b"replaced"[..]));
}

async fn a_transaction_reads_committed_data_and_a_dropped_one_writes_nothing(engine: &dyn Engine) {
    put_all(engine, Table::Meta, vec![(b"seen".to_vec(), b"old".to_vec())]).await;
    let mut tx = engine.begin().await.unwrap();
    tx.put(Table::Meta, b"seen", b"new");
    tx.put(Table::Meta, b"fresh", b"x");
    assert_eq!(tx.get(Table::Meta, b"seen").await.unwrap().as_deref(), Some(&b"old"[..]), "own writes are not read");
    assert_eq!(tx.get(Table::Meta, b"fresh").await.unwrap(), None);
    drop(tx);
    assert_eq!(engine.get(Table::Meta, b"seen").await.unwrap().as_deref(), Some(&b"old"[..]));
    assert_eq!(engine.get(Table::Meta, b"fresh").await.unwrap(), None, "a dropped transaction writes nothing");
    // And it let go of whatever it held: the next one commits.
    put_all(engine, Table::Meta, vec![(b"after".to_vec(), b"y".to_vec())]).await;
}

async fn a_transaction_never_sees_part_of_a_later_commit(engine: &dyn Engine) {
    put_all(engine, Table::Meta, vec![(b"pair/a".to_vec(), b"1".to_vec()), (b"pair/b".to_vec(), b"1".to_vec())]).await;
    let mut reader = engine.begin().await.unwrap();
    assert_eq!(reader.get(Table::Meta, b"pair/a").await.unwrap().as_deref(), Some(&b"1"[..]));
    put_all(engine, Table::Meta, vec![(b"pair/a".to_vec(), b"2".to_vec()), (b"pair/b".to_vec(), b"2".to_vec())]).await;
    // The value as of the transaction's start, or a conflict (the caller runs it again): never
    // the other half of the pair.
    match reader.get(Table::Meta, b"pair/b").await {
        Ok(value) => assert_eq!(value.as_deref(), Some(&b"1"[..])),
        Err(Error::Conflict(_)) => {}
        Err(other) => panic!("{other}"),
    }
    match reader.scan(Table::Meta, b"pair/", Some(b"pair0"), 10).await {
        Ok(rows) => assert!(rows.iter().all(|(_, value)| value == b"1"), "{rows:?}"),
        Err(Error::Conflict(_)) => {}
        Err(other) => panic!("{other}"),
    }
}

/// Write skew: each reads one key and writes the other. Both committing would be a result
/// no serial order gives.
async fn of_two_transactions_each_writing_what_the_other_read_one_fails(engine: &dyn Engine) {
    put_all(engine, Table::Meta, vec![(b"skew/a".to_vec(), b"0".to_vec()), (b"skew/b".to_vec(), b"0".to_vec())]).await;
    let mut one = engine.begin().await.unwrap();
    let mut two = engine.begin().await.unwrap();
    one.get(Table::Meta, b"skew/a").await.unwrap();
    two.get(Table::Meta, b"skew/b").await.unwrap();
    one.put(Table::Meta, b"skew/b", b"1");
    two.put(Table::Meta, b"skew/a", b"2");
    let outcomes = [one.commit().await, two.commit().await];
    let failed = outcomes.iter().filter(|outcome| matches!(outcome, Err(Error::Conflict(_)))).count();
    assert!(failed == 1 && outcomes.iter().any(Result::is_ok), "{outcomes:?}");
    let a = engine.get(Table::Meta, b"skew/a").await.unwrap().unwrap();
    let b = engine.get(Table::Meta, b"skew/b").await.unwrap().unwrap();
    let expected: (&[u8], &[u8]) = if outcomes[0].is_ok() { (b"0", b"1") } else { (b"2", b"0") };
    assert_eq!((a.as_slice(), b.as_slice()), expected);
}

async fn concurrent_commits_of_different_keys_all_land(engine: &Arc<dyn Engine>) {
    let writers = (0..64u32).map(|n| {
        let engine = engine.clone();
        tokio::spawn(async move {
            // Run again on a conflict: an engine may report one it cannot rule out.
            transaction(engine.as_ref(), move |tx| {
                async move {
                    tx.get(Table::Uploads, &n.to_be_bytes()).await?;
                    tx.put(Table::Uploads, &n.to_be_bytes(), b"x");
                    Ok(())
                }
                .boxed()
            })
            .await
        })
    });
    for writer in futures::future::join_all(writers).await {
        writer.unwrap().unwrap();
    }
    assert_eq!(engine.scan(Table::Uploads, b"", None, 100).await.unwrap().len(), 64);
}

/// Eight transactions, spread over `engines` (one engine, or several on one database), each
/// creating `race` if it is absent: exactly one wins, and every engine sees its value.
pub(crate) async fn of_racing_creators_exactly_one_wins(engines: &[Arc<dyn Engine>]) {
    let racers = (0..8u8).map(|id| {
        let engine = engines[usize::from(id) % engines.len()].clone();
        tokio::spawn(async move {
            transaction(engine.as_ref(), move |tx| {
                async move {
                    if tx.get(Table::Objects, b"race").await?.is_some() {
                        return Ok(false);
                    }
                    tx.put(Table::Objects, b"race", &[id]);
                    Ok(true)
                }
                .boxed()
            })
            .await
            .map(|won| (id, won))
        })
    });
    let outcomes: Vec<(u8, bool)> =
        futures::future::join_all(racers).await.into_iter().map(|r| r.unwrap().unwrap()).collect();
    let winners: Vec<u8> = outcomes.iter().filter(|(_, won)| *won).map(|(id, _)| *id).collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    for engine in engines {
        assert_eq!(engine.get(Table::Objects, b"race").await.unwrap(), Some(winners.clone()));
    }
}

async fn racing_increments_lose_no_update(engine: &Arc<dyn Engine>) {
    let workers = (0..8).map(|_| {
        let engine = engine.clone();
        tokio::spawn(async move {
            for _ in 0..10 {
                transaction(engine.as_ref(), |tx| {
                    async move {
                        let now = match tx.get(Table::Meta, b"counter").await? {
                            Some(bytes) => u64::from_le_bytes(bytes.try_into().unwrap()),
                            None => 0,
                        };
                        tx.put(Table::Meta, b"counter", &(now + 1).to_le_bytes());
                        Ok(())
                    }
                    .boxed()
                })
                .await
                .unwrap();
            }
        })
    });
    for worker in futures::future::join_all(workers).await {
        worker.unwrap();
    }
    let counter = engine.get(Table::Meta, b"counter").await.unwrap().unwrap();
    assert_eq!(u64::from_le_bytes(counter.try_into().unwrap()), 80);
}

const BATCH: u32 = 20_000;

fn batch_key(n: u32) -> Vec<u8> {
    let mut key = b"batch/".to_vec();
    key.extend_from_slice(&n.to_be_bytes());
    key
}

async fn large_batches_commit_whole(engine: &dyn Engine) {
    let rows = (0..BATCH).map(|n| (batch_key(n), vec![n as u8; 100])).collect();
    put_all(engine, Table::Gc, rows).await;
    let mut seen = 0u32;
    let mut start = batch_key(0);
    loop {
        let page = engine.scan(Table::Gc, &start, None, 1000).await.unwrap();
        for (key, value) in &page {
            assert_eq!((key, value), (&batch_key(seen), &vec![seen as u8; 100]));
            seen += 1;
        }
        let Some((last, _)) = page.last() else { break };
        start = last.clone();
        start.push(0);
    }
    assert_eq!(seen, BATCH);
}

async fn commits_survive_a_restart(engine: &dyn Engine) {
    let objects = engine.scan(Table::Objects, b"", None, 100).await.unwrap();
    assert_eq!(objects.len(), keys().len() + 1, "the sorted keys and the race's key");
    assert_eq!(engine.get(Table::Keys, b"same").await.unwrap().as_deref(), Some(&b"replaced"[..]));
    assert_eq!(engine.get(Table::Meta, b"fresh").await.unwrap(), None);
    let counter = engine.get(Table::Meta, b"counter").await.unwrap().unwrap();
    assert_eq!(u64::from_le_bytes(counter.try_into().unwrap()), 80);
    assert_eq!(engine.scan(Table::Gc, b"", None, usize::MAX).await.unwrap().len(), BATCH as usize);
    assert_eq!(engine.scan(Table::Uploads, b"", None, 100).await.unwrap().len(), 64);
}
