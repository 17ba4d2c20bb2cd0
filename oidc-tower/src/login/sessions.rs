//! The one owner of login sessions: the store and the registry, the caches, the timeouts and
//! the registry's key scheme.
//!
//! [`Sessions`] offers what the endpoints need and nothing else:
//!
//! | operation | used by |
//! |---|---|
//! | [`begin`](Sessions::begin): a pending login (transaction) stored in the browser's session | `start.rs` |
//! | [`take_transaction`](Sessions::take_transaction) and [`complete`](Sessions::complete): the pending login consumed, then the logged-in session created and indexed | `callback.rs` |
//! | [`current`](Sessions::current): the login of a request, with timeouts, refresh and revalidation (`renew`) | `service.rs` (code in `refresh.rs`) |
//! | [`end`](Sessions::end): the browser's own session ended (RP-initiated logout) | `logout.rs` |
//! | [`end_by`](Sessions::end_by): the sessions of a provider session or a user ended (back-channel logout) | `backchannel.rs` |
//!
//! Every failure is a [`SessionError`]; the endpoint files turn it into a page in one place
//! (`pages::session_error_page`). "End this session everywhere" (the mark every instance
//! checks, and this instance's cache) is [`Sessions::end_everywhere`], and every registry
//! entry about a session lives [`Sessions::registry_ttl`] (the absolute timeout).

use std::sync::Arc;
use std::time::Duration;

use oidc_core::error::FlowError;
use oidc_core::flow::Transaction;
use tower_sessions::cookie::time;
use tower_sessions::session::Id;
use tower_sessions::{Expiry, Session};

use super::registry::RegistryError;
use super::session::{LOGIN_KEY, LoggedIn, LoginState, TX_KEY};
use super::store::LoginStore;

/// How long a login stays in the cache of recent logins without its record being read.
pub(crate) const LOGIN_CACHE_TTL: Duration = Duration::from_secs(30);

/// Why a session operation failed. Each variant has one page (`pages::session_error_page`).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum SessionError {
    /// The session store failed (fail closed: 503).
    #[error("session store failed: {0}")]
    Store(Arc<dyn std::error::Error + Send + Sync>),
    /// The session registry failed (fail closed: 503).
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The store gave a saved session no id.
    #[error("the session store gave the session no id")]
    NoId,
    /// Another instance held a session's refresh lock for too long.
    #[error("another instance is still refreshing the session")]
    Busy,
    /// The provider refused or failed (a refresh or a revalidation).
    #[error(transparent)]
    Provider(#[from] FlowError),
    /// No pending login of this browser has the response's `state`.
    #[error("no pending sign-in of this browser has this state")]
    UnknownTransaction,
    /// The pending login was found, but it is older than the transaction lifetime.
    #[error("the sign-in took too long")]
    ExpiredTransaction,
    /// The provider session was logged out (back-channel) while the login finished.
    #[error("the provider session ended during the login")]
    ProviderSessionEnded,
}

impl From<tower_sessions::session::Error> for SessionError {
    fn from(e: tower_sessions::session::Error) -> Self {
        Self::Store(Arc::new(e))
    }
}

impl From<tower_sessions::session_store::Error> for SessionError {
    fn from(e: tower_sessions::session_store::Error) -> Self {
        Self::Store(Arc::new(e))
    }
}

/// The timeouts and limits of sessions, in seconds where they are durations.
#[derive(Debug, Clone)]
pub(crate) struct Timeouts {
    pub(crate) transaction_lifetime: i64,
    pub(crate) max_transactions: usize,
    pub(crate) idle: i64,
    pub(crate) absolute: i64,
    pub(crate) refresh_margin: i64,
    pub(crate) revalidate_every: i64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            transaction_lifetime: 600,
            max_transactions: 5,
            idle: 30 * 60,
            absolute: 12 * 3600,
            refresh_margin: 60,
            revalidate_every: 300,
        }
    }
}

