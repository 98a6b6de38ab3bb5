//! `cairn-admin volume …`: change the cluster's volumes online.

use clap::Subcommand;
use gateway::admin::volumes::{AddVolume, RemoveVolume, SetWeight, SetZone};
use gateway::index::records::Membership;

use crate::api::{Api, parse};

#[derive(Debug, Subcommand)]
pub(crate) enum VolumeCommand {
    /// Add a volume daemon (new writes use it at once; rebalance moves old data).
    Add {
        /// Its URL.
        url: String,
        /// Failure domain; replicas prefer distinct zones.
        #[arg(long)]
        zone: Option<String>,
        /// Share of new data relative to other volumes.
        #[arg(long)]
        weight: Option<f64>,
    },
    /// Set a volume's placement weight.
    Weight {
        /// Its URL.
        url: String,
        /// New weight (0 drains).
        weight: f64,
    },
    /// Set or clear a volume's zone (failure domain; replicas prefer distinct zones).
    Zone {
        /// Its URL.
        url: String,
        /// The zone.
        #[arg(required_unless_present = "clear")]
        zone: Option<String>,
        /// Clear the zone instead.
        #[arg(long, conflicts_with = "zone")]
        clear: bool,
    },
    /// Take no new data; the next rebalance moves everything off.
    Drain {
        /// Its URL.
        url: String,
    },
    /// Forget a volume that holds nothing any more (drain, rebalance and gc first).
    Remove {
        /// Its URL.
        url: String,
        /// The volume is gone for good: drop its copies from the records and let the
        /// repairer rebuild them from the other copies.
        #[arg(long)]
        force: bool,
    },
}

pub(crate) async fn volume(api: &Api, command: VolumeCommand, as_json: bool) -> Result<(), String> {
    let text = match command {
        VolumeCommand::Add { url, zone, weight } => api.post("/volumes", &AddVolume { url, zone, weight }).await?,
        VolumeCommand::Weight { url, weight } => api.post("/volumes/weight", &SetWeight { url, weight }).await?,
        VolumeCommand::Zone { url, zone, clear: _ } => api.post("/volumes/zone", &SetZone { url, zone }).await?,
        VolumeCommand::Drain { url } => api.post("/volumes/weight", &SetWeight { url, weight: 0.0 }).await?,
        VolumeCommand::Remove { url, force } => {
            let text = api.post("/volumes/remove", &RemoveVolume { url, force }).await?;
            if let Some(forgotten) = parse::<serde_json::Value>(&text)?.get("forgotten").filter(|f| !f.is_null())
                && !as_json
            {
                println!(
                    "dropped {} copies from the records; {} blobs queued for repair; {} blobs had no other copy (lost)",
                    forgotten["copies"], forgotten["repairs"], forgotten["lost"]
                );
            }
            text
        }
    };
    if as_json {
        println!("{text}");
        return Ok(());
    }
    let membership: Membership = parse(&text)?;
    println!("{:<34} {:<28} {:>6} {:<10} subvolumes", "volume", "url", "weight", "zone");
    for v in &membership.volumes {
        println!(
            "{:<34} {:<28} {:>6} {:<10} {}",
            v.id,
            v.url,
            v.weight,
            v.zone.as_deref().unwrap_or("-"),
            v.subvolumes
        );
    }
    Ok(())
}
