//! `cairn-volumed` settings: command-line flags, environment variables and an optional TOML
//! file (`--config`), as for the gateway. A flag or variable wins over the file; the file wins
//! over the defaults. `--print-config` shows the result.

use std::path::PathBuf;

use serde::Deserialize;

use crate::store::PackOptions;
use crate::subvolume::PACK_BUFFERS;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9101";

/// Flags of `cairn-volumed`; the same names (snake_case) are the keys of `--config`.
#[derive(Debug, Clone, Default, clap::Parser, Deserialize)]
#[command(
    name = "cairn-volumed",
    version,
    about = "Cairn volume daemon: stores blobs on local disks for the Cairn gateway."
)]
#[serde(default, deny_unknown_fields)]
pub struct VolumedArgs {
    /// TOML file with any of these settings.
    #[arg(long, env = "CAIRN_VOLUMED_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Print the settings in effect (as TOML, secrets left out) and exit.
    #[arg(long)]
    #[serde(skip)]
    pub print_config: bool,
    /// Address to listen on [default: 127.0.0.1:9101].
    #[arg(long, env = "CAIRN_VOLUMED_LISTEN")]
    pub listen: Option<String>,
    /// Data directory; repeat once per disk (subvolume). Order matters and is checked. In the
    /// file: `dirs = ["/srv/disk1/cairn", …]`.
    #[arg(long = "dir", env = "CAIRN_VOLUMED_DIRS", value_delimiter = ',')]
    pub dirs: Vec<PathBuf>,
    /// Shared secret the gateway presents (`Authorization: Bearer …`).
    #[arg(long, env = "CAIRN_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// File holding the cluster secret (kept out of the process list; systemd credentials).
    #[arg(long, env = "CAIRN_CLUSTER_SECRET_FILE", conflicts_with = "cluster_secret")]
    pub cluster_secret_file: Option<PathBuf>,
    /// Make the directories Cairn subvolumes if they are not yet (first start on new disks);
    /// without it a missing or foreign directory is refused, so an unmounted disk is noticed.
    #[arg(long)]
    pub init: bool,
    /// Accept several --dir on one file system (tests, trying Cairn out).
    #[arg(long)]
    pub allow_shared_fs: bool,
    /// Blobs whose size is announced and at most this many bytes are packed into append-only
    /// segment files (one group-committed fsync per batch instead of two per blob); larger ones,
    /// and ones of unknown size, get a file each. 0 turns packing off (segments already
    /// written stay readable) [default: 1048576].
    #[arg(long, env = "CAIRN_VOLUMED_PACK_THRESHOLD")]
    pub pack_threshold: Option<u64>,
    /// Bytes at which a segment is full and the next one started [default: 1073741824].
    #[arg(long, env = "CAIRN_VOLUMED_SEGMENT_SIZE")]
    pub segment_size: Option<u64>,
    /// Segments (other than the one being written) whose live records fall below this share of
    /// their size are compacted: live records copied forward, the segment removed. 0 never
    /// [default: 0.5].
    #[arg(long, env = "CAIRN_VOLUMED_COMPACT_BELOW")]
    pub compact_below: Option<f64>,
    /// Bytes per second compaction may read and copy, per subvolume; 0 is no limit
    /// [default: 33554432].
    #[arg(long, env = "CAIRN_VOLUMED_COMPACT_RATE")]
    pub compact_rate: Option<u64>,
    /// Log lines as text or as JSON objects (`RUST_LOG` filters them). Not read from the file:
    /// logging starts before it is read.
    #[arg(long, env = "CAIRN_LOG_FORMAT", value_enum, default_value_t)]
    #[serde(skip)]
    pub log_format: crate::serve::LogFormat,
}

/// Resolved, validated settings.
#[derive(Clone)]
pub struct VolumedSettings {
    /// Listen address.
    pub listen: String,
    /// Data directories, one per subvolume, in order.
    pub dirs: Vec<PathBuf>,
    /// The cluster secret.
    pub cluster_secret: String,
    /// Initialise directories that are not subvolumes yet.
    pub init: bool,
    /// Accept several directories on one file system.
    pub allow_shared_fs: bool,
    /// Packing of small blobs.
    pub pack: PackOptions,
}

