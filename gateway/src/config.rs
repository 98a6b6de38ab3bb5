//! Gateway settings: command-line flags, environment variables, and an optional TOML file.
//! A flag or variable wins over the file; the file wins over the defaults.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::time::parse_duration;
use crate::volume_client::Timeouts;

/// Flags of `cairn-gateway serve`; the same names (snake_case) are the keys of `--config`.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeArgs {
    /// TOML file with any of these settings.
    #[arg(long, env = "CAIRN_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Print the settings in effect (as TOML, secrets left out) and exit.
    #[arg(long)]
    #[serde(skip)]
    pub print_config: bool,
    /// S3 listen address [default: 127.0.0.1:9000].
    #[arg(long, env = "CAIRN_LISTEN")]
    pub listen: Option<String>,
    /// Admin API listen address [default: 127.0.0.1:9001].
    #[arg(long, env = "CAIRN_ADMIN_LISTEN")]
    pub admin_listen: Option<String>,
    /// Index directory (RocksDB); the same as `--index rocksdb:DIR`.
    #[arg(long, env = "CAIRN_DB")]
    pub db: Option<PathBuf>,
    /// Where the index lives: `rocksdb:DIR` (embedded) or `postgres://USER:PASSWORD@HOST/DB`
    /// (PostgreSQL, shared by every gateway).
    #[arg(long, env = "CAIRN_INDEX", hide_env_values = true)]
    pub index: Option<String>,
    /// Volume daemon URLs, comma-separated.
    #[arg(long, env = "CAIRN_VOLUMES", value_delimiter = ',')]
    pub volumes: Vec<String>,
    /// Copies of every object [default: 2, at most the number of volumes].
    #[arg(long, env = "CAIRN_REPLICAS")]
    pub replicas: Option<usize>,
    /// Replicas that must confirm a write before it is acknowledged [default: a majority of
    /// --replicas]. A write that reaches fewer than --replicas (but the quorum) is
    /// acknowledged and repaired to full count in the background.
    #[arg(long, env = "CAIRN_WRITE_QUORUM")]
    pub write_quorum: Option<usize>,
    /// Time to connect to a volume [default: 2s].
    #[arg(long, env = "CAIRN_VOLUME_CONNECT_TIMEOUT", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "duration_or_seconds")]
    pub volume_connect_timeout: Option<Duration>,
    /// Time for a volume to start answering a request (a write: after its last byte) [default: 10s].
    #[arg(long, env = "CAIRN_VOLUME_TIMEOUT", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "duration_or_seconds")]
    pub volume_timeout: Option<Duration>,
    /// Longest pause of a body moving to or from a volume before the volume is dropped from
    /// that request [default: 10s].
    #[arg(long, env = "CAIRN_VOLUME_IDLE_TIMEOUT", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "duration_or_seconds")]
    pub volume_idle_timeout: Option<Duration>,
    /// Secret shared with the volume daemons.
    #[arg(long, env = "CAIRN_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// Root access key id.
    #[arg(long, env = "CAIRN_ACCESS_KEY")]
    pub access_key: Option<String>,
    /// Root secret access key.
    #[arg(long, env = "CAIRN_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Token for the admin API; without one the admin API refuses every request.
    #[arg(long, env = "CAIRN_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// File holding the cluster secret (kept out of the process list; systemd credentials).
    #[arg(long, env = "CAIRN_CLUSTER_SECRET_FILE", conflicts_with = "cluster_secret")]
    pub cluster_secret_file: Option<PathBuf>,
    /// File holding the root secret access key.
    #[arg(long, env = "CAIRN_SECRET_KEY_FILE", conflicts_with = "secret_key")]
    pub secret_key_file: Option<PathBuf>,
    /// File holding the admin token.
    #[arg(long, env = "CAIRN_ADMIN_TOKEN_FILE", conflicts_with = "admin_token")]
    pub admin_token_file: Option<PathBuf>,
    /// Region reported to clients and expected in signatures [default: us-east-1].
    #[arg(long, env = "CAIRN_REGION")]
    pub region: Option<String>,
    /// Base domain for virtual-host-style requests (`BUCKET.DOMAIN`); path style always works.
    #[arg(long, env = "CAIRN_DOMAIN")]
    pub domain: Option<String>,
    /// Multipart uploads older than this are aborted by GC: `7d`, `36h`, `90s` or seconds
    /// [default: 7d].
    #[arg(long, env = "CAIRN_UPLOAD_TTL", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "duration_or_seconds")]
    pub upload_ttl: Option<Duration>,
    /// Accept SigV2-signed requests (`on`, for s3cmd-era clients) or refuse them with S3's
    /// "use AWS4-HMAC-SHA256" (`off`) [default: on].
    #[arg(long, env = "CAIRN_SIGV2", value_parser = ["on", "off"])]
    pub sigv2: Option<String>,
    /// Test knob: the length of a lifecycle day in seconds, for lifecycle rules' days and for
    /// how often the lifecycle job runs, so that tests need not wait for days [default: 86400].
    #[arg(long, env = "CAIRN_LIFECYCLE_DAY_SECS")]
    pub lifecycle_day_secs: Option<u64>,
    /// PEM certificate chain (leaf first) for HTTPS on the S3 listener; needs --tls-key.
    #[arg(long, env = "CAIRN_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "CAIRN_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// Default `--upload-ttl`: a week, long enough for any upload that is still being worked on.
