//! The provider's state: its keys and endpoint settings, and the
//! authorization server's registrations, knobs, recordings and issued
//! artifacts. Every endpoint reads and writes it; nothing here serves HTTP.
//!
//! Two locks: [`ProviderState::config`] (keys, JWKS and discovery settings)
//! and [`ProviderState::auth`] (the authorization server). Handlers do
//! their bookkeeping under the lock and sign tokens, and run the tests'
//! mutation closures, outside it (so a closure may call back into the
//! provider).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::client::ClientRegistration;
use crate::crypto::random_token;
use crate::failure::Failure;
use crate::keys::{SigningAlg, keyring};
use crate::knobs::{
    BackchannelDelivery, CallbackIss, IdTokenSigning, LogoutState, RecordedTokenRequest,
};

/// The default `Cache-Control` of the JWKS response.
pub(crate) const DEFAULT_JWKS_CACHE_CONTROL: &str = "public, max-age=300";
const DEFAULT_ACCESS_TOKEN_LIFETIME: i64 = 300;
const DEFAULT_ID_TOKEN_LIFETIME: i64 = 300;
const DEFAULT_CODE_LIFETIME: i64 = 60;

/// A test's mutation of an ID token's claims and header.
pub(crate) type IdTokenMutation =
    Arc<dyn Fn(&mut Map<String, Value>, &mut Map<String, Value>) + Send + Sync + 'static>;
/// A test's mutation of a JSON response body.
pub(crate) type JsonMutation = Arc<dyn Fn(&mut Map<String, Value>) + Send + Sync + 'static>;

/// Mutable settings of a provider, behind one lock.
#[derive(Debug)]
pub(crate) struct Config {
    /// Rotation position of each algorithm's current key.
    pub(crate) current: HashMap<SigningAlg, usize>,
    /// Kids of the published committed keys, in publication order.
    pub(crate) published: Vec<String>,
    /// Extra raw JWK objects appended to the JWKS.
    pub(crate) raw_jwks: Vec<Value>,
    pub(crate) jwks_override: Option<Vec<u8>>,
    pub(crate) jwks_failure: Failure,
    pub(crate) discovery_failure: Failure,
    pub(crate) jwks_cache_control: Option<String>,
    /// Top-level discovery members set (`Some`) or removed (`None`).
    pub(crate) discovery_members: BTreeMap<String, Option<Value>>,
    pub(crate) oauth_metadata_only: bool,
}

impl Config {
    pub(crate) fn new() -> Self {
        let keyring = keyring();
        Config {
            current: SigningAlg::ALL.into_iter().map(|alg| (alg, 0)).collect(),
            published: SigningAlg::ALL
                .into_iter()
                .map(|alg| keyring.key(alg, 0).kid(alg))
                .collect(),
            raw_jwks: Vec::new(),
            jwks_override: None,
            jwks_failure: Failure::None,
            discovery_failure: Failure::None,
            jwks_cache_control: Some(DEFAULT_JWKS_CACHE_CONTROL.to_owned()),
            discovery_members: BTreeMap::new(),
            oauth_metadata_only: false,
        }
    }

    pub(crate) fn current(&self, alg: SigningAlg) -> usize {
        self.current.get(&alg).copied().unwrap_or(0)
    }
}

/// State shared by the handles, the token builders and the server.
#[derive(Debug)]
pub(crate) struct ProviderState {
    pub(crate) addr: SocketAddr,
    pub(crate) issuer: String,
    pub(crate) config: Mutex<Config>,
    pub(crate) jwks_fetches: AtomicUsize,
    pub(crate) discovery_fetches: AtomicUsize,
    /// The authorization server (clients, codes, sessions, grants, knobs).
    pub(crate) auth: Mutex<AuthState>,
    /// The introspection endpoint's answers and recordings.
    pub(crate) introspection: Mutex<crate::endpoints::introspection::IntrospectionState>,
}

impl ProviderState {
    pub(crate) fn config(&self) -> MutexGuard<'_, Config> {
        // A panic while holding the lock cannot leave `Config` inconsistent
        // (every update is a single assignment), so poisoning is ignored.
        self.config.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Rotation position of `alg`'s current key.
    pub(crate) fn current_index(&self, alg: SigningAlg) -> usize {
        self.config().current(alg)
    }