impl std::fmt::Debug for VolumedSettings {
    /// The secret stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumedSettings")
            .field("listen", &self.listen)
            .field("dirs", &self.dirs)
            .field("init", &self.init)
            .field("allow_shared_fs", &self.allow_shared_fs)
            .field("pack", &self.pack)
            .finish_non_exhaustive()
    }
}

impl VolumedArgs {
    /// Fills unset flags from the `--config` file, applies defaults and validates.
    pub fn resolve(self) -> Result<VolumedSettings, String> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
                toml::from_str::<VolumedArgs>(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => VolumedArgs::default(),
        };
        let dirs = if self.dirs.is_empty() { file.dirs } else { self.dirs };
        if dirs.is_empty() {
            return Err("at least one --dir (or `dirs` in --config) is required".into());
        }
        let read = |path: PathBuf| {
            std::fs::read_to_string(&path)
                .map(|text| text.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| format!("{}: {e}", path.display()))
        };
        // A flag (or its variable) wins over the file, whichever of value or file each names.
        let cluster_secret = match (self.cluster_secret, self.cluster_secret_file) {
            (Some(secret), _) => secret,
            (None, Some(path)) => read(path)?,
            (None, None) => match (file.cluster_secret, file.cluster_secret_file) {
                (Some(secret), _) => secret,
                (None, Some(path)) => read(path)?,
                (None, None) => String::new(),
            },
        };
        if cluster_secret.is_empty() {
            return Err("--cluster-secret (or --cluster-secret-file) is required and must not be empty".into());
        }
        let defaults = PackOptions::default();
        let pack = PackOptions {
            pack_threshold: self.pack_threshold.or(file.pack_threshold).unwrap_or(defaults.pack_threshold),
            segment_size: self.segment_size.or(file.segment_size).unwrap_or(defaults.segment_size),
            compact_below: self.compact_below.or(file.compact_below).unwrap_or(defaults.compact_below),
            compact_rate: self.compact_rate.or(file.compact_rate).unwrap_or(defaults.compact_rate),
        };
        if !(0.0..=1.0).contains(&pack.compact_below) {
            return Err("--compact-below must be between 0 and 1".into());
        }
        if pack.pack_threshold > PACK_BUFFERS {
            // Bodies are buffered whole before packing, within that budget per subvolume.
            return Err(format!("--pack-threshold must be at most {PACK_BUFFERS} bytes"));
        }
        if pack.segment_size == 0 {
            return Err("--segment-size must be more than 0".into());
        }
        Ok(VolumedSettings {
            listen: self.listen.or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.into()),
            dirs,
            cluster_secret,
            init: self.init || file.init,
            allow_shared_fs: self.allow_shared_fs || file.allow_shared_fs,
            pack,
        })
    }
}