pub const DEFAULT_UPLOAD_TTL: Duration = Duration::from_secs(7 * 86_400);
/// A lifecycle day: a day (`--lifecycle-day-secs` shortens it for tests).
pub const DEFAULT_LIFECYCLE_DAY: Duration = Duration::from_secs(86_400);

/// A duration in the TOML file: `"36h"` as in flags, or a number of seconds.
fn duration_or_seconds<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        Seconds(u64),
        Humane(String),
    }
    match Text::deserialize(deserializer)? {
        Text::Seconds(seconds) => Ok(Some(Duration::from_secs(seconds))),
        Text::Humane(text) => parse_duration(&text).map(Some).map_err(serde::de::Error::custom),
    }
}

/// A secret from its flag or its file (flags before the config file), the file read whole
/// less its trailing newline.
fn secret(
    value: Option<String>,
    path: Option<PathBuf>,
    file_value: Option<String>,
    file_path: Option<PathBuf>,
) -> Result<Option<String>> {
    let read = |path: PathBuf| {
        std::fs::read_to_string(&path)
            .map(|text| text.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    };
    match (value, path) {
        (Some(value), _) => Ok(Some(value)),
        (None, Some(path)) => read(path).map(Some),
        (None, None) => match (file_value, file_path) {
            (Some(value), _) => Ok(Some(value)),
            (None, Some(path)) => read(path).map(Some),
            (None, None) => Ok(None),
        },
    }
}

/// Resolved, validated settings.
#[derive(Clone)]
pub struct Settings {
    /// S3 listen address.
    pub listen: String,
    /// Admin listen address.
    pub admin_listen: String,
    /// Where the index lives.
    pub index: IndexLocation,
    /// Volume URLs.
    pub volumes: Vec<String>,
    /// Copies per object.
    pub replicas: usize,
    /// Confirmations needed per write.
    pub write_quorum: usize,
    /// Volume request timeouts.
    pub timeouts: Timeouts,
    /// Cluster secret.
    pub cluster_secret: String,
    /// Root access key id.
    pub access_key: String,
    /// Root secret key.
    pub secret_key: String,
    /// Admin token.
    pub admin_token: Option<String>,
    /// Region.
    pub region: String,
    /// Base domain for virtual-host-style addressing.
    pub domain: Option<String>,
    /// Age after which GC aborts an incomplete multipart upload.
    pub upload_ttl: Duration,
    /// A lifecycle day (a day, but for tests).
    pub lifecycle_day: Duration,
    /// SigV2 signatures are accepted.
    pub sigv2: bool,
    /// Certificate chain and key files: the S3 listener speaks HTTPS.
    pub tls: Option<TlsFiles>,
}

/// `--tls-cert` and `--tls-key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

impl std::fmt::Debug for Settings {
    /// Secrets stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("admin_listen", &self.admin_listen)
            .field("index", &self.index)
            .field("volumes", &self.volumes)
            .field("replicas", &self.replicas)
            .field("write_quorum", &self.write_quorum)
            .field("timeouts", &self.timeouts)
            .field("access_key", &self.access_key)
            .field("region", &self.region)
            .field("domain", &self.domain)
            .field("upload_ttl", &self.upload_ttl)
            .field("lifecycle_day", &self.lifecycle_day)
            .field("sigv2", &self.sigv2)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// A duration as the flags take it (`500ms`, `90s`).
fn humane(duration: Duration) -> String {
    match duration.as_secs() {
        _ if duration.subsec_millis() != 0 => format!("{}ms", duration.as_millis()),
        s if s > 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        s => format!("{s}s"),
    }
}

impl Settings {
    /// The settings as a `--config` file would give them, secrets left out (and a PostgreSQL
    /// URL's password shown as `***`).
    pub fn to_toml(&self) -> String {
        let mut table = toml::Table::new();
        let mut put = |key: &str, value: toml::Value| {
            table.insert(key.into(), value);
        };
        put("listen", self.listen.clone().into());
        put("admin_listen", self.admin_listen.clone().into());
        put("index", self.index.to_string().into());
        put("volumes", self.volumes.iter().map(|v| toml::Value::from(v.clone())).collect::<Vec<_>>().into());
        put("replicas", (self.replicas as i64).into());
        put("write_quorum", (self.write_quorum as i64).into());
        put("volume_connect_timeout", humane(self.timeouts.connect).into());
        put("volume_timeout", humane(self.timeouts.response).into());
        put("volume_idle_timeout", humane(self.timeouts.idle).into());
        put("access_key", self.access_key.clone().into());
        put("region", self.region.clone().into());
        if let Some(domain) = &self.domain {
            put("domain", domain.clone().into());
        }
        put("upload_ttl", humane(self.upload_ttl).into());
        if self.lifecycle_day != DEFAULT_LIFECYCLE_DAY {
            put("lifecycle_day_secs", i64::try_from(self.lifecycle_day.as_secs()).unwrap_or(i64::MAX).into());
        }
        if !self.sigv2 {
            put("sigv2", "off".into());
        }
        if let Some(tls) = &self.tls {
            put("tls_cert", tls.cert.display().to_string().into());
            put("tls_key", tls.key.display().to_string().into());
        }
        let admin = if self.admin_token.is_some() {
            ", admin_token"
        } else {
            " (no admin_token: the admin API refuses every request)"
        };
        format!("# set, not shown: cluster_secret, secret_key{admin}\n{table}")
    }
}

/// Where the index lives (`--index`).
#[derive(Clone, PartialEq, Eq)]
pub enum IndexLocation {
    /// The embedded engine, in this directory.
    RocksDb(PathBuf),
    /// A PostgreSQL database (or one that speaks its protocol), by connection URL.
    Postgres(String),
}

impl IndexLocation {
    /// Reads `rocksdb:DIR` or `postgres://…` (`postgresql://…`).
    pub fn parse(text: &str) -> Result<Self> {
        if let Some(dir) = text.strip_prefix("rocksdb:").filter(|d| !d.is_empty()) {
            return Ok(Self::RocksDb(PathBuf::from(dir)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(Self::Postgres(text.to_string()));
        }
        Err(Error::Config(format!(
            "an index location must be rocksdb:DIR or postgres://USER@HOST/DB, not {:?}",
            redact_password(text)
        )))
    }
}

impl std::fmt::Debug for IndexLocation {
    /// The password in a PostgreSQL URL stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::RocksDb(dir) => write!(f, "rocksdb:{}", dir.display()),
            Self::Postgres(url) => f.write_str(&redact_password(url)),
        }
    }
}

impl std::fmt::Display for IndexLocation {
    /// As in logs: without the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// `scheme://user:password@host…` → `scheme://user:***@host…`, and a `password=` query
/// parameter (which the PostgreSQL client also reads) → `password=***`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    // The host follows the last '@' of the authority: a password may hold an unescaped '@'.
    let authority =
        match authority.rsplit_once('@').and_then(|(userinfo, host)| Some((userinfo.split_once(':')?.0, host))) {
            Some((user, host)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| if pair.starts_with("password=") { "password=***".to_string() } else { pair.to_string() })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

impl ServeArgs {
    /// Fills unset flags from the `--config` file, applies defaults and validates.
    pub fn resolve(self) -> Result<Settings> {
        let file = match &self.config {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
                toml::from_str::<ServeArgs>(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?
            }
            None => ServeArgs::default(),
        };
        let volumes = if self.volumes.is_empty() { file.volumes } else { self.volumes };
        let volumes: Vec<String> =
            volumes.into_iter().map(|v| v.trim().trim_end_matches('/').to_string()).filter(|v| !v.is_empty()).collect();
        if volumes.is_empty() {
            return Err(Error::Config("at least one volume is required (--volumes)".into()));
        }
        let replicas = self.replicas.or(file.replicas).unwrap_or_else(|| volumes.len().min(2));
        if replicas == 0 || replicas > volumes.len() {
            return Err(Error::Config(format!(
                "--replicas must be between 1 and the number of volumes ({})",
                volumes.len()
            )));
        }
        let write_quorum = self.write_quorum.or(file.write_quorum).unwrap_or(replicas / 2 + 1);
        if write_quorum == 0 || write_quorum > replicas {
            return Err(Error::Config("--write-quorum must be between 1 and --replicas".into()));
        }
        let required = |value: Option<String>, name: &str| {
            value.filter(|v| !v.is_empty()).ok_or_else(|| Error::Config(format!("--{name} is required")))
        };
        Ok(Settings {
            listen: self.listen.or(file.listen).unwrap_or_else(|| "127.0.0.1:9000".into()),
            admin_listen: self.admin_listen.or(file.admin_listen).unwrap_or_else(|| "127.0.0.1:9001".into()),
            index: match (self.index.or(file.index), self.db.or(file.db)) {
                (Some(index), None) => IndexLocation::parse(&index)?,
                (None, Some(db)) => IndexLocation::RocksDb(db),
                (Some(_), Some(_)) => {
                    return Err(Error::Config("--index and --db both name the index; give one".into()));
                }
                (None, None) => return Err(Error::Config("--index (or --db) is required".into())),
            },
            volumes,
            replicas,
            write_quorum,
            timeouts: {
                let defaults = Timeouts::default();
                let positive = |value: Option<Duration>, default: Duration, name: &str| match value {
                    Some(d) if d.is_zero() => Err(Error::Config(format!("--{name} must be more than 0"))),
                    Some(d) => Ok(d),
                    None => Ok(default),
                };
                Timeouts {
                    connect: positive(
                        self.volume_connect_timeout.or(file.volume_connect_timeout),
                        defaults.connect,
                        "volume-connect-timeout",
                    )?,
                    response: positive(
                        self.volume_timeout.or(file.volume_timeout),
                        defaults.response,
                        "volume-timeout",
                    )?,
                    idle: positive(
                        self.volume_idle_timeout.or(file.volume_idle_timeout),
                        defaults.idle,
                        "volume-idle-timeout",
                    )?,
                }
            },
            cluster_secret: required(
                secret(self.cluster_secret, self.cluster_secret_file, file.cluster_secret, file.cluster_secret_file)?,
                "cluster-secret",
            )?,
            access_key: required(self.access_key.or(file.access_key), "access-key")?,
            secret_key: required(
                secret(self.secret_key, self.secret_key_file, file.secret_key, file.secret_key_file)?,
                "secret-key",
            )?,
            admin_token: secret(self.admin_token, self.admin_token_file, file.admin_token, file.admin_token_file)?
                .filter(|t| !t.is_empty()),
            region: self.region.or(file.region).unwrap_or_else(|| "us-east-1".into()),
            domain: self.domain.or(file.domain).map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase()),
            upload_ttl: self.upload_ttl.or(file.upload_ttl).unwrap_or(DEFAULT_UPLOAD_TTL),
            lifecycle_day: match self.lifecycle_day_secs.or(file.lifecycle_day_secs) {
                Some(0) => return Err(Error::Config("--lifecycle-day-secs must be at least 1".into())),
                Some(secs) => Duration::from_secs(secs),
                None => DEFAULT_LIFECYCLE_DAY,
            },
            sigv2: match self.sigv2.or(file.sigv2).as_deref() {
                None | Some("on") => true,
                Some("off") => false,
                Some(other) => return Err(Error::Config(format!("sigv2 is on or off, not {other:?}"))),
            },
            tls: match (self.tls_cert.or(file.tls_cert), self.tls_key.or(file.tls_key)) {
                (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
                (None, None) => None,
                _ => return Err(Error::Config("--tls-cert and --tls-key go together".into())),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_locations_are_read_and_passwords_stay_out_of_logs() {
        assert_eq!(
            IndexLocation::parse("rocksdb:/var/lib/cairn").unwrap(),
            IndexLocation::RocksDb("/var/lib/cairn".into())
        );
        let pg = IndexLocation::parse("postgres://cairn:s3cret@db:5432/cairn").unwrap();
        assert_eq!(format!("{pg:?}"), "postgres://cairn:***@db:5432/cairn");
        assert_eq!(pg.to_string(), "postgres://cairn:***@db:5432/cairn");
        for (url, shown) in [
            ("postgres://cairn:p@ss@db/cairn", "postgres://cairn:***@db/cairn"),
            (
                "postgres://cairn@db/cairn?sslmode=disable&password=s3cret",
                "postgres://cairn@db/cairn?sslmode=disable&password=***",
            ),
            ("postgres://db/cairn", "postgres://db/cairn"),
        ] {
            assert_eq!(IndexLocation::parse(url).unwrap().to_string(), shown);
        }
        assert!(IndexLocation::parse("postgresql://db/cairn").is_ok());
        for bad in ["/var/lib/cairn", "rocksdb:", "mysql://u:p@h/d"] {
            let err = IndexLocation::parse(bad).unwrap_err().to_string();
            assert!(err.contains("rocksdb:DIR or postgres://") && !err.contains(":p@"), "{bad}: {err}");
        }
    }

    #[test]
    fn flags_win_over_file_and_defaults_apply() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cairn.toml");
        std::fs::write(
            &path,
            "volumes = ['http://a', 'http://b', 'http://c']\nreplicas = 3\ndb = '/tmp/x'\ncluster_secret = 's'\naccess_key = 'file'\nsecret_key = 'k'\n",
        )
        .unwrap();
        let args = ServeArgs { config: Some(path), access_key: Some("flag".into()), ..Default::default() };
        let settings = args.resolve().unwrap();
        assert_eq!(settings.access_key, "flag");
        assert_eq!(settings.replicas, 3);
        assert_eq!(settings.write_quorum, 2, "a majority of 3");
        assert_eq!(settings.timeouts, Timeouts::default());
        assert_eq!(settings.listen, "127.0.0.1:9000");
        assert!(!format!("{settings:?}").contains("\"k\""));
    }

    #[test]
    fn volume_timeouts_come_from_the_file_and_the_quorum_is_a_majority() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cairn.toml");
        std::fs::write(&path, "volume_timeout = '3s'\n").unwrap();
        let args = ServeArgs { config: Some(path), volumes: vec!["http://a".into(), "http://b".into()], ..minimal() };
        let settings = args.resolve().unwrap();
        assert_eq!(settings.timeouts.response, Duration::from_secs(3));
        assert_eq!(settings.write_quorum, 2, "a majority of 2 is 2");
    }

    /// The least a gateway needs: one volume, an index, the secrets.
    fn minimal() -> ServeArgs {
        ServeArgs {
            volumes: vec!["http://a".into()],
            db: Some("/tmp/x".into()),
            cluster_secret: Some("s".into()),
            access_key: Some("a".into()),
            secret_key: Some("k".into()),
            ..Default::default()
        }
    }

    #[test]
    fn upload_ttl_is_humane_in_flags_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let base = minimal();
        assert_eq!(base.clone().resolve().unwrap().upload_ttl, DEFAULT_UPLOAD_TTL);
        let flag = ServeArgs { upload_ttl: Some(Duration::from_secs(60)), ..base.clone() };
        assert_eq!(flag.resolve().unwrap().upload_ttl, Duration::from_secs(60));
        for (toml, seconds) in [("upload_ttl = '36h'", 36 * 3600), ("upload_ttl = 120", 120)] {
            let path = dir.path().join("cairn.toml");
            std::fs::write(&path, toml).unwrap();
            let from_file = ServeArgs { config: Some(path), ..base.clone() };
            assert_eq!(from_file.resolve().unwrap().upload_ttl, Duration::from_secs(seconds), "{toml}");
        }
        let path = dir.path().join("cairn.toml");
        std::fs::write(&path, "upload_ttl = 'soon'").unwrap();
        assert!(ServeArgs { config: Some(path), ..base.clone() }.resolve().is_err());
    }

    #[test]
    fn the_printed_config_reads_back_the_same_and_shows_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let mut args = minimal();
        args.db = None;
        args.index = Some("postgres://cairn:hunter2secret@db/cairn".into());
        args.cluster_secret = Some("clustersekrit".into());
        args.secret_key = Some("secretkeysekrit".into());
        args.admin_token = Some("admintokensekrit".into());
        args.volume_idle_timeout = Some(Duration::from_millis(1500));
        args.domain = Some("s3.example".into());
        let printed = args.clone().resolve().unwrap().to_toml();
        for secret in ["hunter2secret", "sekrit"] {
            assert!(!printed.contains(secret), "{secret} in\n{printed}");
        }
        assert!(printed.contains("volume_idle_timeout = \"1500ms\""), "{printed}");
        let path = dir.path().join("printed.toml");
        // The printed URL hides its password: read it back with a RocksDB index instead.
        std::fs::write(&path, printed.replace("postgres://cairn:***@db/cairn", "rocksdb:/var/lib/cairn")).unwrap();
        let again = ServeArgs { config: Some(path), ..secrets_only(&args) }.resolve().unwrap().to_toml();
        assert_eq!(again, printed.replace("postgres://cairn:***@db/cairn", "rocksdb:/var/lib/cairn"));
    }

    /// Only the secrets of `args` (the printed config leaves them out).
    fn secrets_only(args: &ServeArgs) -> ServeArgs {
        ServeArgs {
            cluster_secret: args.cluster_secret.clone(),
            secret_key: args.secret_key.clone(),
            admin_token: args.admin_token.clone(),
            ..ServeArgs::default()
        }
    }

    #[test]
    fn secrets_come_from_files_without_their_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster-secret");
        std::fs::write(&path, "from-a-file\n").unwrap();
        let args = ServeArgs { cluster_secret: None, cluster_secret_file: Some(path), ..minimal() };
        assert_eq!(args.resolve().unwrap().cluster_secret, "from-a-file");
        let missing = ServeArgs { secret_key: None, secret_key_file: Some(dir.path().join("nope")), ..minimal() };
        assert!(missing.resolve().is_err(), "a secret file that cannot be read is an error");
    }

    #[test]
    fn bad_settings_are_refused() {
        let base = minimal();
        assert!(base.clone().resolve().is_ok());
        assert!(ServeArgs { replicas: Some(2), ..base.clone() }.resolve().is_err());
        assert!(ServeArgs { volumes: vec![], ..base.clone() }.resolve().is_err());
        assert!(ServeArgs { secret_key: None, ..base }.resolve().is_err());
    }
}
