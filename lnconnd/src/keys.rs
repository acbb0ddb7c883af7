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
}
