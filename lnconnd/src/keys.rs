//! Our node key: from hex, from a file, or fresh.

use std::path::Path;

use bitcoin::secp256k1::SecretKey;
use brontide::NodeKeyPair;

/// Why a key could not be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyError {
    /// Not 64 hex characters.
    #[error("a node key is 64 hex characters (32 bytes)")]
    NotHex,
    /// 32 bytes, but zero or not below the curve order.
    #[error("not a valid secp256k1 secret key")]
    OutOfRange,
    /// The key file could not be read. (The cause is printed here, not
    /// returned as a source: the program prints only this message.)
    #[error("cannot read key file {path}: {error}")]
    File {
        /// The path given.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The system has no randomness to offer.
    #[error("no system randomness for a fresh key: {0}")]
    Random(String),
    /// The key file can be read by other users.
    #[error("key file {path} is readable by others (mode {mode:o}): run `chmod 600 {path}`")]
    Exposed {
        /// The path given.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The data directory's key file could not be written.
    #[error("cannot write key file {path}")]
    Write {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The node key's file name inside the daemon's data directory.
pub(crate) const KEY_FILE: &str = "node.key";

/// Reads a key file that must be private: refused if its group or others
/// may read or write it.
pub(crate) fn from_private_file(path: &Path) -> Result<NodeKeyPair, KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let shown = || path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|error| KeyError::File {
        path: shown(),
        error,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Exposed {
            path: shown(),
            mode,
        });
    }
    from_file(path)
}

/// The data directory's key: read if it exists, else created (mode 0600,
/// 64 hex characters). A key file is never overwritten. Returns whether it
/// was created.
pub(crate) fn load_or_create(path: &Path) -> Result<(NodeKeyPair, bool), KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() {
        return Ok((from_private_file(path)?, false));
    }
    let key = random()?;
    let write_err = |source| KeyError::Write {
        path: path.display().to_string(),
        source,
    };
    // Written whole under a temporary name, then linked into place: a
    // crash leaves no half-written key, and an existing key is kept.
    let tmp = path.with_extension("key.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(write_err)?;
    let hex: String = (key.secret_key().secret_bytes().iter())
        .map(|b| format!("{b:02x}"))
        .collect();
    let written = writeln!(file, "{hex}").and_then(|()| file.sync_all());
    drop(file);
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    linked.map_err(write_err)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(write_err)?;
    }
    Ok((key, true))
}

/// Reads a secret key from 64 hex characters (surrounding whitespace allowed).
pub(crate) fn from_hex(text: &str) -> Result<NodeKeyPair, KeyError> {
    let text = text.trim();
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(KeyError::NotHex);
    }
    let mut bytes = [0u8; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        // Two hex digits, checked above.
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| KeyError::NotHex)?;
    }
    let secret = SecretKey::from_slice(&bytes).map_err(|_| KeyError::OutOfRange)?;
    Ok(NodeKeyPair::new(secret))
}

/// Reads a key file: 64 hex characters, or 32 raw bytes.
pub(crate) fn from_file(path: &Path) -> Result<NodeKeyPair, KeyError> {
    let bytes = std::fs::read(path).map_err(|error| KeyError::File {
        path: path.display().to_string(),
        error,
    })?;
    if bytes.len() == 32 {
        let secret = SecretKey::from_slice(&bytes).map_err(|_| KeyError::OutOfRange)?;
        return Ok(NodeKeyPair::new(secret));
    }
    from_hex(std::str::from_utf8(&bytes).map_err(|_| KeyError::NotHex)?)
}

/// A fresh random key.
pub(crate) fn random() -> Result<NodeKeyPair, KeyError> {
    loop {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
        // Out of range with probability about 2^-128: draw again.
        if let Ok(secret) = SecretKey::from_slice(&bytes) {
            return Ok(NodeKeyPair::new(secret));
        }
    }
}

/// A `u64` of system randomness (for seeds), or a fixed one if none.
pub(crate) fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => 0x5eed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_keys_are_checked() {
        assert!(from_hex(&"11".repeat(32)).is_ok());
        assert!(matches!(from_hex("11"), Err(KeyError::NotHex)));
        assert!(matches!(from_hex(&"zz".repeat(32)), Err(KeyError::NotHex)));
        assert!(matches!(
            from_hex(&"00".repeat(32)),
            Err(KeyError::OutOfRange)
        ));
        assert!(matches!(
            from_hex(&"ff".repeat(32)),
            Err(KeyError::OutOfRange)
        ));
        // Multi-byte characters must not split a slice mid-character.
        assert!(matches!(from_hex(&"é".repeat(32)), Err(KeyError::NotHex)));
    }

    #[test]
    fn data_dir_key_is_created_private_then_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("lnconnd-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(KEY_FILE);
        let (first, created) = load_or_create(&path).expect("created");
        assert!(created);
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (again, created) = load_or_create(&path).expect("read back");
        assert!(!created);
        assert_eq!(first.public_key(), again.public_key());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let e = load_or_create(&path).expect_err("refused");
        assert!(matches!(e, KeyError::Exposed { mode: 0o640, .. }), "{e}");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
