//! Recovery and group commit of packed segments.

use std::path::Path;

use super::*;
use crate::backend::BlobStore;
use crate::backend::conformance::{body, data, id, read};
use crate::store::PackOptions;
use crate::subvolume::Subvolume;

fn open(root: &Path) -> Subvolume {
    let options = PackOptions { pack_threshold: 64 * 1024, segment_size: 1 << 30, ..PackOptions::default() };
    Subvolume::open(root, &options).unwrap()
}

/// Writes blobs `0..n` (sizes vary) and returns each one's data.
async fn write_n(store: &Subvolume, n: u32) -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    for i in 0..n {
        let data = data(u64::from(i) * 37 + 5, i);
        store.write(&id(i), br#"{"m":1}"#, Some(data.len() as u64), body(&data)).await.unwrap();
        all.push(data);
    }
    all
}

async fn survivors(store: &Subvolume, written: &[Vec<u8>]) -> Vec<u32> {
    let mut alive = Vec::new();
    for (i, data) in written.iter().enumerate() {
        match read(store, &id(i as u32), 0, data.len() as u64).await {
            Ok(got) => {
                assert_eq!(&got, data, "blob {i} readable but wrong");
                alive.push(i as u32);
            }
            Err(Error::NotFound) => {}
            Err(err) => panic!("blob {i}: {err}"),
        }
    }
    let listed = store.list_ids("", 1000).await.unwrap();
    assert_eq!(listed, alive.iter().map(|&i| id(i)).collect::<Vec<_>>(), "listing matches what reads");
    alive
}

#[tokio::test]
async fn a_torn_last_record_is_cut_off_at_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let n = 6;
    let store = open(dir.path());
    let written = write_n(&store, n).await;
    let (segment, base) = store.locate(&id(n - 1));
    drop(store);
    let whole = std::fs::read(&segment).unwrap();
    let last_start = base - HEADER_LEN;
    for cut in last_start..whole.len() as u64 {
        std::fs::write(&segment, &whole[..cut as usize]).unwrap();
        let store = open(dir.path());
        assert_eq!(survivors(&store, &written).await, (0..n - 1).collect::<Vec<_>>(), "cut at {cut}");
        drop(store);
        assert_eq!(std::fs::metadata(&segment).unwrap().len(), last_start, "torn tail cut off (cut at {cut})");
    }
    std::fs::write(&segment, &whole).unwrap();
    let store = open(dir.path());
    assert_eq!(survivors(&store, &written).await, (0..n).collect::<Vec<_>>());
    drop(store);
    // Appends after a cut land where the good records end, and survive another reopen.
    std::fs::write(&segment, &whole[..last_start as usize + 10]).unwrap();
    let store = open(dir.path());
    let again = data(50, 9);
    store.write(&id(n - 1), b"{}", Some(50), body(&again)).await.unwrap();
    drop(store);
    let store = open(dir.path());
    let mut expected = written.clone();
    expected[n as usize - 1] = again;
    assert_eq!(survivors(&store, &expected).await, (0..n).collect::<Vec<_>>());
}

#[tokio::test]
async fn damage_inside_a_segment_loses_only_the_damaged_record() {
    let dir = tempfile::tempdir().unwrap();
    let n = 8;
    let store = open(dir.path());
    let written = write_n(&store, n).await;
    let starts: Vec<u64> = (0..n).map(|i| store.locate(&id(i)).1 - HEADER_LEN).collect();
    let (segment, _) = store.locate(&id(0));
    drop(store);
    let whole = std::fs::read(&segment).unwrap();
    // Inside record 0's header (its magic), record 3's data, record 5's trailing CRC: each is
    // lost alone, and the records after it are found again by their magic and CRCs.
    let record_end = |i: u32| if i + 1 < n { starts[i as usize + 1] } else { whole.len() as u64 };
    for (victim, at) in [(0, starts[0]), (3, starts[3] + HEADER_LEN + 7), (5, record_end(5) - 1)] {
        let mut bytes = whole.clone();
        bytes[at as usize] ^= 0x20;
        std::fs::write(&segment, &bytes).unwrap();
        let store = open(dir.path());
        let alive = survivors(&store, &written).await;
        assert_eq!(alive, (0..n).filter(|&i| i != victim).collect::<Vec<_>>(), "damage in record {victim}");
        drop(store);
        assert_eq!(std::fs::read(&segment).unwrap(), bytes, "damage in the middle is left in place, not cut");
    }
}

#[tokio::test]
async fn deletes_and_rewrites_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let written = write_n(&store, 4).await;
    store.delete(&id(1)).await.unwrap();
    store.delete(&id(2)).await.unwrap();
    let again = data(10, 3);
    store.write(&id(2), b"{}", Some(10), body(&again)).await.unwrap();
    drop(store);
    let store = open(dir.path());
    let mut expected = written;
    expected[2] = again;
    assert_eq!(survivors(&store, &expected).await, [0, 2, 3]);
    assert!(matches!(store.delete(&id(1)).await, Err(Error::NotFound)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_share_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let writes = (0..200u32).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let data = data(4096, i);
            store.write(&id(i), b"{}", Some(4096), body(&data)).await.unwrap();
        })
    });
    for write in futures::future::join_all(writes).await {
        write.unwrap();
    }
    let syncs = store.packed_syncs();
    assert!(syncs < 200, "{syncs} syncs for 200 concurrent writes");
    assert_eq!(store.list_ids("", 1000).await.unwrap().len(), 200);
}

