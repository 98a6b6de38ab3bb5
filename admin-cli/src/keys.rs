//! `cairn-admin key …`: access keys, their grants, sealed export and import.

use clap::Subcommand;
use gateway::admin::keys::{CreateKey, CreatedKey, GrantChange, KeyInfo};
use serde_json::json;

use crate::api::{Api, parse};
use crate::keyfile;

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Create a key; its secret is printed once. It acts for a new owner (named after it)
    /// unless --owner names an existing one; the keys of one owner share its buckets.
    Create {
        /// A name for people.
        name: String,
        /// Allow the key to create buckets (its owner owns what it creates).
        #[arg(long)]
        create_bucket: bool,
        /// Act for this existing owner (a canonical id from `key list`) instead of a new one.
        #[arg(long)]
        owner: Option<String>,
    },
    /// List keys and their grants (never secrets).
    List,
    /// Delete a key; requests signed with it fail at once.
    Delete {
        /// Access key id.
        id: String,
    },
    /// Grant a key permissions on a bucket.
    Allow(GrantArgs),
    /// Take permissions away (all of them on the bucket if none is named).
    Deny(GrantArgs),
    /// Write every key, secrets included, to a new file sealed with a passphrase (from
    /// CAIRN_KEY_PASSPHRASE or --passphrase-file). Keys are not on the volumes: keep an
    /// export to bring them back after a rebuild.
    Export {
        /// The file to create (it must not exist yet).
        #[arg(long)]
        out: std::path::PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Store every key of a sealed export file; keys with the same id are replaced, so
    /// importing twice is harmless.
    Import {
        /// A file written by `key export`.
        file: std::path::PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
}

/// Where the passphrase of a key file comes from: never a command-line value, which other
/// users can read in the process list and which lands in shell history.
#[derive(Debug, clap::Args)]
pub(crate) struct PassphraseArgs {
    /// Read the passphrase from this file (its first line) instead of CAIRN_KEY_PASSPHRASE.
    #[arg(long)]
    passphrase_file: Option<std::path::PathBuf>,
}

impl PassphraseArgs {
    fn read(&self) -> Result<zeroize::Zeroizing<String>, String> {
        let passphrase = match &self.passphrase_file {
            Some(path) => {
                let text = zeroize::Zeroizing::new(
                    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
                );
                zeroize::Zeroizing::new(text.lines().next().unwrap_or_default().to_string())
            }
            None => zeroize::Zeroizing::new(std::env::var("CAIRN_KEY_PASSPHRASE").map_err(|_| {
                "a passphrase is needed: set CAIRN_KEY_PASSPHRASE or pass --passphrase-file".to_string()
            })?),
        };
        if passphrase.is_empty() {
            return Err("the passphrase is empty".into());
        }
        Ok(passphrase)
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct GrantArgs {
    /// Access key id.
    id: String,
    /// Bucket name.
    bucket: String,
    /// Read objects and list.
    #[arg(long)]
    read: bool,
    /// Write and delete objects.
    #[arg(long)]
    write: bool,
    /// Create and delete the bucket.
    #[arg(long)]
    owner: bool,
}

pub(crate) async fn key(api: &Api, command: KeyCommand, as_json: bool) -> Result<(), String> {
    let grant = |args: GrantArgs, allow: bool| {
        let change = GrantChange { bucket: args.bucket, read: args.read, write: args.write, owner: args.owner, allow };
        (format!("/keys/{}/grants", args.id), change)
    };
    match command {
        KeyCommand::Create { name, create_bucket, owner } => {
            let text = api.post("/keys", &CreateKey { name, create_bucket, owner }).await?;
            let key: CreatedKey = parse(&text)?;
            if as_json {
                println!(
                    "{}",
                    json!({"access_key_id": key.access_key_id, "secret_access_key": key.secret_access_key, "owner_id": key.owner_id})
                );
            } else {
                println!("access key id      {}", key.access_key_id);
                println!("secret access key  {}   (shown only now)", key.secret_access_key);
                println!("owner              {}", key.owner_id);
            }
            Ok(())
        }
        KeyCommand::List => print_keys(&api.get("/keys").await?, as_json),
        KeyCommand::Delete { id } => {
            api.call(reqwest::Method::DELETE, &format!("/keys/{id}"), None).await?;
            if !as_json {
                println!("deleted {id}");
            }
            Ok(())
        }
        KeyCommand::Allow(args) => {
            let (path, body) = grant(args, true);
            print_keys(&api.post(&path, &body).await?, as_json)
        }
        KeyCommand::Deny(args) => {
            let (path, body) = grant(args, false);
            print_keys(&api.post(&path, &body).await?, as_json)
        }
        KeyCommand::Export { out, passphrase } => export_keys(api, &out, &passphrase, as_json).await,
        KeyCommand::Import { file, passphrase } => import_keys(api, &file, &passphrase, as_json).await,
    }
}

pub(crate) async fn export_keys(
    api: &Api,
    out: &std::path::Path,
    passphrase: &PassphraseArgs,
    as_json: bool,
) -> Result<(), String> {
    let passphrase = passphrase.read()?;
    if passphrase.chars().count() < keyfile::MIN_PASSPHRASE {
        return Err(format!("the passphrase must be at least {} characters long", keyfile::MIN_PASSPHRASE));
    }
    let keys = zeroize::Zeroizing::new(api.get("/keys/export").await?);
    let count = parse::<Vec<serde_json::Value>>(&keys)?.len();
    let sealed = keyfile::seal(keys.as_bytes(), passphrase.as_bytes())?;
    // A new file, readable by its owner only; never over an existing one (an older export
    // may be the only copy of keys deleted since).
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(out)
            .map_err(|e| format!("{}: {e}", out.display()))?
    };
    std::io::Write::write_all(&mut file, &sealed).map_err(|e| format!("{}: {e}", out.display()))?;
    file.sync_all().map_err(|e| format!("{}: {e}", out.display()))?;
    if as_json {
        println!("{}", json!({"exported": count, "file": out.display().to_string()}));
    } else {
        println!("exported {count} keys to {} (sealed; keep the passphrase apart from the file)", out.display());
    }
    Ok(())
}

pub(crate) async fn import_keys(
    api: &Api,
    path: &std::path::Path,
    passphrase: &PassphraseArgs,
    as_json: bool,
) -> Result<(), String> {
    let passphrase = passphrase.read()?;
    let file = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let keys = keyfile::open(&file, passphrase.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    let keys: serde_json::Value =
        serde_json::from_slice(&keys).map_err(|e| format!("{}: not a list of keys: {e}", path.display()))?;
    let text = api.call(reqwest::Method::POST, "/keys/import", Some(keys)).await?;
    if as_json {
        println!("{text}");
    } else {
        let imported: gateway::admin::keys::Imported = parse(&text)?;
        println!("imported {} keys ({} replaced) from {}", imported.imported, imported.replaced, path.display());
    }
    Ok(())
}

pub(crate) fn print_keys(text: &str, as_json: bool) -> Result<(), String> {
    if as_json {
        println!("{text}");
        return Ok(());
    }
    let keys: Vec<KeyInfo> = parse(text)?;
    println!("{:<22} {:<20} {:<64} {:<6} grants", "access key id", "name", "owner", "create");
    for key in keys {
        let grants: Vec<String> = key
            .grants
            .iter()
            .map(|g| {
                let mut perms = String::new();
                // Owner implies read and write, and is shown with them.
                for (on, letter) in [(g.read || g.owner, 'r'), (g.write || g.owner, 'w'), (g.owner, 'o')] {
                    perms.push(if on { letter } else { '-' });
                }
                format!("{}:{perms}", g.bucket)
            })
            .collect();
        let create = if key.create_bucket { "yes" } else { "no" };
        println!("{:<22} {:<20} {:<64} {create:<6} {}", key.access_key_id, key.name, key.owner_id, grants.join(" "));
    }
    Ok(())
}
