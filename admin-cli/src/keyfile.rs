//! Sealed access key files (`cairn-admin key export` / `key import`).
//!
//! Access keys live only in the index, so they are exported to a file the operator keeps,
//! sealed with a passphrase: Argon2id (RFC 9106's second recommended setting: 64 MiB,
//! 3 passes) derives a 256-bit key from the passphrase and a random salt, and
//! XChaCha20-Poly1305 (random 192-bit nonce) encrypts and authenticates the JSON list of
//! keys. The file is JSON, so its parameters can be read; they are bound to the ciphertext
//! (the key derivation depends on them, and the header is the AEAD's associated data), so a
//! changed parameter or byte fails like a wrong passphrase does.

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// What a sealed file says it is.
const FORMAT: &str = "cairn-access-keys";
const VERSION: u32 = 1;
/// Argon2id cost for new files: 64 MiB, 3 passes, 1 lane.
const M_COST_KIB: u32 = 64 * 1024;
const T_COST: u32 = 3;
const P_COST: u32 = 1;
/// Largest costs a file may ask for: a crafted file must not make import use 100 GiB.
const MAX_M_COST_KIB: u32 = 1024 * 1024;
const MAX_T_COST: u32 = 16;
const MAX_P_COST: u32 = 16;
/// Shortest passphrase accepted for sealing.
pub(crate) const MIN_PASSPHRASE: usize = 12;

/// The file: the parameters in the clear, the keys sealed.
#[derive(Debug, Serialize, Deserialize)]
struct Sealed {
    format: String,
    version: u32,
    kdf: Kdf,
    cipher: String,
    nonce: String,
    ciphertext: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Kdf {
    algorithm: String,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    salt: String,
}

impl Sealed {
    /// The associated data: everything but the ciphertext, so none of it can be changed.
    fn header(&self) -> Vec<u8> {
        format!(
            "{} v{} {} m={} t={} p={} salt={} {} nonce={}",
            self.format,
            self.version,
            self.kdf.algorithm,
            self.kdf.m_cost_kib,
            self.kdf.t_cost,
            self.kdf.p_cost,
            self.kdf.salt,
            self.cipher,
            self.nonce
        )
        .into_bytes()
    }
}

fn derive(passphrase: &[u8], kdf: &Kdf, salt: &[u8]) -> Result<Zeroizing<[u8; 32]>, String> {
    let params = Params::new(kdf.m_cost_kib, kdf.t_cost, kdf.p_cost, Some(32))
        .map_err(|e| format!("bad key derivation parameters: {e}"))?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase, salt, key.as_mut())
        .map_err(|e| format!("key derivation failed: {e}"))?;
    Ok(key)
}

/// Seals `plaintext` (the exported keys' JSON) with `passphrase`; the file's bytes.
pub(crate) fn seal(plaintext: &[u8], passphrase: &[u8]) -> Result<Vec<u8>, String> {
    let salt: [u8; 16] = rand::random();
    let nonce: [u8; 24] = rand::random();
    let kdf = Kdf {
        algorithm: "argon2id".into(),
        m_cost_kib: M_COST_KIB,
        t_cost: T_COST,
        p_cost: P_COST,
        salt: B64.encode(salt),
    };
    let mut sealed = Sealed {
        format: FORMAT.into(),
        version: VERSION,
        kdf,
        cipher: "xchacha20poly1305".into(),
        nonce: B64.encode(nonce),
        ciphertext: String::new(),
    };
    let key = derive(passphrase, &sealed.kdf, &salt)?;
    let cipher = XChaCha20Poly1305::new(&Key::from(*key));
    let aad = sealed.header();
    let ciphertext = cipher
        .encrypt(&XNonce::from(nonce), Payload { msg: plaintext, aad: &aad })
        .map_err(|_| "encryption failed".to_string())?;
    sealed.ciphertext = B64.encode(ciphertext);
    let mut out = serde_json::to_vec_pretty(&sealed).map_err(|e| e.to_string())?;
    out.push(b'\n');
    Ok(out)
}

