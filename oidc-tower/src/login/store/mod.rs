//! The session store behind a [`LoginLayer`](super::LoginLayer), and the shared stores.
//!
//! The layer keeps sessions in any tower-sessions store
//! ([`LoginLayer::with_store`](super::LoginLayer::with_store)); the default is tower-sessions'
//! `MemoryStore`. Apps served by several instances use a store they share and that is also a
//! [`SessionRegistry`] ([`LoginLayer::with_shared_store`](super::LoginLayer::with_shared_store)).

use std::sync::Arc;

use async_trait::async_trait;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::Result;

use super::registry::SessionRegistry;

/// The store a [`LoginLayer`](super::LoginLayer) keeps its sessions in, as given to the
/// session layer of [`LoginLayer::session_layer`](super::LoginLayer::session_layer).
#[derive(Clone)]
pub struct LoginStore {
    pub(crate) sessions: Arc<dyn SessionStore>,
    pub(crate) registry: Arc<dyn SessionRegistry>,
}

impl std::fmt::Debug for LoginStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginStore")
            .field("sessions", &self.sessions)
            .field("registry", &self.registry)
            .finish()
    }
}

#[async_trait]
impl SessionStore for LoginStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        self.sessions.create(record).await
    }

    async fn save(&self, record: &Record) -> Result<()> {
        self.sessions.save(record).await
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        self.sessions.load(id).await
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        self.sessions.delete(id).await
    }
}
