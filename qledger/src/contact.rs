//! Holders' contact addresses, sealed under erasable per-request keys
//! (crypto-shredding).
//!
//! A link request may carry an e-mail address for its completion notice. The
//! log is immutable and copied (Kafka replicas, backups), so the address goes
//! into it only as a [`SealedContact`]: AES-256-GCM under a fresh key made
//! for that request. The key lives here, in the key store — one file per key
//! under the data directory's `keys/` — and nowhere else. Once the notice is
//! delivered or parked the notifier destroys the key; from then on the
//! ciphertext in the log is noise, while replays, which never need the
//! address, rebuild the same views.
//!
//! This module must not log addresses or keys, nor keep plaintext anywhere
//! but in the caller's memory. Back the key store up apart from the log, or
//! not at all: a restored key un-erases an address.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use ledger::domain::contact::NONCE_LEN;
use ledger::domain::{RequestId, SealedContact};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::rand::{SecureRandom, SystemRandom};
use uuid::Uuid;

const KEY_LEN: usize = 32;

/// An e-mail address, validated; its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct ContactAddress(lettre::Address);

impl ContactAddress {
    /// Parses an address (RFC 5321 syntax, at most 254 bytes).
    pub fn parse(text: &str) -> Result<ContactAddress, ContactError> {
        if text.len() > 254 {
            return Err(ContactError::InvalidAddress(
                "must be at most 254 bytes".into(),
            ));
        }
        text.trim()
            .parse::<lettre::Address>()
            .map(ContactAddress)
            .map_err(|e| ContactError::InvalidAddress(e.to_string()))
    }

    /// The address itself, for the one place that needs it: the e-mail.
    pub fn expose(&self) -> &lettre::Address {
        &self.0
    }
}

impl fmt::Debug for ContactAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ContactAddress(<redacted>)")
    }
}

/// Why an address could not be sealed, opened or erased.
#[derive(Debug, thiserror::Error)]
pub enum ContactError {
    #[error("is not an e-mail address: {0}")]
    InvalidAddress(String),
    /// The key is not in the store: erased, or never made here.
    #[error(
        "the key {0} of this contact address is not in the key store (erased, or made elsewhere)"
    )]
    KeyAbsent(Uuid),
    /// The ciphertext does not open under its key (tampered, or another request's).
    #[error("the sealed contact address does not open under its key {0}")]
    Unreadable(Uuid),
    #[error("key store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no secure random numbers: {0}")]
    Random(String),
}

/// The erasable key store: one 32-byte key per request, one file per key.
#[derive(Debug)]
pub struct ContactKeys {
    dir: PathBuf,
    random: SystemRandom,
}

