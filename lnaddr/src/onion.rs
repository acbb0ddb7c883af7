//! Tor v3 onion service addresses (rend-spec-v3 §6, BOLT 7's type 4).
//!
//! SHA3-256 comes from `tiny-keccak`: one small crate whose only dependency
//! (`crunchy`) was already in the lock file, where RustCrypto's `sha3` 0.12
//! would bring `digest` 0.11, `keccak`, `sponge-cursor` and their own
//! dependencies for one two-byte checksum. Base32 is 40 lines here.

use alloc::borrow::ToOwned;
use core::fmt;
use core::str::FromStr;

use tiny_keccak::{Hasher, Sha3};

use crate::AddressError;

/// A Tor v3 onion service: its 32-byte ed25519 public key.
///
/// The text form is the 56 base32 characters of `pubkey || checksum ||
/// version` followed by `.onion`, where `version` is 3 and `checksum` is the
/// first two bytes of `SHA3-256(".onion checksum" || pubkey || version)`.
/// Parsing checks both; v2 addresses (16 characters, BOLT 7's obsolete type 3)
/// are refused. Whether the key is a valid ed25519 point is left to Tor.
///
/// ```
/// use lnaddr::OnionV3;
///
/// let o: OnionV3 = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion".parse()?;
/// assert_eq!(OnionV3::from_pubkey(*o.pubkey()), o);
/// assert_eq!(o.to_string().len(), 56 + ".onion".len());
/// # Ok::<(), lnaddr::AddressError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OnionV3 {
    pubkey: [u8; 32],
}

impl OnionV3 {
    /// The only onion address version BOLT 7 still allows.
    pub const VERSION: u8 = 3;
    /// Length of the text form without `.onion`.
    pub const TEXT_LEN: usize = 56;
    /// Length of `pubkey || checksum || version`.
    pub const ENCODED_LEN: usize = 35;

    /// The onion service with this ed25519 public key.
    pub fn from_pubkey(pubkey: [u8; 32]) -> Self {
        Self { pubkey }
    }

    /// Reads `pubkey || checksum || version` (35 bytes, the body of BOLT 7's
    /// type 4 without the port), checking the version and the checksum.
    ///
    /// # Errors
    /// [`AddressError::OnionVersion`], [`AddressError::OnionChecksum`].
    pub fn from_encoded(bytes: &[u8; Self::ENCODED_LEN]) -> Result<Self, AddressError> {
        let mut pubkey = [0u8; 32];
        pubkey.copy_from_slice(&bytes[..32]);
        let found = [bytes[32], bytes[33]];
        let version = bytes[34];
        if version != Self::VERSION {
            return Err(AddressError::OnionVersion(version));
        }
        let onion = Self { pubkey };
        let expected = onion.checksum();
        if found != expected {
            return Err(AddressError::OnionChecksum { expected, found });
        }
        Ok(onion)
    }

    /// The ed25519 public key.
    pub fn pubkey(&self) -> &[u8; 32] {
        &self.pubkey
    }

    /// The two checksum bytes of the address.
    pub fn checksum(&self) -> [u8; 2] {
        let mut sha3 = Sha3::v256();
        sha3.update(b".onion checksum");
        sha3.update(&self.pubkey);
        sha3.update(&[Self::VERSION]);
        let mut digest = [0u8; 32];
        sha3.finalize(&mut digest);
        [digest[0], digest[1]]
    }

    /// `pubkey || checksum || version`.
    pub fn encoded(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        out[..32].copy_from_slice(&self.pubkey);
        out[32..34].copy_from_slice(&self.checksum());
        out[34] = Self::VERSION;
        out
    }
}

impl fmt::Display for OnionV3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = [0u8; Self::TEXT_LEN];
        base32_encode(&self.encoded(), &mut text);
        // Base32 output is ASCII.
        f.write_str(core::str::from_utf8(&text).map_err(|_| fmt::Error)?)?;
        f.write_str(".onion")
    }
}

impl fmt::Debug for OnionV3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OnionV3({self})")
    }
}

impl FromStr for OnionV3 {
    type Err = AddressError;

    /// Reads `<56 base32 characters>.onion` (any case, a trailing dot
    /// allowed).
    fn from_str(s: &str) -> Result<Self, AddressError> {
        let name = s.strip_suffix('.').unwrap_or(s).as_bytes();
        let suffix = b".onion";
        let label = match name.len().checked_sub(suffix.len()) {
            Some(n) if n > 0 && name[n..].eq_ignore_ascii_case(suffix) => &name[..n],
            _ => return Err(AddressError::BadOnion(s.to_owned())),
        };
        if label.len() == 16 && label.iter().all(|&b| is_base32(b)) {
            return Err(AddressError::OnionV2);
        }
        if label.len() != Self::TEXT_LEN {
            return Err(AddressError::BadOnion(s.to_owned()));
        }
        let mut encoded = [0u8; Self::ENCODED_LEN];
        if !base32_decode(label, &mut encoded) {
            return Err(AddressError::BadOnion(s.to_owned()));
        }
        Self::from_encoded(&encoded)
    }
}

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