    /// The authorization server state. A panic while holding the lock
    /// leaves it consistent enough for a test server, so poisoning is
    /// ignored.
    pub(crate) fn auth(&self) -> MutexGuard<'_, AuthState> {
        self.auth.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The introspection endpoint's state (poisoning ignored, as for `auth`).
    pub(crate) fn introspection(
        &self,
    ) -> MutexGuard<'_, crate::endpoints::introspection::IntrospectionState> {
        self.introspection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the HTTP handlers see.
#[derive(Clone, Debug)]
pub(crate) struct ServerState {
    pub(crate) provider: Arc<ProviderState>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// An issued authorization code.
#[derive(Clone, Debug)]
pub(crate) struct CodeEntry {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) code_challenge: Option<String>,
    pub(crate) nonce: Option<String>,
    pub(crate) scope: String,
    pub(crate) sub: String,
    pub(crate) auth_time: i64,
    pub(crate) sid: Option<String>,
    pub(crate) expires_at: i64,
    pub(crate) used: bool,
    /// The grant created when the code was redeemed.
    pub(crate) grant: Option<usize>,
}

/// What a redeemed code (and its refresh tokens) stand for.
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    pub(crate) client_id: String,
    pub(crate) sub: String,
    pub(crate) scope: String,
    pub(crate) auth_time: i64,
    pub(crate) sid: Option<String>,
    pub(crate) revoked: bool,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct RefreshEntry {
    pub(crate) grant: usize,
    pub(crate) used: bool,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct AccessEntry {
    pub(crate) grant: usize,
    pub(crate) exp: i64,
}

/// A browser session at the provider (the `op_session` cookie).
#[derive(Clone, Debug)]
pub(crate) struct OpSession {
    pub(crate) sub: String,
    pub(crate) auth_time: i64,
    pub(crate) sid: String,
}

/// The authorization server's registrations, knobs, recordings and issued
/// artifacts.
pub(crate) struct AuthState {
    pub(crate) clients: HashMap<String, ClientRegistration>,
    pub(crate) auto_login: Option<String>,
    pub(crate) access_token_lifetime: i64,
    pub(crate) id_token_lifetime: i64,
    pub(crate) code_lifetime: i64,
    pub(crate) id_token_mutations: Vec<IdTokenMutation>,
    pub(crate) token_response_mutations: Vec<JsonMutation>,
    pub(crate) userinfo_mutations: Vec<JsonMutation>,
    pub(crate) id_token_signing: IdTokenSigning,
    pub(crate) token_failure: Failure,
    pub(crate) userinfo_failure: Failure,
    pub(crate) callback_iss: CallbackIss,
    pub(crate) callback_extra: Vec<(String, String)>,
    pub(crate) authorization_error: Option<(String, Option<String>)>,
    pub(crate) logout_state: LogoutState,
    pub(crate) ignore_pkce: bool,
    pub(crate) nonce_override: Option<String>,
    pub(crate) authorization_requests: Vec<Vec<(String, String)>>,
    pub(crate) token_requests: Vec<RecordedTokenRequest>,
    pub(crate) userinfo_requests: usize,
    pub(crate) end_session_requests: Vec<Vec<(String, String)>>,
    pub(crate) backchannel_deliveries: Vec<BackchannelDelivery>,
    pub(crate) codes: HashMap<String, CodeEntry>,
    pub(crate) sessions: HashMap<String, OpSession>,
    pub(crate) grants: Vec<Grant>,
    pub(crate) refresh_tokens: HashMap<String, RefreshEntry>,
    pub(crate) access_tokens: HashMap<String, AccessEntry>,
    /// The device authorization grant's codes, knobs and recordings.
    pub(crate) devices: crate::endpoints::device::DeviceState,
    /// The revocation endpoint's knobs and recordings.
    pub(crate) revocation: crate::endpoints::revocation::RevocationState,
    /// How accepted token exchanges (RFC 8693) are answered.
    pub(crate) token_exchange_answer: crate::knobs::TokenExchangeAnswer,
}

impl fmt::Debug for AuthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthState")
            .field("clients", &self.clients.keys().collect::<Vec<_>>())
            .field("auto_login", &self.auto_login)
            .field("id_token_signing", &self.id_token_signing)
            .field("codes", &self.codes.len())
            .field("sessions", &self.sessions.len())
            .field("grants", &self.grants.len())
            .finish_non_exhaustive()
    }
}