/// Whose sessions a back-channel logout ends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EndBy<'a> {
    /// Those logged in with this provider session (`sid`).
    ProviderSession(&'a str),
    /// Every session of this user (`sub`).
    User(&'a str),
}

/// The owner of login sessions (see the module docs).
#[derive(Clone)]
pub(crate) struct Sessions {
    pub(crate) store: LoginStore,
    pub(crate) timeouts: Timeouts,
    /// Recent logins by session id, so that a request of a session that needs no change
    /// neither reads nor decodes the session record (see `current`).
    pub(super) logins: moka::sync::Cache<Id, Arc<LoggedIn>>,
    /// Refreshes in progress, by session and access token (one per session and grant).
    pub(super) refreshes: moka::future::Cache<String, Arc<LoginState>>,
}

impl Sessions {
    pub(crate) fn new(store: LoginStore) -> Self {
        Self {
            store,
            timeouts: Timeouts::default(),
            logins: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(LOGIN_CACHE_TTL)
                .build(),
            refreshes: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(10))
                .build(),
        }
    }

    /// How long the registry keeps what it knows of a session (its indexes, its ended mark):
    /// the absolute timeout, after which no record of the session is valid anyway.
    pub(super) fn registry_ttl(&self) -> Duration {
        Duration::from_secs(self.timeouts.absolute.unsigned_abs())
    }

    /// Ends session `id` everywhere: marks it in the registry, which every instance checks on
    /// every request (so that one holding its record in a request in flight cannot use it or
    /// write it back), and drops it from this instance's cache.
    pub(super) async fn end_everywhere(&self, id: &str) -> Result<(), SessionError> {
        self.store
            .registry
            .end(&ended_key(id), self.registry_ttl())
            .await?;
        if let Ok(id) = id.parse::<Id>() {
            self.logins.invalidate(&id);
        }
        Ok(())
    }

    /// Stores `tx` among the browser's pending logins (the oldest dropped beyond the limit)
    /// and writes the session at once.
    pub(crate) async fn begin(
        &self,
        session: &Session,
        tx: Transaction,
        now: i64,
    ) -> Result<(), SessionError> {
        let mut txs: Vec<Transaction> = session.get(TX_KEY).await?.unwrap_or_default();
        txs.push(tx);
        self.prune(&mut txs, now);
        session.insert(TX_KEY, &txs).await?;
        // A session that holds only pending logins lives as long as they do, not the idle
        // timeout: login starts without a cookie cost the store minutes each (DOS-03), and
        // the cookie that carries the state lives at most the transaction lifetime (SES-03).
        // The next request's session manager brings back the idle timeout.
        if session.get_value(LOGIN_KEY).await?.is_none() {
            session.set_expiry(Some(Expiry::OnInactivity(time::Duration::seconds(
                self.timeouts.transaction_lifetime,
            ))));
        }
        // Written now: when the store is down, the browser gets the 503 page rather than a
        // redirect to a login whose transaction was never stored (tower-sessions would turn
        // the 303 into a bare 500 when its own save fails).
        session.save().await?;
        Ok(())
    }

    /// Finds the pending login whose state is `state` and consumes it, whatever happens
    /// next (single use, written at once: tower-sessions does not save a session whose
    /// response is a server error, so a 502 later would leave it replayable).
    ///
    /// [`SessionError::UnknownTransaction`] when none matches, [`SessionError::ExpiredTransaction`]
    /// when it is too old (consumed all the same).
    pub(crate) async fn take_transaction(
        &self,
        session: &Session,
        state: Option<&str>,
        now: i64,
    ) -> Result<Transaction, SessionError> {
        let mut txs: Vec<Transaction> = session.get(TX_KEY).await?.unwrap_or_default();
        let position = state
            .and_then(|state| txs.iter().position(|tx| tx.matches_state(state)))
            .ok_or(SessionError::UnknownTransaction)?;
        let tx = txs.remove(position);
        self.prune(&mut txs, now);
        if txs.is_empty() {
            session.remove_value(TX_KEY).await?;
        } else {
            session.insert(TX_KEY, &txs).await?;
        }
        session.save().await?;
        if tx
            .created_at()
            .saturating_add(self.timeouts.transaction_lifetime)
            <= now
        {
            return Err(SessionError::ExpiredTransaction);
        }
        Ok(tx)
    }

    /// Makes `session` the logged-in session `state`: a login already in it ends everywhere,
    /// the id is cycled (SES-01: a planted id is never authenticated), the record is written
    /// and indexed by `sub` and `sid` for back-channel logout.
    ///
    /// Fails closed: a session the index could not record is flushed (back-channel logout
    /// could not find it), and one whose provider session `sid` was logged out meanwhile is
    /// ended ([`SessionError::ProviderSessionEnded`]).
    pub(crate) async fn complete(
        &self,
        session: &Session,
        state: &LoginState,
        sid: Option<&str>,
    ) -> Result<(), SessionError> {
        // A login already in this session (a second login in the same browser) ends with the
        // old id on every instance, even where it is still cached; when the record cannot be
        // read, the old id is ended all the same.
        let previous = match session.get::<LoginState>(LOGIN_KEY).await {
            Ok(previous) => previous.and(session.id()),
            Err(_) => session.id(),
        };
        if let Some(old) = previous {
            self.end_everywhere(&old.to_string()).await?;
        }
        session.cycle_id().await?;
        session.insert(LOGIN_KEY, state).await?;
        // Saved now for its id, which back-channel logout finds by `sid` and `sub`.
        session.save().await?;
        let id = session.id().ok_or(SessionError::NoId)?.to_string();
        let fail_closed = async |error: SessionError| {
            let _ = session.flush().await;
            Err(error)
        };
        let registry = &self.store.registry;
        let ttl = self.registry_ttl();
        let mut indexed = registry
            .add_member(&sub_set(&state.issuer, state.tokens.subject()), &id, ttl)
            .await;
        if let (Ok(()), Some(sid)) = (&indexed, sid) {
            indexed = registry
                .add_member(&sid_set(&state.issuer, sid), &id, ttl)
                .await;
        }
        if let Err(e) = indexed {
            return fail_closed(e.into()).await;
        }
        // A back-channel logout of this provider session may have arrived while the login was
        // finishing (before the index above existed).
        if let Some(sid) = sid {
            match registry.contains(&sid_ended_key(&state.issuer, sid)).await {
                Ok(false) => {}
                Ok(true) => {
                    let _ = self.end_everywhere(&id).await;
                    return fail_closed(SessionError::ProviderSessionEnded).await;
                }
                Err(e) => return fail_closed(e.into()).await,
            }
        }
        Ok(())
    }

    /// Ends the browser's own session (RP-initiated logout): everywhere when it is logged in,
    /// and its record deleted. Returns the login it held.
    pub(crate) async fn end(&self, session: &Session) -> Result<Option<LoginState>, SessionError> {
        let state: Option<LoginState> = session.get(LOGIN_KEY).await.ok().flatten();
        if let Some(id) = session.id() {
            if state.is_some() {
                self.end_everywhere(&id.to_string()).await?;
            } else {
                self.logins.invalidate(&id);
            }
        }
        session.flush().await?;
        Ok(state)
    }

    /// Ends the sessions of provider session `sid` or of user `sub` at `issuer`
    /// (back-channel logout): each marked ended everywhere and deleted. Returns how many
    /// there were. A provider session is also remembered as ended, so that a login of it
    /// finishing later does not survive ([`complete`](Self::complete)).
    ///
    /// On failure the sessions not yet ended are put back in the index, so that a
    /// redelivery of the logout finds them.
    pub(crate) async fn end_by(&self, issuer: &str, by: EndBy<'_>) -> Result<usize, SessionError> {
        let registry = &self.store.registry;
        let ttl = self.registry_ttl();
        let set = match by {
            EndBy::ProviderSession(sid) => {
                registry.insert(&sid_ended_key(issuer, sid), ttl).await?;
                sid_set(issuer, sid)
            }
            EndBy::User(sub) => sub_set(issuer, sub),
        };
        let ids = registry.take_members(&set).await?;
        for (done, id) in ids.iter().enumerate() {
            let ended = async {
                self.end_everywhere(id).await?;
                if let Ok(parsed) = id.parse::<Id>() {
                    self.store.sessions.delete(&parsed).await?;
                }
                Ok::<_, SessionError>(())
            }
            .await;
            if let Err(e) = ended {
                for rest in ids.iter().skip(done) {
                    let _ = registry.add_member(&set, rest, ttl).await;
                }
                return Err(e);
            }
        }
        Ok(ids.len())
    }

    /// Records the use of logout token `jti` of `issuer` for `remember`. Returns `false` when
    /// it was used before (a replay).
    pub(crate) async fn use_logout_token(
        &self,
        issuer: &str,
        jti: &str,
        remember: Duration,
    ) -> Result<bool, SessionError> {
        Ok(self
            .store
            .registry
            .insert(&jti_key(issuer, jti), remember)
            .await?)
    }

    /// Forgets the use of logout token `jti` (its logout failed: a redelivery must be
    /// accepted).
    pub(crate) async fn release_logout_token(&self, issuer: &str, jti: &str) {
        if let Err(e) = self.store.registry.remove(&jti_key(issuer, jti)).await {
            tracing::warn!(error = %e, "could not release the logout token's jti");
        }
    }

    /// Drops expired transactions and keeps at most the limit (the newest).
    fn prune(&self, txs: &mut Vec<Transaction>, now: i64) {
        let lifetime = self.timeouts.transaction_lifetime;
        txs.retain(|tx| tx.created_at().saturating_add(lifetime) > now);
        if txs.len() > self.timeouts.max_transactions {
            let excess = txs.len() - self.timeouts.max_transactions;
            txs.drain(..excess);
        }
    }
}

