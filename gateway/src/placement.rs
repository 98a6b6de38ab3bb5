//! Where an object's blobs go: weighted rendezvous hashing over the ring's volumes.
//!
//! Every volume scores `-weight / ln(u)` where `u ∈ (0, 1]` comes from a stable hash of
//! `(bucket, key, volume id)`; the `replicas` highest scores win, taking distinct zones first
//! when zones are set. Adding a volume only changes the placements in which the new volume
//! now wins, so about `1/(N+1)` of all placements move, and only onto the new volume.
//! The subvolume (disk) inside a volume is chosen the same way among its disks (equal weights),
//! so adding a disk moves only the blobs the new disk wins.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// One member of the ring as placement sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RingMember {
    /// Stable volume id.
    pub id: String,
    /// Relative capacity; 0 takes no new placements (drained).
    pub weight: f64,
    /// Failure domain; replicas prefer distinct zones.
    pub zone: Option<String>,
    /// Number of subvolumes (disks) of the volume.
    pub subvolumes: u32,
}

/// One replica's home: a volume (by index into the member slice) and a subvolume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slot {
    /// Index into the members given to [`place`].
    pub member: usize,
    /// Subvolume within that volume.
    pub subvolume: u32,
}

/// What every hash of a placement covers: `bucket \0 key \0 volume`.
fn hash_input(bucket: &str, key: &str, volume: &str) -> Vec<u8> {
    let mut input = Vec::with_capacity(bucket.len() + key.len() + volume.len() + 2);
    input.extend_from_slice(bucket.as_bytes());
    input.push(0);
    input.extend_from_slice(key.as_bytes());
    input.push(0);
    input.extend_from_slice(volume.as_bytes());
    input
}

fn hash(bucket: &str, key: &str, volume: &str, seed: u64) -> u64 {
    xxh3_64_with_seed(&hash_input(bucket, key, volume), seed)
}

/// The disk of `member` for `(bucket, key)`: the one with the highest hash (seeds 1, 2, …; seed 0
/// is the volume's score), lowest index on a tie.
fn subvolume(member: &RingMember, bucket: &str, key: &str) -> u32 {
    let input = hash_input(bucket, key, &member.id);
    (0..member.subvolumes.max(1))
        .max_by_key(|&disk| (xxh3_64_with_seed(&input, 1 + u64::from(disk)), std::cmp::Reverse(disk)))
        .unwrap_or(0)
}

fn score(member: &RingMember, bucket: &str, key: &str) -> f64 {
    if member.weight <= 0.0 {
        return f64::NEG_INFINITY;
    }
    // 53 random bits mapped into (0, 1]; ln(u) < 0 except at u = 1, where the score is +inf.
    let unit = ((hash(bucket, key, &member.id, 0) >> 11) + 1) as f64 / (1u64 << 53) as f64;
    -member.weight / unit.ln()
}