impl ContactKeys {
    /// Opens (creating) the key store in `dir`, readable by the owner only.
    pub fn open(dir: &Path) -> Result<ContactKeys, ContactError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io(dir))?;
        }
        Ok(ContactKeys {
            dir: dir.to_owned(),
            random: SystemRandom::new(),
        })
    }

    fn path(&self, key_id: Uuid) -> PathBuf {
        self.dir.join(format!("{key_id}.key"))
    }

    /// Seals `address` for `request_id` under a new key, stored durably
    /// before the sealed form is returned.
    pub fn seal(
        &self,
        request_id: &RequestId,
        address: &ContactAddress,
    ) -> Result<SealedContact, ContactError> {
        let mut key = [0u8; KEY_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut key)
            .and_then(|_| self.random.fill(&mut nonce))
            .map_err(|e| ContactError::Random(e.to_string()))?;
        let key_id = Uuid::now_v7();
        self.store(key_id, &key)?;
        let mut ciphertext = address.expose().to_string().into_bytes();
        cipher(&key)
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(request_id, key_id)),
                &mut ciphertext,
            )
            .map_err(|_| ContactError::Random("AES-GCM sealing failed".into()))?;
        Ok(SealedContact {
            key_id,
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Opens the address sealed for `request_id`.
    pub fn unseal(
        &self,
        request_id: &RequestId,
        sealed: &SealedContact,
    ) -> Result<ContactAddress, ContactError> {
        let key = self.load(sealed.key_id)?;
        let unreadable = || ContactError::Unreadable(sealed.key_id);
        let nonce = Nonce::try_assume_unique_for_key(&sealed.nonce).map_err(|_| unreadable())?;
        let mut buffer = sealed.ciphertext.clone();
        let plain = cipher(&key)
            .open_in_place(
                nonce,
                Aad::from(aad(request_id, sealed.key_id)),
                &mut buffer,
            )
            .map_err(|_| unreadable())?;
        let text = std::str::from_utf8(plain).map_err(|_| unreadable())?;
        ContactAddress::parse(text).map_err(|_| unreadable())
    }

    /// Whether the key is still in the store.
    pub fn contains(&self, key_id: Uuid) -> bool {
        self.path(key_id).exists()
    }

    /// Destroys the key for good (idempotent): the file is removed and the
    /// removal made durable, so a crash cannot bring it back.
    pub fn erase(&self, key_id: Uuid) -> Result<(), ContactError> {
        let path = self.path(key_id);
        match std::fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Writes the key through a temporary file and a rename, then syncs the
    /// directory: a key is either whole and durable or absent.
    fn store(&self, key_id: Uuid, key: &[u8; KEY_LEN]) -> Result<(), ContactError> {
        let path = self.path(key_id);
        let mut file = tempfile::NamedTempFile::new_in(&self.dir).map_err(io(&self.dir))?;
        file.write_all(key)
            .and_then(|_| file.as_file().sync_all())
            .map_err(io(&path))?;
        file.persist(&path).map_err(|e| io(&path)(e.error))?;
        sync_dir(&self.dir)
    }

    fn load(&self, key_id: Uuid) -> Result<[u8; KEY_LEN], ContactError> {
        let path = self.path(key_id);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ContactError::KeyAbsent(key_id))
            }
            Err(e) => return Err(io(&path)(e)),
        };
        bytes
            .try_into()
            .map_err(|_| ContactError::Unreadable(key_id))
    }
}

fn cipher(key: &[u8; KEY_LEN]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte AES-256 key"))
}

/// Binds a ciphertext to its request and key: it opens for nothing else.
fn aad(request_id: &RequestId, key_id: Uuid) -> Vec<u8> {
    let mut aad = request_id.as_str().as_bytes().to_vec();
    aad.push(0);
    aad.extend_from_slice(key_id.as_bytes());
    aad
}

fn sync_dir(dir: &Path) -> Result<(), ContactError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ContactError + '_ {
    move |source| ContactError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: &str) -> RequestId {
        id.parse().unwrap()
    }

    #[test]
    fn sealed_addresses_open_only_while_the_key_exists() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ContactKeys::open(dir.path()).unwrap();
        let address = ContactAddress::parse("hanako@example.jp").unwrap();
        let sealed = keys.seal(&request("R-1"), &address).unwrap();
        assert!(!sealed.ciphertext.windows(7).any(|w| w == b"example"));
        assert_eq!(keys.unseal(&request("R-1"), &sealed).unwrap(), address);
        // Bound to its request: another request id does not open it.
        assert!(matches!(
            keys.unseal(&request("R-2"), &sealed),
            Err(ContactError::Unreadable(_))
        ));
        keys.erase(sealed.key_id).unwrap();
        keys.erase(sealed.key_id).unwrap();
        assert!(!keys.contains(sealed.key_id));
        assert!(matches!(
            keys.unseal(&request("R-1"), &sealed),
            Err(ContactError::KeyAbsent(_))
        ));
    }

    #[test]
    fn a_tampered_ciphertext_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ContactKeys::open(dir.path()).unwrap();
        let address = ContactAddress::parse("taro@example.jp").unwrap();
        let mut sealed = keys.seal(&request("R-1"), &address).unwrap();
        sealed.ciphertext[0] ^= 1;
        assert!(matches!(
            keys.unseal(&request("R-1"), &sealed),
            Err(ContactError::Unreadable(_))
        ));
    }

    #[test]
    fn addresses_are_validated_and_never_printed() {
        assert!(ContactAddress::parse("not an address").is_err());
        assert!(ContactAddress::parse(&format!("{}@example.jp", "a".repeat(250))).is_err());
        let a = ContactAddress::parse("hanako@example.jp").unwrap();
        assert!(!format!("{a:?}").contains("hanako"));
    }
}
