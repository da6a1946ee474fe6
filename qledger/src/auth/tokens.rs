//! API tokens: issued once, held only as SHA-256 hashes in a token file.
//!
//! A token reads `qlt_<id>_<secret>`: `id` (8 hex digits) finds the entry,
//! the SHA-256 of the whole token must equal the entry's hash (compared in
//! constant time), and the entry must not be revoked. The secret is 256
//! random bits, so a plain hash suffices (no password stretching).
//!
//! A client certificate (mutual TLS) is registered the same way, by the
//! SHA-256 of its DER; the TLS layer has verified it against the client CA.
//!
//! The file is TOML, written atomically and readable by its owner only;
//! `qledger tokens issue|list|revoke` manage it and a running server reloads
//! it when it changes, so a revocation takes effect within a second. The
//! token itself is printed once at issue and stored nowhere.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{IncompletePrincipal, Principal};
use ledger::domain::RecordTime;

/// What a token begins with.
pub const PREFIX: &str = "qlt_";

/// The token file's file name in a data directory.
pub const DEFAULT_FILE: &str = "tokens.toml";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the token file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the token file {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot write the token file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Incomplete(#[from] IncompletePrincipal),
    #[error("no token has the id or name {0}")]
    Unknown(String),
    #[error("a token named {0} is already in force; revoke it first or pick another name")]
    NameTaken(String),
    #[error("the system random generator failed")]
    Random,
}

/// What an entry's hash is of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Credential {
    /// An API token.
    #[default]
    Token,
    /// A client certificate's DER.
    Certificate,
}

impl Credential {
    fn is_token(&self) -> bool {
        *self == Credential::Token
    }
}

/// One issued token or registered client certificate, as the file keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// The token's public id (8 hex digits), also inside the token; for a
    /// certificate, the first 8 hex digits of its hash.
    pub id: String,
    #[serde(default, skip_serializing_if = "Credential::is_token")]
    pub credential: Credential,
    /// Hex SHA-256 of the whole token, or of the certificate's DER.
    pub sha256: String,
    pub issued_at: RecordTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<RecordTime>,
    pub principal: Principal,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    #[serde(default)]
    tokens: Vec<TokenEntry>,
}

/// The token file, loaded.
#[derive(Debug)]
pub struct TokenStore {
    path: PathBuf,
    entries: Vec<TokenEntry>,
}