/// Opens a sealed file; the keys' JSON. A wrong passphrase and a damaged file fail the same
/// way: the AEAD cannot tell them apart, and neither can anyone without the passphrase.
pub(crate) fn open(file: &[u8], passphrase: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    let sealed: Sealed = serde_json::from_slice(file).map_err(|e| format!("not a sealed access key file: {e}"))?;
    if sealed.format != FORMAT {
        return Err("not a sealed access key file".into());
    }
    if sealed.version != VERSION || sealed.kdf.algorithm != "argon2id" || sealed.cipher != "xchacha20poly1305" {
        return Err(format!(
            "unsupported access key file (version {}, {}, {}); this cairn-admin reads version {VERSION}",
            sealed.version, sealed.kdf.algorithm, sealed.cipher
        ));
    }
    let kdf = &sealed.kdf;
    if kdf.m_cost_kib > MAX_M_COST_KIB || kdf.t_cost > MAX_T_COST || kdf.p_cost > MAX_P_COST {
        return Err("the file asks for more key derivation work than cairn-admin allows".into());
    }
    let decode = |what: &str, value: &str| B64.decode(value).map_err(|e| format!("bad {what} in the file: {e}"));
    let salt = decode("salt", &kdf.salt)?;
    let nonce: [u8; 24] =
        decode("nonce", &sealed.nonce)?.try_into().map_err(|_| "bad nonce in the file".to_string())?;
    let ciphertext = decode("ciphertext", &sealed.ciphertext)?;
    let key = derive(passphrase, kdf, &salt)?;
    let cipher = XChaCha20Poly1305::new(&Key::from(*key));
    let aad = sealed.header();
    cipher
        .decrypt(&XNonce::from(nonce), Payload { msg: &ciphertext, aad: &aad })
        .map(Zeroizing::new)
        .map_err(|_| "wrong passphrase, or the file was changed or damaged".to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const SECRET: &[u8] = br#"[{"access_key_id":"CK1","secret_access_key":"very-secret"}]"#;

    #[test]
    fn seals_and_opens_and_hides_the_secrets() {
        let file = seal(SECRET, b"correct horse battery").unwrap();
        let text = String::from_utf8(file.clone()).unwrap();
        assert!(!text.contains("very-secret") && !text.contains("CK1"), "{text}");
        assert_eq!(&open(&file, b"correct horse battery").unwrap()[..], SECRET);
        // A fresh salt and nonce every time.
        assert_ne!(seal(SECRET, b"correct horse battery").unwrap(), file);
    }

    #[test]
    fn a_wrong_passphrase_or_a_changed_file_fails_cleanly() {
        let file = seal(SECRET, b"correct horse battery").unwrap();
        let err = open(&file, b"correct horse battery!").unwrap_err();
        assert!(err.contains("wrong passphrase"), "{err}");

        let mut sealed: Sealed = serde_json::from_slice(&file).unwrap();
        sealed.kdf.t_cost += 1;
        let changed = serde_json::to_vec(&sealed).unwrap();
        assert!(open(&changed, b"correct horse battery").unwrap_err().contains("wrong passphrase"));

        let mut sealed: Sealed = serde_json::from_slice(&file).unwrap();
        let mut bytes = B64.decode(&sealed.ciphertext).unwrap();
        bytes[0] ^= 1;
        sealed.ciphertext = B64.encode(bytes);
        let changed = serde_json::to_vec(&sealed).unwrap();
        assert!(open(&changed, b"correct horse battery").unwrap_err().contains("wrong passphrase"));

        let mut sealed: Sealed = serde_json::from_slice(&file).unwrap();
        sealed.kdf.m_cost_kib = u32::MAX;
        let greedy = serde_json::to_vec(&sealed).unwrap();
        assert!(open(&greedy, b"correct horse battery").unwrap_err().contains("more key derivation work"));

        assert!(open(b"{}", b"x").unwrap_err().contains("not a sealed access key file"));
    }
}
