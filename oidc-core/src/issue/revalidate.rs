//! Revalidation of users with their provider before tokens are minted for them.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use super::error::{BuildError, MintError, RevalidationError};
use super::issuer::{MintRequest, MintedToken, TokenIssuer};
use crate::clock::Clock;
use crate::error::{FlowError, FlowErrorKind};
use crate::flow::{OidcClient, TokenSet};

/// The default revalidation interval: 5 minutes.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// The longest pause before asking an unavailable provider again.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);

/// Keeps each logged-in user's provider tokens server-side and asks the provider, at most
/// every interval, whether the user may still have tokens, before any is minted for them.
///
/// Cheap to clone; clones share the users. See the [module docs](crate::issue#revalidation).
#[derive(Clone)]
pub struct Revalidator {
    inner: Arc<Inner>,
}

struct Inner {
    client: OidcClient,
    interval: Duration,
    clock: Option<Clock>,
    require_userinfo: bool,
    users: moka::sync::Cache<String, Arc<Slot>>,
}

impl std::fmt::Debug for Revalidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revalidator")
            .field("issuer", &self.inner.client.provider().issuer())
            .field("client_id", &self.inner.client.client_id())
            .field("interval", &self.inner.interval)
            .field("require_userinfo", &self.inner.require_userinfo)
            .field("users", &self.inner.users.entry_count())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Revalidator`]. See [`Revalidator::builder`].
#[must_use]
pub struct RevalidatorBuilder {
    client: OidcClient,
    interval: Duration,
    clock: Option<Clock>,
    require_userinfo: bool,
    max_users: u64,
}

impl std::fmt::Debug for RevalidatorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevalidatorBuilder")
            .field("interval", &self.interval)
            .field("require_userinfo", &self.require_userinfo)
            .field("max_users", &self.max_users)
            .finish_non_exhaustive()
    }
}

/// One user's login, behind an async lock: the single flight of its revalidation.
struct Slot {
    state: tokio::sync::Mutex<State>,
}

struct State {
    /// The provider's tokens, the refresh token among them (rotated ones replace it).
    tokens: TokenSet,
    /// When the provider last confirmed the user (the login counts).
    checked_at: SystemTime,
    verdict: Verdict,
}

enum Verdict {
    Active,
    /// The provider said no: final for this login.
    Refused(FlowError),
    /// The provider could not be asked; not again before `retry_at`.
    Unavailable {
        retry_at: SystemTime,
        cause: FlowError,
    },
}

/// A user the provider still accepts, as of the last check.
#[derive(Debug, Clone)]
pub struct ActiveUser {
    subject: String,
    id_claims: Map<String, Value>,
    checked_at: SystemTime,
}

impl ActiveUser {
    /// The provider's `sub` for the user.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The claims of the latest verified ID token.
    pub fn id_claims(&self) -> &Map<String, Value> {
        &self.id_claims
    }

    /// When the provider last confirmed the user.
    pub fn checked_at(&self) -> SystemTime {
        self.checked_at
    }
}

impl Revalidator {
    /// Starts configuring a revalidator that refreshes with `client` (the client the users
    /// logged in with: a refresh token is bound to its client).
    pub fn builder(client: OidcClient) -> RevalidatorBuilder {
        RevalidatorBuilder {
            client,
            interval: DEFAULT_INTERVAL,
            clock: None,
            require_userinfo: false,
            max_users: 100_000,
        }
    }

    fn now(&self) -> SystemTime {
        self.inner
            .clock
            .as_ref()
            .map_or_else(SystemTime::now, |c| c())
    }

    /// Keeps `tokens` (from [`OidcClient::complete`]) under `key`, a key of the
    /// application's choosing for this login: a session id, or a hash of a credential handed
    /// to the user. The login counts as a check. A login already under `key` is replaced,
    /// a refused one included (the user logged in again).
    ///
    /// # Errors
    ///
    /// [`RevalidationError::NoRefreshToken`] when the provider issued no refresh token: such
    /// a login cannot be revalidated, so no token is minted for it.
    pub fn register(
        &self,
        key: impl Into<String>,
        tokens: TokenSet,
    ) -> Result<(), RevalidationError> {
        if tokens.refresh_token().is_none() {
            return Err(RevalidationError::NoRefreshToken);
        }
        let slot = Slot {
            state: tokio::sync::Mutex::new(State {
                tokens,
                checked_at: self.now(),
                verdict: Verdict::Active,
            }),
        };
        self.inner.users.insert(key.into(), Arc::new(slot));
        Ok(())
    }

    /// Forgets the login under `key` (logout); the provider's tokens are dropped.
    pub fn remove(&self, key: &str) {
        self.inner.users.invalidate(key);
    }

    /// Whether the user under `key` may have tokens: answered from the last check while it is
    /// younger than the interval, otherwise after asking the provider (one refresh, shared
    /// by every concurrent caller for the same key).
    ///
    /// # Errors
    ///
    /// [`RevalidationError::UnknownUser`], [`RevalidationError::Refused`] (final for this
    /// login), [`RevalidationError::Unavailable`] (fail closed while the provider cannot be
    /// asked).
    pub async fn check(&self, key: &str) -> Result<ActiveUser, RevalidationError> {
        let slot = self
            .inner
            .users
            .get(key)
            .ok_or(RevalidationError::UnknownUser)?;
        // In a task of its own: a refresh once sent completes, and its rotated refresh token
        // is stored, even when the caller goes away meanwhile (a lost rotated refresh token
        // would end the login at the next check).
        let this = self.clone();
        tokio::spawn(async move { this.check_slot(&slot).await })
            .await
            .unwrap_or_else(|_| {
                Err(RevalidationError::Unavailable {
                    retry_after: Duration::ZERO,
                    cause: FlowError::InvalidResponse("the revalidation did not complete"),
                })
            })
    }

    /// [`Revalidator::check`], then [`TokenIssuer::mint`] for the user's `sub`.
    ///
    /// # Errors
    ///
    /// [`MintError::User`] when the check fails (no token is minted), or the errors of
    /// [`TokenIssuer::mint`].
    pub async fn mint(
        &self,
        key: &str,
        issuer: &TokenIssuer,
        request: &MintRequest,
    ) -> Result<MintedToken, MintError> {
        let user = self.check(key).await.map_err(MintError::User)?;
        issuer.mint(user.subject(), request)
    }

    async fn check_slot(&self, slot: &Slot) -> Result<ActiveUser, RevalidationError> {
        let mut state = slot.state.lock().await;
        let now = self.now();
        match &state.verdict {
            Verdict::Refused(cause) => return Err(RevalidationError::Refused(cause.clone())),
            Verdict::Unavailable { retry_at, cause } if *retry_at > now => {
                return Err(RevalidationError::Unavailable {
                    retry_after: retry_at.duration_since(now).unwrap_or_default(),
                    cause: cause.clone(),
                });
            }
            Verdict::Active
                if now
                    .duration_since(state.checked_at)
                    .is_ok_and(|age| age < self.inner.interval) =>
            {
                return Ok(active(&state));
            }
            Verdict::Active | Verdict::Unavailable { .. } => {}
        }
        match self.revalidate(&state.tokens).await {
            Ok(tokens) => {
                state.tokens = tokens;
                state.checked_at = self.now();
                state.verdict = Verdict::Active;
                Ok(active(&state))
            }
            Err(cause) if provider_said_no(&cause) => {
                tracing::info!(error = %cause, "the provider refused to revalidate a user: no more tokens for this login");
                state.verdict = Verdict::Refused(cause.clone());
                Err(RevalidationError::Refused(cause))
            }
            Err(cause) => {
                tracing::warn!(error = %cause, "the provider could not revalidate a user: minting refused until it answers");
                let pause = self.inner.interval.min(MAX_RETRY_PAUSE);
                state.verdict = Verdict::Unavailable {
                    retry_at: now + pause,
                    cause: cause.clone(),
                };
                Err(RevalidationError::Unavailable {
                    retry_after: pause,
                    cause,
                })
            }
        }
    }

    async fn revalidate(&self, tokens: &TokenSet) -> Result<TokenSet, FlowError> {
        let client = &self.inner.client;
        let fresh = client.refresh(tokens).await?;
        if self.inner.require_userinfo {
            client
                .userinfo(fresh.access_token(), fresh.subject())
                .await?;
        }
        Ok(fresh)
    }
}

fn active(state: &State) -> ActiveUser {
    ActiveUser {
        subject: state.tokens.subject().to_owned(),
        id_claims: state.tokens.id_claims().clone(),
        checked_at: state.checked_at,
    }
}

/// Whether `error` is the provider's verdict on the user (refused grant, changed ID token,
/// UserInfo refusal), as opposed to the provider being unavailable or broken.
fn provider_said_no(error: &FlowError) -> bool {
    match error {
        // RFC 6749 §5.2 has no such codes, but providers send them for their own outages.
        FlowError::TokenEndpoint { error } => {
            !matches!(error.as_str(), "temporarily_unavailable" | "server_error")
        }
        other => other.kind() == FlowErrorKind::Rejected,
    }
}

impl RevalidatorBuilder {
    /// How old the last check may be before the provider is asked again. The default value
    /// is 5 minutes.
    ///
    /// # Security
    ///
    /// A user disabled at the provider gets new tokens for up to this long, and keeps using
    /// the last one for its lifetime after that.
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Also fetches UserInfo with the refreshed access token at each check; a refusal
    /// (401/403) or another `sub` counts as the provider saying no. The default value is
    /// `false`: the refresh alone asks the provider (the refreshed ID token must keep `sub`).
    pub fn require_userinfo(mut self, required: bool) -> Self {
        self.require_userinfo = required;
        self
    }

    /// The most logins kept; beyond, the least recently used are forgotten (their users
    /// must log in again). The default value is 100 000.
    pub fn with_max_users(mut self, max_users: u64) -> Self {
        self.max_users = max_users;
        self
    }

    /// Replaces the clock that times the interval. The default is the system clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Checks the settings and builds the revalidator.
    ///
    /// # Errors
    ///
    /// [`BuildError::Interval`] for a zero interval.
    pub fn build(self) -> Result<Revalidator, BuildError> {
        if self.interval.is_zero() {
            return Err(BuildError::Interval);
        }
        Ok(Revalidator {
            inner: Arc::new(Inner {
                client: self.client,
                interval: self.interval,
                clock: self.clock,
                require_userinfo: self.require_userinfo,
                users: moka::sync::Cache::new(self.max_users),
            }),
        })
    }
}