// The registry's key scheme. Keys are namespaced per app by the store (see `store::namespace`).

/// Registry key: the session `id` was ended (by logout, possibly on another instance). A
/// request still holding the session's old record finds it and cannot bring it back.
pub(super) fn ended_key(id: &str) -> String {
    format!("oidc:ended:{id}")
}

/// Registry key: one instance at a time refreshes the tokens of session `id`.
pub(super) fn refresh_lock_key(id: &str) -> String {
    format!("oidc:refresh:{id}")
}

/// `issuer` in a registry key: length-prefixed, so that no issuer and claim pair can spell
/// the key of another (`https://a` + `:8443:x` against `https://a:8443` + `x`).
fn issuer_part(issuer: &str) -> String {
    format!("{}:{issuer}", issuer.len())
}

/// Registry set: the sessions of provider session `sid` at `issuer`.
fn sid_set(issuer: &str, sid: &str) -> String {
    format!("oidc:sid:{}:{sid}", issuer_part(issuer))
}

/// Registry key: provider session `sid` at `issuer` was logged out (a login finishing after
/// the logout must not survive it).
fn sid_ended_key(issuer: &str, sid: &str) -> String {
    format!("oidc:sid-ended:{}:{sid}", issuer_part(issuer))
}

/// Registry set: the sessions of user `sub` at `issuer`.
fn sub_set(issuer: &str, sub: &str) -> String {
    format!("oidc:sub:{}:{sub}", issuer_part(issuer))
}

/// Registry key: logout token `jti` of `issuer` was used.
fn jti_key(issuer: &str, jti: &str) -> String {
    format!("oidc:jti:{}:{jti}", issuer_part(issuer))
}