impl TokenStore {
    /// Loads `path`; an absent file is an empty store.
    pub fn load(path: &Path) -> Result<TokenStore, TokenError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(TokenError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let file: TokenFile = toml::from_str(&text).map_err(|e| TokenError::Invalid {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        for entry in &file.tokens {
            entry.principal.check()?;
        }
        Ok(TokenStore {
            path: path.to_owned(),
            entries: file.tokens,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn entries(&self) -> &[TokenEntry] {
        &self.entries
    }

    /// Issues a token for `principal` and saves the file; the token is
    /// returned once and kept nowhere.
    pub fn issue(&mut self, principal: Principal) -> Result<(String, &TokenEntry), TokenError> {
        principal.check()?;
        if self
            .entries
            .iter()
            .any(|e| e.revoked_at.is_none() && e.principal.name == principal.name)
        {
            return Err(TokenError::NameTaken(principal.name));
        }
        let rng = SystemRandom::new();
        let (id, token) = loop {
            let mut id = [0u8; 4];
            let mut secret = [0u8; 32];
            rng.fill(&mut id).map_err(|_| TokenError::Random)?;
            rng.fill(&mut secret).map_err(|_| TokenError::Random)?;
            let id = hex::encode(id);
            if self.entries.iter().all(|e| e.id != id) {
                let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
                break (id.clone(), format!("{PREFIX}{id}_{secret}"));
            }
        };
        self.entries.push(TokenEntry {
            id,
            credential: Credential::Token,
            sha256: hex::encode(Sha256::digest(token.as_bytes())),
            issued_at: RecordTime::now(),
            revoked_at: None,
            principal,
        });
        self.save()?;
        Ok((token, self.entries.last().expect("just pushed")))
    }

    /// Registers a client certificate (DER) for `principal` and saves the
    /// file.
    pub fn register_certificate(
        &mut self,
        principal: Principal,
        der: &[u8],
    ) -> Result<&TokenEntry, TokenError> {
        principal.check()?;
        if self
            .entries
            .iter()
            .any(|e| e.revoked_at.is_none() && e.principal.name == principal.name)
        {
            return Err(TokenError::NameTaken(principal.name));
        }
        let sha256 = hex::encode(Sha256::digest(der));
        self.entries.push(TokenEntry {
            id: sha256[..8].to_owned(),
            credential: Credential::Certificate,
            sha256,
            issued_at: RecordTime::now(),
            revoked_at: None,
            principal,
        });
        self.save()?;
        Ok(self.entries.last().expect("just pushed"))
    }

    /// Revokes the token with this id, or the one in force with this name.
    pub fn revoke(&mut self, id_or_name: &str) -> Result<&TokenEntry, TokenError> {
        let index = self
            .entries
            .iter()
            .position(|e| e.id == id_or_name)
            .or_else(|| {
                self.entries
                    .iter()
                    .position(|e| e.revoked_at.is_none() && e.principal.name == id_or_name)
            })
            .ok_or_else(|| TokenError::Unknown(id_or_name.to_owned()))?;
        if self.entries[index].revoked_at.is_none() {
            self.entries[index].revoked_at = Some(RecordTime::now());
            self.save()?;
        }
        Ok(&self.entries[index])
    }

    /// Writes the file atomically (a temporary file renamed over it),
    /// readable by its owner only.
    fn save(&self) -> Result<(), TokenError> {
        let err = |source| TokenError::Write {
            path: self.path.clone(),
            source,
        };
        let text = toml::to_string_pretty(&TokenFile {
            tokens: self.entries.clone(),
        })
        .map_err(|e| err(std::io::Error::other(e)))?;
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(err)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(err)?;
        }
        tmp.write_all(
            b"# qledger API tokens: SHA-256 hashes only, never the tokens.\n# Managed with `qledger tokens issue|list|revoke`.\n\n",
        )
        .and_then(|_| tmp.write_all(text.as_bytes()))
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(err)?;
        tmp.persist(&self.path).map_err(|e| err(e.error))?;
        Ok(())
    }

    /// The principal of `token`, if it is issued here and not revoked.
    pub fn authenticate(&self, token: &str) -> Option<Arc<Principal>> {
        self.index().authenticate(token)
    }

    fn index(&self) -> TokenIndex {
        TokenIndex::new(&self.entries)
    }
}

/// The credentials in force, for authenticating requests: tokens by id,
/// certificates by hash.
#[derive(Debug, Default)]
struct TokenIndex {
    by_id: HashMap<String, ([u8; 32], Arc<Principal>)>,
    by_certificate: HashMap<[u8; 32], Arc<Principal>>,
}

impl TokenIndex {
    fn new(entries: &[TokenEntry]) -> TokenIndex {
        let mut index = TokenIndex::default();
        for e in entries.iter().filter(|e| e.revoked_at.is_none()) {
            let Some(hash) = hex::decode(&e.sha256)
                .ok()
                .and_then(|h| <[u8; 32]>::try_from(h).ok())
            else {
                continue;
            };
            let principal = Arc::new(e.principal.clone());
            match e.credential {
                Credential::Token => {
                    index.by_id.insert(e.id.clone(), (hash, principal));
                }
                Credential::Certificate => {
                    index.by_certificate.insert(hash, principal);
                }
            }
        }
        index
    }

    fn authenticate(&self, token: &str) -> Option<Arc<Principal>> {
        let rest = token.strip_prefix(PREFIX)?;
        let (id, _) = rest.split_once('_')?;
        let (hash, principal) = self.by_id.get(id)?;
        let given: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        constant_time_eq(&given, hash).then(|| Arc::clone(principal))
    }
}

/// Equal, in time independent of where the bytes differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token file as a running server sees it: reloaded when the file
/// changes ([`Tokens::reload_if_changed`], called every second).
#[derive(Debug)]
pub struct Tokens {
    path: PathBuf,
    state: RwLock<(Option<SystemTime>, TokenIndex)>,
}

impl Tokens {
    pub fn open(path: &Path) -> Result<Tokens, TokenError> {
        let store = TokenStore::load(path)?;
        Ok(Tokens {
            path: path.to_owned(),
            state: RwLock::new((modified(path), store.index())),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn authenticate(&self, token: &str) -> Option<Arc<Principal>> {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .authenticate(token)
    }

    /// The principal of a verified client certificate, by its SHA-256.
    pub fn authenticate_certificate(&self, fingerprint: &[u8; 32]) -> Option<Arc<Principal>> {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .by_certificate
            .get(fingerprint)
            .cloned()
    }

    /// Reloads the file if its modification time changed. A file that no
    /// longer loads keeps the tokens in force as they were, and says why.
    pub fn reload_if_changed(&self) -> Result<bool, TokenError> {
        let now = modified(&self.path);
        if now == self.state.read().unwrap_or_else(|e| e.into_inner()).0 {
            return Ok(false);
        }
        let store = TokenStore::load(&self.path)?;
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = (now, store.index());
        Ok(true)
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn auditor(name: &str) -> Principal {
        Principal::new(name, Role::Auditor)
    }

    #[test]
    fn a_token_authenticates_until_revoked_and_only_its_hash_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        let mut store = TokenStore::load(&path).unwrap();
        let (token, entry) = store.issue(auditor("audit-1")).unwrap();
        let id = entry.id.clone();
        assert!(token.starts_with(&format!("{PREFIX}{id}_")));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&token));
        assert!(!text.contains(token.rsplit('_').next().unwrap()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        let tokens = Tokens::open(&path).unwrap();
        assert_eq!(tokens.authenticate(&token).unwrap().name, "audit-1");
        let mut forged = token.clone();
        forged.pop();
        forged.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(tokens.authenticate(&forged).is_none());
        assert!(tokens.authenticate("qlt_ffffffff_x").is_none());
        assert!(tokens.authenticate("Bearer").is_none());

        let mut store = TokenStore::load(&path).unwrap();
        assert!(matches!(
            store.issue(auditor("audit-1")),
            Err(TokenError::NameTaken(_))
        ));
        store.revoke("audit-1").unwrap();
        // The mtime may not move within the file system's granularity.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let reloaded = Tokens::open(&path).unwrap();
        assert!(reloaded.authenticate(&token).is_none());
        let mut store = TokenStore::load(&path).unwrap();
        store.issue(auditor("audit-1")).unwrap();
        assert!(matches!(
            store.revoke("nobody"),
            Err(TokenError::Unknown(_))
        ));
    }

    #[test]
    fn an_incomplete_principal_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = TokenStore::load(&dir.path().join("t.toml")).unwrap();
        assert!(matches!(
            store.issue(Principal::new("p", Role::Payer)),
            Err(TokenError::Incomplete(_))
        ));
    }
}
