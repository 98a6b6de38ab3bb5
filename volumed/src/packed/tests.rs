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