impl VolumedSettings {
    /// The settings as a `--config` file would give them, the secret left out.
    pub fn to_toml(&self) -> String {
        let mut table = toml::Table::new();
        table.insert("listen".into(), self.listen.clone().into());
        let dirs = self.dirs.iter().map(|d| toml::Value::from(d.display().to_string())).collect::<Vec<_>>();
        table.insert("dirs".into(), dirs.into());
        table.insert("init".into(), self.init.into());
        table.insert("allow_shared_fs".into(), self.allow_shared_fs.into());
        // TOML integers are i64; these fit unless set absurdly, and then the text says so.
        let int = |n: u64| i64::try_from(n).map_or_else(|_| toml::Value::from(n.to_string()), toml::Value::from);
        table.insert("pack_threshold".into(), int(self.pack.pack_threshold));
        table.insert("segment_size".into(), int(self.pack.segment_size));
        table.insert("compact_below".into(), self.pack.compact_below.into());
        table.insert("compact_rate".into(), int(self.pack.compact_rate));
        format!("# cluster_secret is set (not shown)\n{table}")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> VolumedArgs {
        VolumedArgs::try_parse_from(std::iter::once("cairn-volumed").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn flags_win_over_the_file_and_the_printed_config_reads_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "from-file\n").unwrap();
        let config = dir.path().join("volumed.toml");
        std::fs::write(
            &config,
            format!(
                "listen = '0.0.0.0:9101'\ndirs = ['/a', '/b']\ncluster_secret_file = '{}'\ninit = true\n",
                secret.display()
            ),
        )
        .unwrap();
        let from_file = parse(&["--config", config.to_str().unwrap()]).resolve().unwrap();
        assert_eq!(from_file.listen, "0.0.0.0:9101");
        assert_eq!(from_file.dirs, [PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(from_file.cluster_secret, "from-file");
        assert!(from_file.init && !from_file.allow_shared_fs);

        let flags = parse(&["--config", config.to_str().unwrap(), "--dir", "/c", "--cluster-secret", "flag"]);
        let settings = flags.resolve().unwrap();
        assert_eq!(settings.dirs, [PathBuf::from("/c")]);
        assert_eq!(settings.cluster_secret, "flag");
        assert!(!format!("{settings:?}").contains("flag\""), "the secret is not in Debug");

        let printed = settings.to_toml();
        assert!(!printed.contains("= \"flag\""), "{printed}");
        let again = dir.path().join("printed.toml");
        std::fs::write(&again, &printed).unwrap();
        let reread = parse(&["--config", again.to_str().unwrap(), "--cluster-secret", "flag"]).resolve().unwrap();
        assert_eq!(reread.to_toml(), printed);
    }

    #[test]
    fn packing_is_configured_by_flag_or_file_and_printed() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("volumed.toml");
        std::fs::write(&config, "dirs = ['/a']\ncluster_secret = 's'\npack_threshold = 4096\nsegment_size = 65536\n")
            .unwrap();
        let from_file = parse(&["--config", config.to_str().unwrap()]).resolve().unwrap();
        assert_eq!((from_file.pack.pack_threshold, from_file.pack.segment_size), (4096, 65536));
        let flags = parse(&["--config", config.to_str().unwrap(), "--pack-threshold", "0"]).resolve().unwrap();
        assert_eq!((flags.pack.pack_threshold, flags.pack.segment_size), (0, 65536));
        let printed = flags.to_toml();
        assert!(printed.contains("pack_threshold = 0") && printed.contains("segment_size = 65536"), "{printed}");
        let defaults = parse(&["--dir", "/a", "--cluster-secret", "s"]).resolve().unwrap();
        assert_eq!(defaults.pack, PackOptions::default());
        let huge = parse(&["--dir", "/a", "--cluster-secret", "s", "--pack-threshold", "1000000000"]).resolve();
        assert!(huge.unwrap_err().contains("--pack-threshold"));
        assert!(parse(&["--dir", "/a", "--cluster-secret", "s", "--segment-size", "0"]).resolve().is_err());
        assert!(parse(&["--dir", "/a", "--cluster-secret", "s", "--compact-below", "1.5"]).resolve().is_err());
        let compaction =
            parse(&["--config", config.to_str().unwrap(), "--compact-below", "0.25", "--compact-rate", "1000"]);
        let compaction = compaction.resolve().unwrap();
        assert_eq!((compaction.pack.compact_below, compaction.pack.compact_rate), (0.25, 1000));
        let printed = compaction.to_toml();
        assert!(printed.contains("compact_below = 0.25") && printed.contains("compact_rate = 1000"), "{printed}");
    }

    #[test]
    fn missing_dirs_or_secret_are_refused() {
        assert!(parse(&["--cluster-secret", "s"]).resolve().unwrap_err().contains("--dir"));
        assert!(parse(&["--dir", "/a"]).resolve().unwrap_err().contains("--cluster-secret"));
        assert!(parse(&["--dir", "/a", "--cluster-secret", ""]).resolve().is_err());
    }
}
