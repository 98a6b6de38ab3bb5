//! TLS for a listener (rustls, with the *ring* provider named explicitly so that whatever
//! other crates of a build enable, the server's choice does not depend on it), with a
//! certificate that can be reloaded from its files while the listener runs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A server configuration from a PEM certificate chain (leaf first) and its PEM private key
/// (PKCS#8, PKCS#1 or SEC1). HTTP/1.1 only, as the listeners serve (see `serve`).
pub fn server_config(cert: &Path, key_file: &Path) -> Result<Arc<ServerConfig>, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| format!("{}: {e}", key_file.display()))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("{} and {}: {e}", cert.display(), key_file.display()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The configuration a TLS listener hands each new connection, read from a certificate and key
/// file and read again on [`ReloadableTls::reload`] (the gateway does on SIGHUP, so a renewed
/// certificate is served without a restart). Connections already open keep theirs.
#[derive(Debug)]
pub struct ReloadableTls {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
}

impl ReloadableTls {
    /// Loads the files; fails if they do not make a configuration.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, String> {
        let current = RwLock::new(server_config(cert, key)?);
        Ok(Self { cert: cert.to_path_buf(), key: key.to_path_buf(), current })
    }

    /// Reads the files again. On failure the configuration in use stays, and the error says why.
    pub fn reload(&self) -> Result<(), String> {
        let fresh = server_config(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        Ok(())
    }

    /// The configuration for a connection accepted now.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}
