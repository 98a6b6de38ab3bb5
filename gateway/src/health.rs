//! Which volumes answer right now, as the gateway has seen it: every volume request reports
//! its outcome, and a background probe asks each volume for `/stats` every second. Placement
//! sends new writes only to volumes that are up, and reads try them first, so a dead or
//! stalled volume costs one timeout, not one per request.
//!
//! A volume goes down at once on a transport failure (refused connection, timeout, a write
//! it stopped reading) and after [`DOWN_AFTER_ERRORS`] error answers in a row; it comes back
//! up on the first request or probe it answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::volume_client::VolumeClient;

/// Error answers in a row (5xx) that take a volume out.
const DOWN_AFTER_ERRORS: u32 = 3;
/// How often every volume is probed.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// What went wrong with a volume request, as far as health is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// No connection, or no answer within a timeout: the volume is down or stalled.
    Unreachable,
    /// It answered, with a server error.
    ErrorAnswer,
    /// It refused the cluster secret: unusable until it accepts it.
    Refused,
}

#[derive(Debug, Default)]
struct State {
    errors_in_a_row: u32,
    down: bool,
}

/// Health of every volume, by URL; shared by all clones.
#[derive(Debug, Clone, Default)]
pub struct Health {
    volumes: Arc<Mutex<HashMap<String, State>>>,
}

impl Health {
    fn with_state<T>(&self, url: &str, f: impl FnOnce(&mut State) -> T) -> T {
        let mut volumes = self.volumes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(volumes.entry(url.to_string()).or_default())
    }

    /// The volume answered as expected.
    pub fn succeeded(&self, url: &str) {
        let came_back = self.with_state(url, |state| {
            let was_down = state.down;
            *state = State::default();
            was_down
        });
        if came_back {
            tracing::info!(%url, "volume is back up");
        }
        metrics::gauge!("cairn_volume_up", "volume" => url.to_string()).set(1.0);
    }

    /// A request to the volume failed.
    pub fn failed(&self, url: &str, fault: Fault, why: &dyn std::fmt::Display) {
        let went_down = self.with_state(url, |state| {
            state.errors_in_a_row += 1;
            let down = fault != Fault::ErrorAnswer || state.errors_in_a_row >= DOWN_AFTER_ERRORS;
            let went_down = down && !state.down;
            state.down |= down;
            went_down
        });
        if went_down {
            tracing::warn!(%url, %why, "volume is down; new writes go to the next volumes");
            metrics::gauge!("cairn_volume_up", "volume" => url.to_string()).set(0.0);
        }
    }

    /// Whether the volume is taken to be up (a volume never heard of is).
    pub fn is_up(&self, url: &str) -> bool {
        let volumes = self.volumes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        volumes.get(url).is_none_or(|state| !state.down)
    }
}

/// Probes every member's `/stats` each second until `shutdown`, so a volume that went down
/// is seen back within a second of answering again, even with no traffic. The probe names
/// the gateway (`gateway`, see [`crate::membership::gateway_name`]): the volumes then know a
/// gateway uses them, and an offline rebuild refuses to run.
pub async fn probe(cluster: Cluster, client: VolumeClient, gateway: String, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let urls: Vec<String> = cluster.membership().volumes.iter().map(|v| v.url.clone()).collect();
        // Every outcome is recorded by the client itself.
        futures::future::join_all(urls.iter().map(|url| client.probe(url, &gateway))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_is_down_at_once_errors_after_a_few_and_success_brings_it_back() {
        let health = Health::default();
        assert!(health.is_up("a"), "unknown volumes are up");
        health.failed("a", Fault::Unreachable, &"refused");
        assert!(!health.is_up("a"));
        health.failed("c", Fault::Refused, &"401");
        assert!(!health.is_up("c"), "a volume that rejects the cluster secret takes no writes");
        health.succeeded("a");
        assert!(health.is_up("a"));
        for _ in 1..DOWN_AFTER_ERRORS {
            health.failed("b", Fault::ErrorAnswer, &"500");
            assert!(health.is_up("b"));
        }
        health.failed("b", Fault::ErrorAnswer, &"500");
        assert!(!health.is_up("b"));
        assert!(health.is_up("a"));
    }
}