mod compaction {
    use std::collections::BTreeMap;
    use std::time::Instant;

    use sha2::{Digest as _, Sha256};

    use super::*;
    use crate::packed::writer::Op;

    fn open_small(root: &Path) -> Subvolume {
        // No background passes: the tests run compaction themselves.
        let options =
            PackOptions { pack_threshold: 64 * 1024, segment_size: 4096, compact_below: 0.0, compact_rate: 0 };
        Subvolume::open(root, &options).unwrap()
    }

    fn compact(store: &Subvolume, compaction: Compaction) -> Report {
        // On a thread of its own, as in the daemon: it waits for the writer.
        std::thread::scope(|s| s.spawn(|| store.packed().unwrap().compact_now(&compaction)).join().unwrap()).unwrap()
    }

    const HALF: Compaction = Compaction { below: 0.5, rate: 0, stop_before_unlink: false };

    /// Every expected blob reads back whole with the SHA-256 of its data; the listing is exactly them.
    async fn check(store: &Subvolume, expected: &BTreeMap<u32, Vec<u8>>) {
        for (&n, data) in expected {
            let blob = store.open(&id(n)).await.unwrap();
            assert_eq!(blob.footer.sha256, <[u8; 32]>::from(Sha256::digest(data)), "blob {n}");
            assert_eq!(&read(store, &id(n), 0, data.len() as u64).await.unwrap(), data, "blob {n}");
        }
        let listed = store.list_ids("", 10_000).await.unwrap();
        assert_eq!(listed, expected.keys().map(|&n| id(n)).collect::<Vec<_>>());
    }

    fn segment_bytes(root: &Path) -> u64 {
        let entries = std::fs::read_dir(root.join(SEGMENT_DIR)).unwrap();
        entries.map(|e| e.unwrap().metadata().unwrap().len()).sum()
    }

    /// Blobs 0..8, then 100..160 with four in five deleted (segments mostly dead). Blob 0 is
    /// deleted among those: its put stays in segment 1, which stays mostly live, and its delete
    /// record lands in a later segment that is mostly dead.
    async fn fill(store: &Subvolume) -> BTreeMap<u32, Vec<u8>> {
        let mut expected = BTreeMap::new();
        for n in (0..8).chain(100..160) {
            let data = data(300 + u64::from(n % 13) * 17, n);
            store.write(&id(n), b"{}", Some(data.len() as u64), body(&data)).await.unwrap();
            expected.insert(n, data);
            if n == 120 {
                store.delete(&id(0)).await.unwrap();
                expected.remove(&0);
            }
        }
        for n in (100..160).filter(|n| n % 5 != 0) {
            store.delete(&id(n)).await.unwrap();
            expected.remove(&n);
        }
        expected
    }