/// The slots for `(bucket, key)`: up to `replicas` distinct volumes, best first.
pub fn place(members: &[RingMember], bucket: &str, key: &str, replicas: usize) -> Vec<Slot> {
    let mut ranked: Vec<(f64, usize)> =
        members.iter().enumerate().filter(|(_, m)| m.weight > 0.0).map(|(i, m)| (score(m, bucket, key), i)).collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));

    let mut chosen: Vec<usize> = Vec::with_capacity(replicas);
    let mut zones_taken: Vec<&str> = Vec::new();
    // First pass: best volume of each zone not yet used; second pass: fill by score.
    for &(_, i) in &ranked {
        if chosen.len() == replicas {
            break;
        }
        if let Some(zone) = members[i].zone.as_deref() {
            if zones_taken.contains(&zone) {
                continue;
            }
            zones_taken.push(zone);
        }
        chosen.push(i);
    }
    for &(_, i) in &ranked {
        if chosen.len() == replicas {
            break;
        }
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }
    chosen.into_iter().map(|i| Slot { member: i, subvolume: subvolume(&members[i], bucket, key) }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};

    fn ring(n: usize) -> Vec<RingMember> {
        (0..n).map(|i| RingMember { id: format!("vol{i:02}"), weight: 1.0, zone: None, subvolumes: 2 }).collect()
    }

    fn ids(members: &[RingMember], slots: &[Slot]) -> Vec<String> {
        slots.iter().map(|s| members[s.member].id.clone()).collect()
    }

    /// Reference: the same ranking computed the slow, obvious way (no zones).
    fn naive(members: &[RingMember], bucket: &str, key: &str, replicas: usize) -> Vec<String> {
        let mut all: Vec<(f64, String)> = members.iter().map(|m| (score(m, bucket, key), m.id.clone())).collect();
        all.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap());
        all.into_iter().take(replicas).map(|(_, id)| id).collect()
    }

    proptest! {
        #[test]
        fn replicas_are_distinct_and_complete(key in ".{0,64}", n in 1usize..8, replicas in 1usize..4) {
            let members = ring(n);
            let slots = place(&members, "b", &key, replicas);
            prop_assert_eq!(slots.len(), replicas.min(n));
            let distinct: HashSet<_> = slots.iter().map(|s| s.member).collect();
            prop_assert_eq!(distinct.len(), slots.len());
            prop_assert!(slots.iter().all(|s| s.subvolume < 2));
            prop_assert_eq!(ids(&members, &slots), naive(&members, "b", &key, replicas));
        }

        #[test]
        fn adding_a_volume_only_moves_onto_it(key in ".{0,64}", n in 1usize..8) {
            let before = ring(n);
            let after = ring(n + 1);
            let old: HashSet<String> = ids(&before, &place(&before, "b", &key, 2)).into_iter().collect();
            let new: HashSet<String> = ids(&after, &place(&after, "b", &key, 2)).into_iter().collect();
            let newcomer = after[n].id.clone();
            for id in new.difference(&old) {
                prop_assert_eq!(id, &newcomer);
            }
        }
    }

    #[test]
    fn load_is_spread_evenly() {
        let members = ring(5);
        let mut counts: HashMap<usize, usize> = HashMap::new();
        let mut per_subvolume: HashMap<(usize, u32), usize> = HashMap::new();
        let keys = 100_000;
        for k in 0..keys {
            for slot in place(&members, "bucket", &format!("key-{k}"), 2) {
                *counts.entry(slot.member).or_default() += 1;
                *per_subvolume.entry((slot.member, slot.subvolume)).or_default() += 1;
            }
        }
        let expected = (keys * 2) as f64 / 5.0;
        for (&member, &count) in &counts {
            let deviation = (count as f64 - expected).abs() / expected;
            assert!(deviation < 0.03, "volume {member} has {count}, expected about {expected}");
        }
        for (&slot, &count) in &per_subvolume {
            let deviation = (count as f64 - expected / 2.0).abs() / (expected / 2.0);
            assert!(deviation < 0.04, "subvolume {slot:?} has {count}");
        }
    }

    #[test]
    fn adding_a_disk_moves_only_what_the_new_disk_takes() {
        let keys = 60_000;
        for disks in 1..5u32 {
            let before = RingMember { id: "vol".into(), weight: 1.0, zone: None, subvolumes: disks };
            let after = RingMember { subvolumes: disks + 1, ..before.clone() };
            let mut moved = 0;
            for k in 0..keys {
                let key = format!("key-{k}");
                let (old, new) = (subvolume(&before, "b", &key), subvolume(&after, "b", &key));
                if old != new {
                    assert_eq!(new, disks, "a blob that moves goes to the new disk");
                    moved += 1;
                }
            }
            let share = f64::from(moved) / f64::from(keys);
            let expected = 1.0 / f64::from(disks + 1);
            assert!((share - expected).abs() < 0.01, "{disks} → {} disks moved {share}", disks + 1);
        }
    }

    #[test]
    fn adding_a_volume_moves_about_one_in_n_plus_one() {
        let (before, after) = (ring(4), ring(5));
        let keys = 100_000;
        let mut moved = 0;
        for k in 0..keys {
            let key = format!("key-{k}");
            let old: HashSet<String> = ids(&before, &place(&before, "b", &key, 2)).into_iter().collect();
            let new: HashSet<String> = ids(&after, &place(&after, "b", &key, 2)).into_iter().collect();
            moved += new.difference(&old).count();
        }
        let fraction = moved as f64 / (keys * 2) as f64;
        assert!((fraction - 0.2).abs() < 0.01, "moved {fraction}, expected about 1/5");
    }

    #[test]
    fn weights_are_respected() {
        let mut members = ring(3);
        members[0].weight = 2.0;
        let mut counts = [0usize; 3];
        for k in 0..60_000 {
            counts[place(&members, "b", &format!("k{k}"), 1)[0].member] += 1;
        }
        let share = counts[0] as f64 / 60_000.0;
        assert!((share - 0.5).abs() < 0.02, "weight-2 volume got {share}");
    }

    #[test]
    fn drained_volume_gets_nothing() {
        let mut members = ring(3);
        members[1].weight = 0.0;
        for k in 0..1000 {
            assert!(place(&members, "b", &format!("k{k}"), 2).iter().all(|s| s.member != 1));
        }
    }

    #[test]
    fn zones_are_distinct_when_possible() {
        let mut members = ring(6);
        for (i, m) in members.iter_mut().enumerate() {
            m.zone = Some(format!("z{}", i % 3));
        }
        for k in 0..2000 {
            let slots = place(&members, "b", &format!("k{k}"), 3);
            let zones: HashSet<_> = slots.iter().map(|s| members[s.member].zone.clone()).collect();
            assert_eq!(zones.len(), 3);
        }
        // More replicas than zones: still distinct volumes.
        let slots = place(&members, "b", "k", 5);
        assert_eq!(slots.iter().map(|s| s.member).collect::<HashSet<_>>().len(), 5);
    }
}