fn is_base32(b: u8) -> bool {
    base32_value(b).is_some()
}

fn base32_value(b: u8) -> Option<u8> {
    match b {
        b'a'..=b'z' => Some(b - b'a'),
        b'A'..=b'Z' => Some(b - b'A'),
        b'2'..=b'7' => Some(b - b'2' + 26),
        _ => None,
    }
}

/// RFC 4648 base32, lowercase, no padding: `out` holds 8 characters per 5
/// bytes of `input` (35 bytes make 56 characters).
fn base32_encode(input: &[u8; OnionV3::ENCODED_LEN], out: &mut [u8; OnionV3::TEXT_LEN]) {
    let mut acc: u16 = 0;
    let mut bits = 0;
    let mut i = 0;
    for &byte in input {
        acc = (acc << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out[i] = ALPHABET[usize::from((acc >> bits) & 31)];
            i += 1;
        }
        acc &= (1 << bits) - 1;
    }
}

/// The inverse of [`base32_encode`]; false on a character outside the
/// alphabet.
fn base32_decode(input: &[u8], out: &mut [u8; OnionV3::ENCODED_LEN]) -> bool {
    let mut acc: u16 = 0;
    let mut bits = 0;
    let mut i = 0;
    for &c in input {
        let Some(v) = base32_value(c) else {
            return false;
        };
        acc = (acc << 5) | u16::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            let Some(slot) = out.get_mut(i) else {
                return false;
            };
            // The low 8 bits after the shift are the byte.
            *slot = (acc >> bits) as u8;
            i += 1;
            acc &= (1 << bits) - 1;
        }
    }
    i == OnionV3::ENCODED_LEN
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::{String, ToString};

    /// Real v3 addresses (the Tor Project's and DuckDuckGo's) verify.
    #[test]
    fn known_v3_addresses_verify() {
        for s in [
            "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion",
            "duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion",
        ] {
            let o: OnionV3 = s.parse().expect(s);
            assert_eq!(o.to_string(), s);
            assert_eq!(s.to_uppercase().parse::<OnionV3>(), Ok(o));
        }
    }

    #[test]
    fn any_key_round_trips() {
        for b in 0..=255u8 {
            let o = OnionV3::from_pubkey([b; 32]);
            assert_eq!(o.to_string().parse::<OnionV3>(), Ok(o));
            assert_eq!(OnionV3::from_encoded(&o.encoded()), Ok(o));
        }
    }

    #[test]
    fn bad_checksum_is_refused() {
        // Last key character changed: the key and so the checksum differ.
        let s = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion";
        let mut bad = s.to_owned();
        bad.replace_range(40..41, "a");
        assert!(matches!(
            bad.parse::<OnionV3>(),
            Err(AddressError::OnionChecksum { .. })
        ));
        let mut enc = OnionV3::from_pubkey([7; 32]).encoded();
        enc[33] ^= 1;
        assert!(matches!(
            OnionV3::from_encoded(&enc),
            Err(AddressError::OnionChecksum { .. })
        ));
    }

    #[test]
    fn bad_version_is_refused() {
        let mut enc = OnionV3::from_pubkey([7; 32]).encoded();
        enc[34] = 2;
        assert_eq!(
            OnionV3::from_encoded(&enc),
            Err(AddressError::OnionVersion(2))
        );
    }

    #[test]
    fn v2_and_malformed_text_is_refused() {
        assert_eq!(
            "expyuzz4wqqyqhjn.onion".parse::<OnionV3>(),
            Err(AddressError::OnionV2)
        );
        for bad in [
            ".onion",
            "onion",
            "abc.onion",
            "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wi1.onion",
            "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.example",
        ] {
            assert!(
                matches!(bad.parse::<OnionV3>(), Err(AddressError::BadOnion(_))),
                "{bad}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn onion_like_text_never_panics(s in "[a-zA-Z2-9\\PC]{0,60}(\\.onion)?\\.?") {
            if let Ok(o) = s.parse::<OnionV3>() {
                proptest::prop_assert_eq!(o.to_string().parse::<OnionV3>(), Ok(o));
            }
        }

        #[test]
        fn a_changed_character_is_refused_or_self_consistent(
            k in proptest::prelude::any::<[u8; 32]>(),
            at in 0..56usize,
            to in 0..32usize,
        ) {
            let good = OnionV3::from_pubkey(k).to_string();
            let mut bad = good.into_bytes();
            proptest::prop_assume!(bad[at] != ALPHABET[to]);
            bad[at] = ALPHABET[to];
            let bad = String::from_utf8(bad).expect("ascii");
            match bad.parse::<OnionV3>() {
                Err(_) => {}
                // Only a checksum collision (1 in 65536) gets through, and
                // then the text is a valid address in its own right.
                Ok(o) => proptest::prop_assert_eq!(o.to_string(), bad),
            }
        }
    }
}