impl AuthState {
    pub(crate) fn new() -> Self {
        AuthState {
            clients: HashMap::new(),
            auto_login: None,
            access_token_lifetime: DEFAULT_ACCESS_TOKEN_LIFETIME,
            id_token_lifetime: DEFAULT_ID_TOKEN_LIFETIME,
            code_lifetime: DEFAULT_CODE_LIFETIME,
            id_token_mutations: Vec::new(),
            token_response_mutations: Vec::new(),
            userinfo_mutations: Vec::new(),
            id_token_signing: IdTokenSigning::Normal,
            token_failure: Failure::None,
            userinfo_failure: Failure::None,
            callback_iss: CallbackIss::Correct,
            callback_extra: Vec::new(),
            authorization_error: None,
            logout_state: LogoutState::Echo,
            ignore_pkce: false,
            nonce_override: None,
            authorization_requests: Vec::new(),
            token_requests: Vec::new(),
            userinfo_requests: 0,
            end_session_requests: Vec::new(),
            backchannel_deliveries: Vec::new(),
            codes: HashMap::new(),
            sessions: HashMap::new(),
            grants: Vec::new(),
            refresh_tokens: HashMap::new(),
            access_tokens: HashMap::new(),
            devices: Default::default(),
            revocation: Default::default(),
            token_exchange_answer: Default::default(),
        }
    }

    /// The registered client `client_id`.
    pub(crate) fn client(&self, client_id: &str) -> Option<&ClientRegistration> {
        self.clients.get(client_id)
    }

    /// The `sid`s of the current provider sessions of `sub`.
    pub(crate) fn session_ids(&self, sub: &str) -> Vec<String> {
        self.sessions
            .values()
            .filter(|session| session.sub == sub)
            .map(|session| session.sid.clone())
            .collect()
    }

    /// The clients to notify when the provider session `sid` ends: those
    /// with a `backchannel_logout_uri` that were issued tokens in that
    /// session, in the order of their first grant.
    pub(crate) fn backchannel_recipients(&self, sid: &str) -> Vec<Recipient> {
        let mut recipients: Vec<Recipient> = Vec::new();
        for grant in &self.grants {
            if grant.sid.as_deref() != Some(sid)
                || recipients.iter().any(|r| r.client_id == grant.client_id)
            {
                continue;
            }
            let Some(client) = self.clients.get(&grant.client_id) else {
                continue;
            };
            if let Some(uri) = &client.backchannel_logout_uri {
                recipients.push(Recipient {
                    client_id: client.client_id.clone(),
                    uri: uri.clone(),
                    alg: client.id_token_alg,
                });
            }
        }
        recipients
    }

    pub(crate) fn new_session(&mut self, sub: &str, now: i64) -> (String, OpSession) {
        let id = random_token();
        let session = OpSession {
            sub: sub.to_owned(),
            auth_time: now,
            sid: random_token(),
        };
        self.sessions.insert(id.clone(), session.clone());
        (id, session)
    }

    /// Stores a new code and returns it.
    pub(crate) fn store_code(&mut self, mut entry: CodeEntry, now: i64) -> String {
        entry.expires_at = now.saturating_add(self.code_lifetime);
        let code = random_token();
        self.codes.insert(code.clone(), entry);
        code
    }

    pub(crate) fn revoke_grant(&mut self, grant: usize) {
        if let Some(grant) = self.grants.get_mut(grant) {
            grant.revoked = true;
        }
    }

    pub(crate) fn grant_is_active(&self, grant: usize) -> bool {
        self.grants.get(grant).is_some_and(|grant| !grant.revoked)
    }
}

/// A client to notify: its id, `backchannel_logout_uri` and ID token
/// algorithm.
#[derive(Clone, Debug)]
pub(crate) struct Recipient {
    pub(crate) client_id: String,
    pub(crate) uri: String,
    pub(crate) alg: SigningAlg,
}
