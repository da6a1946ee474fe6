//! A write transaction over the views: reads see its own writes, and
//! [`Txn::into_batch`] turns it into one RocksDB `WriteBatch`, so a batch of
//! log records and the offsets they advance commit atomically.
//!
//! Only point reads: the projector never scans, so an overlay map suffices.

use std::collections::BTreeMap;

use rocksdb::{WriteBatch, DB};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ProjectorError;
use crate::keys::ViewKey;

pub(crate) struct Txn<'db> {
    db: &'db DB,
    /// Pending writes; `None` deletes the key.
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'db> Txn<'db> {
    pub(crate) fn new(db: &'db DB) -> Txn<'db> {
        Txn {
            db,
            writes: BTreeMap::new(),
        }
    }

    pub(crate) fn get_raw(&self, key: &ViewKey) -> Result<Option<Vec<u8>>, ProjectorError> {
        if let Some(v) = self.writes.get(key.as_bytes()) {
            return Ok(v.clone());
        }
        self.db
            .get(key.as_bytes())
            .map_err(|source| ProjectorError::Storage {
                path: self.db.path().display().to_string(),
                source,
            })
    }

    pub(crate) fn get<T: DeserializeOwned>(
        &self,
        key: &ViewKey,
    ) -> Result<Option<T>, ProjectorError> {
        match self.get_raw(key)? {
            None => Ok(None),
            Some(bytes) => decode(key, &bytes).map(Some),
        }
    }

    /// Like [`Txn::get`], for values stored as JSON ([`encode_json`]).
    pub(crate) fn get_json<T: DeserializeOwned>(
        &self,
        key: &ViewKey,
    ) -> Result<Option<T>, ProjectorError> {
        match self.get_raw(key)? {
            None => Ok(None),
            Some(bytes) => decode_json(key, &bytes).map(Some),
        }
    }

    pub(crate) fn put_json<T: Serialize>(&mut self, key: ViewKey, value: &T) {
        self.put_raw(key, encode_json(value));
    }

    pub(crate) fn exists(&self, key: &ViewKey) -> Result<bool, ProjectorError> {
        Ok(self.get_raw(key)?.is_some())
    }

    pub(crate) fn put_raw(&mut self, key: ViewKey, value: Vec<u8>) {
        self.writes.insert(key.into_bytes(), Some(value));
    }

    pub(crate) fn delete(&mut self, key: ViewKey) {
        self.writes.insert(key.into_bytes(), None);
    }

    pub(crate) fn put<T: Serialize>(&mut self, key: ViewKey, value: &T) {
        self.put_raw(key, encode(value));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    pub(crate) fn into_batch(self) -> WriteBatch {
        let mut batch = WriteBatch::default();
        for (k, v) in self.writes {
            match v {
                Some(v) => batch.put(k, v),
                None => batch.delete(k),
            }
        }
        batch
    }
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("view values serialise")
}

pub(crate) fn decode<T: DeserializeOwned>(
    key: &ViewKey,
    bytes: &[u8],
) -> Result<T, ProjectorError> {
    postcard::from_bytes(bytes).map_err(|e| ProjectorError::Corrupt {
        key: hex::encode(key.as_bytes()),
        reason: e.to_string(),
    })
}

/// JSON, for the values whose shape postcard cannot carry (internally
/// tagged enums, flattened fields: the claims view's decisions). Still
/// deterministic: fields in declaration order.
pub(crate) fn encode_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("view values serialise")
}

pub(crate) fn decode_json<T: DeserializeOwned>(
    key: &ViewKey,
    bytes: &[u8],
) -> Result<T, ProjectorError> {
    serde_json::from_slice(bytes).map_err(|e| ProjectorError::Corrupt {
        key: hex::encode(key.as_bytes()),
        reason: e.to_string(),
    })
}
