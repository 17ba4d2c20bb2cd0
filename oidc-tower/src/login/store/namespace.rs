//! The app a session belongs to: a per-app namespace for the keys of a shared store, and the
//! check that a record read back was written by this app.
//!
//! Several apps may share one Redis or PostgreSQL server. Each [`LoginLayer`] has a store
//! namespace ([`LoginLayer::with_store_namespace`]; by default the client id of its first
//! provider), and
//!
//! - every registry key and set name is prefixed with it (length-prefixed, so that no two
//!   namespaces can spell each other's keys);
//! - a session's key in the store is its cookie id mixed with the namespace (a fixed 128-bit
//!   mask derived from the namespace with FNV-1a, XORed in and out), so that the same cookie
//!   value addresses a different record in each app;
//! - every record the layer creates carries the namespace (`oidc.app`), and a login records
//!   the client id it was made for: a record read back that names another namespace, or a
//!   login of a client id that is not one of this layer's providers', is treated as no session
//!   at all (the layer neither uses nor writes it, so the other app's session stays intact).
//!
//! Instances of one app (same client id, or the same explicit namespace) share sessions,
//! whatever URL each is reached at; apps with different namespaces never accept each other's. The empty namespace keeps the keys as
//! they were before namespaces existed (the record checks still apply).
//!
//! [`LoginLayer`]: crate::login::LoginLayer
//! [`LoginLayer::with_store_namespace`]: crate::login::LoginLayer::with_store_namespace

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::Result;

use crate::login::registry::{RegistryError, SessionRegistry};
use crate::login::session::LOGIN_KEY;

/// Session key of the namespace of the app that created the record.
pub(crate) const APP_KEY: &str = "oidc.app";

/// Who a layer is, as far as its store is concerned.
#[derive(Debug)]
pub(crate) struct AppBinding {
    namespace: String,
    /// XORed into session ids on the way to the store and out of it (0 for `""`).
    mask: i128,
    /// Put in front of registry keys and set names (`""` for `""`).
    prefix: String,
    /// The client ids of the layer's providers.
    client_ids: Vec<String>,
}

/// FNV-1a, 128 bits: stable across builds and platforms (instances must agree on it).
fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    bytes.iter().fold(OFFSET, |hash, b| {
        (hash ^ u128::from(*b)).wrapping_mul(PRIME)
    })
}

impl AppBinding {
    pub(crate) fn new(namespace: &str, client_ids: Vec<String>) -> Self {
        let (mask, prefix) = if namespace.is_empty() {
            (0, String::new())
        } else {
            let mut input = b"oidc-tower session namespace\0".to_vec();
            input.extend_from_slice(namespace.as_bytes());
            (
                i128::from_ne_bytes(fnv1a_128(&input).to_ne_bytes()),
                format!("app:{}:{namespace}:", namespace.len()),
            )
        };
        Self {
            namespace: namespace.to_owned(),
            mask,
            prefix,
            client_ids,
        }
    }

    fn store_id(&self, id: &Id) -> Id {
        Id(id.0 ^ self.mask)
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Whether `record` was written by this app: its namespace (when it names one) is ours,
    /// and its login (when it has one) was made for one of our client ids.
    fn accepts(&self, record: &Record) -> bool {
        let namespace_ok = match record.data.get(APP_KEY) {
            None => true,
            Some(Value::String(namespace)) => *namespace == self.namespace,
            Some(_) => false,
        };
        let login_ok = record.data.get(LOGIN_KEY).is_none_or(|login| {
            login
                .get("client_id")
                .and_then(Value::as_str)
                .is_some_and(|id| self.client_ids.iter().any(|ours| ours == id))
        });
        namespace_ok && login_ok
    }
}

/// The sessions of one app in a store that may hold other apps' too.
#[derive(Debug)]
pub(crate) struct BoundSessions {
    pub(crate) inner: Arc<dyn SessionStore>,
    pub(crate) app: Arc<AppBinding>,
}

#[async_trait]
impl SessionStore for BoundSessions {
    async fn create(&self, record: &mut Record) -> Result<()> {
        record.data.insert(
            APP_KEY.to_owned(),
            Value::String(self.app.namespace.clone()),
        );
        record.id = self.app.store_id(&record.id);
        // The store may pick another id (a collision): map back whatever it chose.
        let created = self.inner.create(record).await;
        record.id = self.app.store_id(&record.id);
        created
    }

    async fn save(&self, record: &Record) -> Result<()> {
        if self.app.mask == 0 {
            return self.inner.save(record).await;
        }
        let mut stored = record.clone();
        stored.id = self.app.store_id(&record.id);
        self.inner.save(&stored).await
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let loaded = self.inner.load(&self.app.store_id(id)).await?;
        Ok(loaded
            .map(|mut record| {
                record.id = *id;
                record
            })
            .filter(|record| {
                let ours = self.app.accepts(record);
                if !ours {
                    tracing::info!(
                        target: "oidc::rejection",
                        "a session of another app was presented; treated as no session"
                    );
                }
                ours
            }))
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        self.inner.delete(&self.app.store_id(id)).await
    }
}

/// One app's part of a registry that may hold other apps' keys too.
#[derive(Debug)]
pub(crate) struct BoundRegistry {
    pub(crate) inner: Arc<dyn SessionRegistry>,
    pub(crate) app: Arc<AppBinding>,
}

#[async_trait]
impl SessionRegistry for BoundRegistry {
    async fn insert(&self, key: &str, ttl: Duration) -> std::result::Result<bool, RegistryError> {
        self.inner.insert(&self.app.key(key), ttl).await
    }

    async fn contains(&self, key: &str) -> std::result::Result<bool, RegistryError> {
        self.inner.contains(&self.app.key(key)).await
    }

    async fn remove(&self, key: &str) -> std::result::Result<(), RegistryError> {
        self.inner.remove(&self.app.key(key)).await
    }

    async fn add_member(
        &self,
        set: &str,
        member: &str,
        ttl: Duration,
    ) -> std::result::Result<(), RegistryError> {
        self.inner.add_member(&self.app.key(set), member, ttl).await
    }

    async fn take_members(&self, set: &str) -> std::result::Result<Vec<String>, RegistryError> {
        self.inner.take_members(&self.app.key(set)).await
    }

    async fn end(&self, key: &str, ttl: Duration) -> std::result::Result<(), RegistryError> {
        self.inner.end(&self.app.key(key), ttl).await
    }

    async fn is_ended(&self, key: &str) -> std::result::Result<bool, RegistryError> {
        self.inner.is_ended(&self.app.key(key)).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn namespaces_mix_ids_and_prefix_keys_apart() {
        let a = AppBinding::new("app-a", vec!["a".to_owned()]);
        let b = AppBinding::new("app-b", vec!["a".to_owned()]);
        let none = AppBinding::new("", vec!["a".to_owned()]);
        let id = Id(0x1234_5678);
        assert_ne!(a.store_id(&id), b.store_id(&id));
        assert_eq!(
            a.store_id(&a.store_id(&id)),
            id,
            "the mapping is its own inverse"
        );
        assert_eq!(none.store_id(&id), id);
        assert_eq!(none.key("oidc:x"), "oidc:x");
        assert_eq!(a.key("oidc:x"), "app:5:app-a:oidc:x");
        // Stable across builds: instances of one app must agree on the mask.
        assert_eq!(fnv1a_128(b"a"), 0xd228_cb69_6f1a_8caf_7891_2b70_4e4a_8964);
    }
}
