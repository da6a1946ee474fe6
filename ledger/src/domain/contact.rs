//! A card holder's contact address as the log carries it: sealed.
//!
//! The address (for the link-completion notice) is personal data that must
//! be erasable, yet the log is immutable. So the log never holds it in the
//! clear: it holds [`SealedContact`], the address encrypted (AES-256-GCM)
//! under a key of its own kept outside the log, in an erasable key store.
//! Destroying the key erases the address everywhere the ciphertext went —
//! log, topics, backups (crypto-shredding). Sealing and opening are the
//! service's (`qledger::contact`); this module only defines the shape and
//! its bounds, and must not hold keys or plaintext.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::FieldError;

/// AES-GCM's nonce length.
pub const NONCE_LEN: usize = 12;
/// AES-GCM's tag length: the shortest ciphertext (of an empty plaintext).
pub const TAG_LEN: usize = 16;
/// The longest ciphertext accepted: an address of at most 254 bytes
/// (RFC 5321's path limit) and its tag, with room to spare.
pub const MAX_CIPHERTEXT_LEN: usize = 1024;

/// A contact address encrypted under the key `key_id` of the key store.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedContact {
    /// The key's id in the erasable key store; one key per request.
    pub key_id: Uuid,
    /// AES-GCM nonce (12 bytes; base64 in JSON).
    #[serde(with = "base64_bytes")]
    pub nonce: Vec<u8>,
    /// Ciphertext with its 16-byte tag (base64 in JSON).
    #[serde(with = "base64_bytes")]
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for SealedContact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedContact")
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

impl SealedContact {
    /// Checks the lengths; `field` is the path of the sealed contact.
    pub fn validate(&self, field: &str) -> Result<(), FieldError> {
        if self.nonce.len() != NONCE_LEN {
            return Err(FieldError::new(
                format!("{field}.nonce"),
                format!("must be {NONCE_LEN} bytes, got {}", self.nonce.len()),
            ));
        }
        let n = self.ciphertext.len();
        if !(TAG_LEN < n && n <= MAX_CIPHERTEXT_LEN) {
            return Err(FieldError::new(
                format!("{field}.ciphertext"),
                format!(
                    "must be {} to {MAX_CIPHERTEXT_LEN} bytes (an address and its {TAG_LEN}-byte tag), got {n}",
                    TAG_LEN + 1
                ),
            ));
        }
        Ok(())
    }
}

/// Bytes as standard base64 strings in JSON.
mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("not base64: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(nonce: usize, ciphertext: usize) -> SealedContact {
        SealedContact {
            key_id: Uuid::nil(),
            nonce: vec![7; nonce],
            ciphertext: vec![9; ciphertext],
        }
    }

    #[test]
    fn lengths_are_checked_and_named() {
        assert!(sealed(12, 40).validate("contact").is_ok());
        assert_eq!(
            sealed(11, 40).validate("contact").unwrap_err().field,
            "contact.nonce"
        );
        assert_eq!(
            sealed(12, 16).validate("contact").unwrap_err().field,
            "contact.ciphertext"
        );
        assert!(sealed(12, 1025).validate("contact").is_err());
    }

    #[test]
    fn json_carries_base64_and_debug_hides_the_bytes() {
        let s = sealed(12, 20);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["nonce"], "BwcHBwcHBwcHBwcH");
        let back: SealedContact = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
        assert!(!format!("{s:?}").contains("9, 9"));
    }
}