    #[tokio::test]
    async fn mostly_dead_segments_are_rewritten_and_every_survivor_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_small(dir.path());
        let expected = fill(&store).await;
        let before = segment_bytes(dir.path());
        let rate = 200_000;
        let started = Instant::now();
        let report = compact(&store, Compaction { rate, ..HALF });
        let took = started.elapsed().as_secs_f64();
        assert!(!report.removed.is_empty() && report.copied > 0, "{report:?}");
        assert!(took >= report.read as f64 / rate as f64 * 0.9, "{took}s for {} bytes at {rate}/s", report.read);
        assert!(segment_bytes(dir.path()) < before / 2, "{before} -> {}", segment_bytes(dir.path()));
        // Segment 1 holds blob 0's put and stays (mostly live): the delete record hiding that put
        // was carried forward when its own segment was compacted.
        assert!(store.packed().unwrap().segments().contains(&1));
        check(&store, &expected).await;
        assert!(matches!(store.open(&id(0)).await, Err(Error::NotFound)));
        drop(store);
        let store = open_small(dir.path());
        check(&store, &expected).await;
        assert!(matches!(store.open(&id(0)).await, Err(Error::NotFound)), "a compacted delete came undone");
        // Nothing left to do.
        assert_eq!(compact(&store, HALF).removed, Vec::<u32>::new());
    }

    #[tokio::test]
    async fn a_crash_between_copy_and_unlink_loses_nothing_and_lists_no_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_small(dir.path());
        let expected = fill(&store).await;
        let segments = store.packed().unwrap().segments();
        let report = compact(&store, Compaction { stop_before_unlink: true, ..HALF });
        assert!(report.removed.is_empty() && report.copied > 0, "{report:?}");
        check(&store, &expected).await;
        drop(store);
        // Originals and copies both on disk; the copies, later, win.
        let store = open_small(dir.path());
        let after = store.packed().unwrap().segments();
        assert!(segments.iter().all(|n| after.contains(n)), "{segments:?} -> {after:?}");
        check(&store, &expected).await;
        assert!(matches!(store.open(&id(0)).await, Err(Error::NotFound)));
        // The next pass removes what the interrupted one left.
        let report = compact(&store, HALF);
        assert!(!report.removed.is_empty(), "{report:?}");
        check(&store, &expected).await;
        drop(store);
        let store = open_small(dir.path());
        check(&store, &expected).await;
        assert!(matches!(store.open(&id(0)).await, Err(Error::NotFound)));
    }

    /// Eight writers each overwrite and delete five blobs of their own and read all five back
    /// after every change, while compaction passes run back to back on a thread of their own:
    /// every read sees exactly the writer's last change, never an older copy or a gap; then,
    /// and after reopening, the store holds exactly the survivors.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn compaction_under_concurrent_reads_and_writes_never_shows_a_stale_or_missing_blob() {
        use std::sync::atomic::{AtomicBool, Ordering};

        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open_small(dir.path()));
        let stop = Arc::new(AtomicBool::new(false));
        let compactor = {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut removed, mut copied) = (0, 0);
                while !stop.load(Ordering::Relaxed) {
                    let report = store.packed().unwrap().compact_now(&HALF).unwrap();
                    (removed, copied) = (removed + report.removed.len(), copied + report.copied);
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                (removed, copied)
            })
        };
        let writers = (0..8u32).map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                let keys: Vec<u32> = (0..5).map(|k| writer * 1000 + k).collect();
                let (mut current, mut written): (BTreeMap<u32, Vec<u8>>, u64) = (BTreeMap::new(), 0);
                for round in 0..60u32 {
                    for (k, &n) in keys.iter().enumerate() {
                        if (round as usize + k) % 4 == 3 && current.remove(&n).is_some() {
                            store.delete(&id(n)).await.unwrap();
                        } else {
                            let data = data(200 + u64::from((round * 7 + n) % 50) * 13, round * 10_000 + n);
                            store.write(&id(n), b"{}", Some(data.len() as u64), body(&data)).await.unwrap();
                            written += data.len() as u64;
                            current.insert(n, data);
                        }
                        for &m in &keys {
                            match (current.get(&m), read(&*store, &id(m), 0, 1 << 20).await) {
                                (Some(want), Ok(got)) => assert_eq!(&got, want, "blob {m} in round {round}"),
                                (None, Err(Error::NotFound)) => {}
                                (want, got) => {
                                    panic!(
                                        "blob {m} in round {round}: want {:?} bytes, got {:?}",
                                        want.map(Vec::len),
                                        got.map(|g| g.len())
                                    )
                                }
                            }
                        }
                    }
                }
                (current, written)
            })
        });
        let (mut expected, mut written) = (BTreeMap::new(), 0);
        for writer in futures::future::join_all(writers).await {
            let (current, bytes) = writer.unwrap();
            expected.extend(current);
            written += bytes;
        }
        stop.store(true, Ordering::Relaxed);
        let (removed, copied) = compactor.join().unwrap();
        assert!(removed > 10 && copied > 0, "compaction removed {removed} segments, copied {copied} records");
        // Space is freed: what is left is a small share of everything written.
        compact(&store, HALF);
        let left = segment_bytes(dir.path());
        assert!(left < written / 10, "{left} bytes of segments left after writing {written}");
        check(&store, &expected).await;
        drop(store);
        let store = open_small(dir.path());
        check(&store, &expected).await;
    }

    #[tokio::test]
    async fn a_copy_or_carried_delete_never_undoes_a_newer_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_small(dir.path());
        let (old, new) = (data(100, 1), data(120, 2));
        store.write(&id(1), b"{}", Some(100), body(&old)).await.unwrap();
        let packed = store.packed().unwrap();
        let raw = raw_id(&id(1)).unwrap();
        let stale = packed.lookup(&raw).unwrap().0;
        store.write(&id(1), b"{}", Some(120), body(&new)).await.unwrap();
        let ops = packed.inner.ops.clone();
        let (copied, carried) = std::thread::scope(|s| {
            s.spawn(|| {
                let file = packed.inner.lookup(&raw).unwrap().1;
                let (header, bytes) = record::read_record(&file, stale.offset, u64::MAX, true).unwrap().unwrap();
                assert_eq!(header.id, raw);
                let (done, answer) = oneshot::channel();
                ops.blocking_send(Op::Copy { id: raw, from: stale, record: bytes, done }).unwrap();
                let copied = answer.blocking_recv().unwrap().unwrap();
                let (done, answer) = oneshot::channel();
                ops.blocking_send(Op::Tombstone { id: raw, done }).unwrap();
                (copied, answer.blocking_recv().unwrap().unwrap())
            })
            .join()
            .unwrap()
        });
        assert!(!copied && !carried, "stale copy {copied}, tombstone over a live blob {carried}");
        drop(ops);
        assert_eq!(read(&store, &id(1), 0, 120).await.unwrap(), new);
        drop(store);
        let store = open_small(dir.path());
        assert_eq!(read(&store, &id(1), 0, 120).await.unwrap(), new);
    }
}
