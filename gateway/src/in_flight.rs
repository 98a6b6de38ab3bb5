//! Blobs being written right now: registered before their first byte reaches a volume and
//! released only after the index commit that references them (or the failure that orphans
//! them). GC runs in the same process and never takes a registered blob for an orphan.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// The registry, shared by the S3 handlers and the GC job.
#[derive(Debug, Clone, Default)]
pub struct InFlight {
    ids: Arc<Mutex<HashSet<String>>>,
}

/// Keeps a blob registered until dropped.
#[derive(Debug)]
pub struct InFlightGuard {
    ids: Arc<Mutex<HashSet<String>>>,
    id: String,
}

impl InFlight {
    /// Registers `id` until the guard is dropped.
    pub fn register(&self, id: &str) -> InFlightGuard {
        if let Ok(mut ids) = self.ids.lock() {
            ids.insert(id.to_string());
        }
        InFlightGuard { ids: self.ids.clone(), id: id.to_string() }
    }

    /// The blobs registered now.
    pub fn snapshot(&self) -> HashSet<String> {
        self.ids.lock().map(|ids| ids.clone()).unwrap_or_default()
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if let Ok(mut ids) = self.ids.lock() {
            ids.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_register_until_dropped() {
        let in_flight = InFlight::default();
        let guard = in_flight.register("a");
        assert!(in_flight.snapshot().contains("a"));
        drop(guard);
        assert!(in_flight.snapshot().is_empty());
    }
}
