use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use oidc_core::error::ConfigError;
use oidc_core::flow::OidcClient;
use serde::de::DeserializeOwned;
use tower_layer::Layer;
use tower_sessions::{Expiry, SessionManagerLayer, SessionStore};

use super::hook::OnLogin;
use super::policy::{Unauthenticated, default_policy};
use super::providers::{LoginProvider, ProviderLink, valid_name};
use super::registry::{MemoryRegistry, SessionRegistry};
use super::service::Login;
use super::sessions::Sessions;
use super::store::{AppBinding, LoginStore};
use crate::BearerAuthLayer;
use crate::bearer::BearerPath;

/// Browser login with server-side sessions. The layer is its own builder.
///
/// See the [module docs](crate::login) for what it does and an example.
#[derive(Clone)]
#[must_use]
pub struct LoginLayer {
    pub(crate) config: Arc<LoginConfig>,
}

pub(crate) type Policy = Arc<dyn Fn(&Parts) -> Unauthenticated + Send + Sync>;
pub(crate) type LoginPage = Arc<dyn Fn(&[ProviderLink]) -> String + Send + Sync>;

#[derive(Clone)]
pub(crate) struct LoginConfig {
    /// At least one; names and callback paths checked by [`LoginLayer::with_provider`].
    pub(crate) providers: Vec<LoginProvider>,
    /// `scheme://host[:port]`.
    pub(crate) origin: String,
    /// The app's path prefix, without a trailing slash (`""` at the root).
    pub(crate) base_path: String,
    pub(crate) secure: bool,
    pub(crate) login_path: String,
    pub(crate) logout_path: String,
    pub(crate) backchannel_logout_path: String,
    pub(crate) login_page: Option<LoginPage>,
    pub(crate) post_logout_redirect_uri: String,
    pub(crate) require_login: bool,
    pub(crate) policy: Policy,
    pub(crate) bearer: Option<Arc<dyn BearerPath>>,
    /// `"login"`: the realm of the layer's own answers, in the [`Realm`](crate::Realm) and
    /// [`Anonymous`](crate::Anonymous) of a request it let through.
    pub(crate) login_realm: Arc<str>,
    pub(crate) hook: Option<Arc<dyn OnLogin>>,
    pub(crate) userinfo: UserInfoPolicy,
    /// The sessions: store, registry, caches and timeouts.
    pub(crate) sessions: Sessions,
    /// The namespace of the store (see [`LoginLayer::with_store_namespace`]); `None`: the
    /// first provider's client id.
    pub(crate) store_namespace: Option<String>,
    /// The session cookie's name, without the `__Host-` prefix added on `https`.
    pub(crate) cookie_name: String,
    /// Token revocation at RP-initiated logout (see [`LoginLayer::revoke_on_logout`]).
    pub(crate) revocation: super::logout::RevokeOnLogout,
}

/// When UserInfo is fetched at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UserInfoPolicy {
    Always,
    Never,
    /// When one of these claims is missing from the ID token.
    WhenMissing(Vec<String>),
}

impl std::fmt::Debug for LoginLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        f.debug_struct("LoginLayer")
            .field("providers", &c.providers)
            .field("origin", &c.origin)
            .field("base_path", &c.base_path)
            .field("login_path", &c.login_path)
            .field("logout_path", &c.logout_path)
            .field("backchannel_logout_path", &c.backchannel_logout_path)
            .field("require_login", &c.require_login)
            .field("bearer", &c.bearer.is_some())
            .field("hook", &c.hook.is_some())
            .finish_non_exhaustive()
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl LoginLayer {
    /// Browser login for the app at `app_url` (its public URL, with the path prefix it is
    /// mounted under), with `client` registered at the provider.
    ///
    /// The callback path is taken from the client's redirect URI, which must lie under
    /// `app_url`. Defaults: login at `/auth/login`, logout at `/auth/logout` (both under
    /// `app_url`), `post_logout_redirect_uri` = `app_url` + `/`, login required on every other
    /// route, transactions valid 10 minutes (5 per browser), idle timeout 30 minutes, absolute
    /// timeout 12 hours, tokens refreshed 60 s before they expire, revalidation every
    /// 5 minutes, UserInfo fetched when `email` is missing from the ID token.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when `app_url` is not an absolute `http(s)` URL, or when the client's
    /// redirect URI is not under it.
    ///
    /// # Security
    ///
    /// The session cookie is `Secure` (and named with the `__Host-` prefix) exactly when
    /// `app_url` is `https`; serve the app over `http` only in development.
    pub fn new(client: OidcClient, app_url: &str) -> Result<Self, ConfigError> {
        let display_name = url::Url::parse(client.provider().issuer())
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| client.provider().issuer().to_owned());
        Self::with_providers(
            app_url,
            [LoginProvider::new("default", display_name, client)],
        )
    }

    /// Browser login for the app at `app_url` with several providers (at least one). With
    /// more than one, `/auth/login` shows a page listing them and `/auth/login/{name}` starts
    /// the login at one; with one, `/auth/login` starts it directly.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] as for [`new`](Self::new), for a provider name that is not a plain
    /// path segment or is used twice, for no provider, and for two providers whose clients
    /// share an issuer and a redirect URI (their callbacks could not be told apart).
    pub fn with_providers(
        app_url: &str,
        providers: impl IntoIterator<Item = LoginProvider>,
    ) -> Result<Self, ConfigError> {
        let bad = |reason| ConfigError::InvalidUrl {
            url: app_url.to_owned(),
            reason,
        };
        let app = url::Url::parse(app_url).map_err(|_| bad("not an absolute url"))?;
        if !matches!(app.scheme(), "http" | "https") || app.host_str().is_none() {
            return Err(bad("must be an http or https url"));
        }
        let origin = app.origin().ascii_serialization();
        let base_path = app.path().trim_end_matches('/').to_owned();
        let mut layer = Self {
            config: Arc::new(LoginConfig {
                providers: Vec::new(),
                secure: app.scheme() == "https",
                post_logout_redirect_uri: format!("{origin}{base_path}/"),
                origin,
                base_path,
                login_path: "/auth/login".to_owned(),
                logout_path: "/auth/logout".to_owned(),
                backchannel_logout_path: "/auth/backchannel-logout".to_owned(),
                login_page: None,
                require_login: true,
                policy: Arc::new(default_policy),
                bearer: None,
                login_realm: Arc::from("login"),
                hook: None,
                userinfo: UserInfoPolicy::WhenMissing(vec!["email".to_owned()]),
                sessions: Sessions::new(LoginStore::new(
                    Arc::new(super::store::MemoryStore::default()),
                    Arc::new(MemoryRegistry::new()),
                    AppBinding::new("", Vec::new()),
                )),
                store_namespace: None,
                cookie_name: "oidc-session".to_owned(),
                revocation: super::logout::RevokeOnLogout::default(),
            }),
        };
        for provider in providers {
            layer = layer.with_provider(provider)?;
        }
        if layer.config.providers.is_empty() {
            return Err(bad("no provider configured"));
        }
        Ok(layer)
    }

    /// Adds a provider users may sign in with (see [`with_providers`](Self::with_providers)).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the client's redirect URI is not under the app URL or is the
    /// login, logout or back-channel logout path (as set when the provider is added), the name
    /// is not a plain path segment or is taken, or another provider has the same issuer and
    /// redirect URI; [`ConfigError::MissingEndpoint`] when the client's provider is configured
    /// by hand without an authorization or token endpoint.
    pub fn with_provider(mut self, mut provider: LoginProvider) -> Result<Self, ConfigError> {
        let client = &provider.client;
        client.provider().check_login_endpoints()?;
        let redirect_uri = client.redirect_uri().to_owned();
        let bad = |reason| ConfigError::InvalidUrl {
            url: redirect_uri.clone(),
            reason,
        };
        if !valid_name(&provider.name) {
            return Err(bad("the provider name must be a plain path segment"));
        }
        let redirect = url::Url::parse(&redirect_uri).map_err(|_| bad("bad redirect uri"))?;
        if redirect.origin().ascii_serialization() != self.config.origin {
            return Err(bad("the redirect uri must be on the app's origin"));
        }
        provider.callback_path = redirect
            .path()
            .strip_prefix(self.config.base_path.as_str())
            .filter(|p| p.starts_with('/'))
            .ok_or_else(|| bad("the redirect uri must lie under the app url"))?
            .to_owned();
        let c = &self.config;
        let callback = provider.callback_path.as_str();
        if [&c.login_path, &c.logout_path, &c.backchannel_logout_path]
            .iter()
            .any(|path| path.as_str() == callback)
            || callback
                .strip_prefix(c.login_path.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
        {
            return Err(bad(
                "the redirect uri must not be the login, logout or back-channel logout path",
            ));
        }
        for other in &self.config.providers {
            if other.name == provider.name {
                return Err(bad("two providers have the same name"));
            }
            if other.client.provider().issuer() == client.provider().issuer()
                && other.client.redirect_uri() == redirect_uri
            {
                return Err(bad(
                    "two providers share an issuer and a redirect uri; give each its own redirect uri",
                ));
            }
        }
        let config = self.config();
        config.providers.push(provider);
        config.bind_store();
        Ok(self)
    }

    fn config(&mut self) -> &mut LoginConfig {
        Arc::make_mut(&mut self.config)
    }

    /// Whether routes other than the login routes require a login. The default value is
    /// `true`. With `false`, requests without a session reach the service without an identity
    /// (marked [`Anonymous`](crate::Anonymous)), and handlers or a
    /// [`RequireLayer`](crate::RequireLayer) decide.
    pub fn require_login(mut self, required: bool) -> Self {
        self.config().require_login = required;
        self
    }

    /// Sets the path that starts a login (`GET …?return_to=/path`). The default value is
    /// `"/auth/login"`.
    pub fn with_login_path(mut self, path: impl Into<String>) -> Self {
        self.config().login_path = path.into();
        self
    }

    /// Sets the logout path (`POST` only). The default value is `"/auth/logout"`.
    pub fn with_logout_path(mut self, path: impl Into<String>) -> Self {
        self.config().logout_path = path.into();
        self
    }

    /// Sets the back-channel logout path (`POST` only, called by the provider). The default
    /// value is `"/auth/backchannel-logout"`; register `app_url` + this path as the client's
    /// `backchannel_logout_uri` at the provider.
    pub fn with_backchannel_logout_path(mut self, path: impl Into<String>) -> Self {
        self.config().backchannel_logout_path = path.into();
        self
    }

    /// Replaces the HTML of the page `/auth/login` shows when several providers are
    /// configured. `page` gets one link per provider (hrefs URL-encoded, not HTML-escaped).
    pub fn with_login_page(
        mut self,
        page: impl Fn(&[ProviderLink]) -> String + Send + Sync + 'static,
    ) -> Self {
        self.config().login_page = Some(Arc::new(page));
        self
    }

    /// Where the provider sends the browser after logout (must be registered there). The
    /// default value is the app URL with a trailing `/`.
    pub fn with_post_logout_redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.config().post_logout_redirect_uri = uri.into();
        self
    }

    /// Whether `POST /auth/logout` revokes the session's refresh token, then its access
    /// token, at the provider (RFC 7009) when the provider has a `revocation_endpoint`. The
    /// default value is `true`.
    ///
    /// The revocation runs after the session is ended, in the background, bounded by
    /// [`with_revocation_timeout`](Self::with_revocation_timeout) and by a limit of
    /// concurrent revocations; its failures are logged and never change the logout. A
    /// back-channel logout revokes nothing (the provider ended the session itself). See
    /// the [module docs](crate::login#logout-and-token-revocation).
    pub fn revoke_on_logout(mut self, revoke: bool) -> Self {
        self.config().revocation.enabled = revoke;
        self
    }

    /// How long the revocation at logout may take, both requests together, before it is
    /// given up (and logged). The default value is 5 seconds.
    pub fn with_revocation_timeout(mut self, timeout: Duration) -> Self {
        self.config().revocation.timeout = timeout;
        self
    }

    /// Replaces the decision between redirecting to the provider and answering 401 for
    /// requests without a session. The default is [`default_policy`](super::default_policy).
    pub fn with_unauthenticated_policy(
        mut self,
        policy: impl Fn(&Parts) -> Unauthenticated + Send + Sync + 'static,
    ) -> Self {
        self.config().policy = Arc::new(policy);
        self
    }

    /// Also accepts bearer tokens on the same routes, checked by `bearer` (an API used by the
    /// web front end and by other services). The default is sessions only.
    ///
    /// - A request with an `Authorization` header is judged by it alone, exactly as
    ///   [`BearerAuthLayer`] judges it: its verifier and token cache, its realm in the
    ///   challenges and in the [`Realm`](crate::Realm) extension, its claim type `C` as
    ///   [`Claims<C>`](oidc_core::Claims). It never falls back to the session, and the answers
    ///   are those of the [`DefaultRejection`](crate::DefaultRejection) (401 `invalid_token`,
    ///   400 `invalid_request`, 503).
    /// - A request with neither a login nor credentials that the unauthenticated policy does
    ///   not redirect gets the bearer layer's 401 challenge (`WWW-Authenticate: Bearer
    ///   realm="…"`), or, when the bearer layer
    ///   [allows anonymous](BearerAuthLayer::allow_anonymous) requests, reaches the service
    ///   marked [`Anonymous`](crate::Anonymous) (as with [`require_login(false)`](Self::require_login)).
    ///
    /// # Examples
    ///
    /// ```
    /// # use oidc_core::{AccessTokenVerifier, Provider, flow::OidcClient};
    /// # use oidc_tower::{BearerAuthLayer, login::LoginLayer};
    /// # let provider = Provider::builder("https://id.example.com").build()?;
    /// # let client = OidcClient::new(provider.clone(), "app", "https://app.example.com/auth/callback")?;
    /// let verifier = AccessTokenVerifier::new(provider, "https://app.example.com/api");
    /// let login = LoginLayer::new(client, "https://app.example.com")?
    ///     .accept_bearer(BearerAuthLayer::new(verifier).with_realm("app"));
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn accept_bearer<C>(mut self, bearer: BearerAuthLayer<C>) -> Self
    where
        C: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.config().bearer = Some(Arc::new(bearer));
        self
    }

    /// Runs `hook` after each successful login, before the session is created.
    pub fn with_login_hook(mut self, hook: impl OnLogin) -> Self {
        self.config().hook = Some(Arc::new(hook));
        self
    }

    /// Sets the name of the session cookie. The default value is `"oidc-session"`; on an
    /// `https` app URL the layer puts `__Host-` in front (so the default is then
    /// `__Host-oidc-session`): give the name without that prefix.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidCookieName`] for a name that is empty, longer than 64 characters,
    /// has a character other than ASCII letters, digits, `-`, `_` and `.`, or starts with
    /// `__Host-` or `__Secure-`.
    pub fn with_cookie_name(mut self, name: impl Into<String>) -> Result<Self, ConfigError> {
        let name = name.into();
        Self::check_cookie_name(&name)?;
        self.config().cookie_name = name;
        Ok(self)
    }

    /// Checks a cookie name as [`with_cookie_name`](Self::with_cookie_name) does, for
    /// configuration read before a layer is built (the auth proxy checks its `cookie.name`
    /// with this rule).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidCookieName`] as for [`with_cookie_name`](Self::with_cookie_name).
    pub fn check_cookie_name(name: &str) -> Result<(), ConfigError> {
        let bad = |reason| ConfigError::InvalidCookieName {
            name: name.to_owned(),
            reason,
        };
        if name.is_empty() || name.len() > 64 {
            return Err(bad("must be 1 to 64 characters"));
        }
        if !valid_name(name) {
            return Err(bad(
                "only ASCII letters, digits, '-', '_' and '.' are allowed",
            ));
        }
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("__host-") || lower.starts_with("__secure-") {
            return Err(bad("leave out the prefix: the layer adds __Host- on https"));
        }
        Ok(())
    }

    /// Sets how long a login transaction stays valid. The default value is 10 minutes.
    ///
    /// A session that holds only pending logins (a browser that is not logged in) expires
    /// with them, rather than after the idle timeout: its cookie's `Max-Age` is this lifetime.
    /// A callback arriving after that finds no transaction and gets the 400 page with a link
    /// to sign in again.
    pub fn with_transaction_lifetime(mut self, lifetime: Duration) -> Self {
        self.config().sessions.timeouts.transaction_lifetime = secs(lifetime);
        self
    }

    /// Sets how many logins a browser may have in progress at once (oldest dropped first).
    /// The default value is 5.
    pub fn with_max_transactions(mut self, max: usize) -> Self {
        self.config().sessions.timeouts.max_transactions = max.max(1);
        self
    }

    /// Ends a session unused for this long. The default value is 30 minutes.
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.config().sessions.timeouts.idle = secs(timeout);
        self
    }

    /// Ends a session this long after login, whatever the activity and refreshes. The default
    /// value is 12 hours.
    pub fn with_absolute_timeout(mut self, timeout: Duration) -> Self {
        self.config().sessions.timeouts.absolute = secs(timeout);
        self
    }

    /// Refreshes the access token this long before it expires. The default value is 60 s.
    pub fn with_refresh_margin(mut self, margin: Duration) -> Self {
        self.config().sessions.timeouts.refresh_margin = secs(margin);
        self
    }

    /// Re-checks the session with the provider this often (a refresh grant, or UserInfo
    /// without a refresh token); a user revoked at the provider loses access within this
    /// interval. The default value is 5 minutes.
    pub fn with_revalidation_interval(mut self, every: Duration) -> Self {
        self.config().sessions.timeouts.revalidate_every = secs(every);
        self
    }

    /// Fetches UserInfo at every login (`true`) or never (`false`). By default it is fetched
    /// when the ID token lacks `email`.
    pub fn fetch_userinfo(mut self, always: bool) -> Self {
        self.config().userinfo = if always {
            UserInfoPolicy::Always
        } else {
            UserInfoPolicy::Never
        };
        self
    }

    /// Keeps sessions in `store`, any tower-sessions store. The default is
    /// [`store::MemoryStore`](super::store::MemoryStore) with its default capacity (100 000
    /// sessions); give one built with
    /// [`with_max_sessions`](super::store::MemoryStore::with_max_sessions) to change it.
    ///
    /// Logins, refreshes and back-channel logouts are coordinated through an in-process
    /// [`MemoryRegistry`]: right for one instance. When several instances share `store`, use
    /// [`with_shared_store`](Self::with_shared_store) instead.
    pub fn with_store(mut self, store: impl SessionStore) -> Self {
        let config = self.config();
        config.sessions.store = LoginStore::new(
            Arc::new(store),
            Arc::new(MemoryRegistry::new()),
            config.binding(),
        );
        self
    }

    /// Keeps sessions in `store`, shared by every instance of the app, and coordinates through
    /// it: a login on one instance is valid on all, one instance at a time refreshes a
    /// session's tokens (a rotated refresh token is never spent twice), and a back-channel
    /// logout received by any instance ends the sessions on all. The Redis and PostgreSQL
    /// stores of this crate (features `redis` and `postgres`) are such stores.
    pub fn with_shared_store<S>(mut self, store: S) -> Self
    where
        S: SessionStore + SessionRegistry + Clone,
    {
        let config = self.config();
        config.sessions.store =
            LoginStore::new(Arc::new(store.clone()), Arc::new(store), config.binding());
        self
    }

    /// The namespace of this app in the session store. The default value is the client id of
    /// the first provider (the client of [`new`](Self::new)): the provider knows an app by its
    /// client id, and every instance of an app has the same one, whatever URL it is reached
    /// at.
    ///
    /// Instances of one app share sessions when they have the same namespace; apps with
    /// different namespaces that share a store (one Redis or PostgreSQL server for several
    /// apps) never accept each other's sessions, and their registry entries (back-channel
    /// logout indexes, ended sessions, used logout tokens, refresh locks) stay apart. Set it
    /// with several providers whose order may change (the default follows the first), or when
    /// two apps share one client id. Whatever the namespace, a session records the namespace
    /// and the client id it was made for, and a layer treats a session of another namespace,
    /// or of a client id that is not one of its providers', as no session.
    ///
    /// The empty namespace keeps the keys of versions before namespaces existed (one
    /// namespace for every app on the store).
    ///
    /// # Security
    ///
    /// Two different apps must never be given the same namespace: their sessions would be
    /// told apart by client id only. See the [store module docs](super::store) for how keys
    /// are formed.
    ///
    /// # Examples
    ///
    /// ```
    /// # use oidc_core::{Provider, flow::OidcClient};
    /// # use oidc_tower::login::LoginLayer;
    /// # let provider = Provider::builder("https://id.example.com").build()?;
    /// # let client = OidcClient::new(provider, "app", "https://app.example.com/auth/callback")?;
    /// let login = LoginLayer::new(client, "https://app.example.com")?
    ///     .with_store_namespace("billing");
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_store_namespace(mut self, namespace: impl Into<String>) -> Self {
        let config = self.config();
        config.store_namespace = Some(namespace.into());
        config.bind_store();
        self
    }

    /// The session manager the layer puts around its logic, on the layer's store, with the
    /// cookie settings login needs: `HttpOnly`, `SameSite=Lax`, `Path=/`, no `Domain`,
    /// `Secure` and the `__Host-` name prefix when the app URL is `https`, and expiry on
    /// inactivity after the idle timeout.
    pub(crate) fn session_manager(&self) -> SessionManagerLayer<LoginStore> {
        let c = &self.config;
        let name = if c.secure {
            format!("__Host-{}", c.cookie_name)
        } else {
            c.cookie_name.clone()
        };
        SessionManagerLayer::new(c.sessions.store.clone())
            .with_name(name)
            .with_http_only(true)
            .with_same_site(tower_sessions::cookie::SameSite::Lax)
            .with_secure(c.secure)
            .with_path("/")
            .with_expiry(Expiry::OnInactivity(
                tower_sessions::cookie::time::Duration::seconds(c.sessions.timeouts.idle),
            ))
    }

    /// This app's view of its session store: sessions by cookie id, in the app's namespace
    /// (see [`with_store_namespace`](Self::with_store_namespace)), records of other apps
    /// treated as absent. For administrative actions such as ending a session by its id
    /// (`SessionStore::delete`); the layer's own bookkeeping (the back-channel logout index,
    /// ended-session marks) is not changed by such calls.
    pub fn store(&self) -> &LoginStore {
        &self.config.sessions.store
    }

    /// The client of the first provider.
    pub fn client(&self) -> &OidcClient {
        // `with_providers` refuses an empty list, so there is a first provider.
        &self.config.first().client
    }

    /// The providers users may sign in with.
    pub fn providers(&self) -> &[LoginProvider] {
        &self.config.providers
    }
}

impl<S> Layer<S> for LoginLayer {
    type Service = Login<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Login::new(inner, self.clone())
    }
}

impl LoginConfig {
    /// The first provider (there is always one).
    pub(crate) fn first(&self) -> &LoginProvider {
        #[allow(clippy::indexing_slicing)] // never empty: checked by `with_providers`
        &self.providers[0]
    }

    /// The provider named `name`.
    pub(crate) fn provider(&self, name: &str) -> Option<&LoginProvider> {
        self.providers.iter().find(|p| p.name == name)
    }

    /// Who this app is for its store: the namespace and the providers' client ids.
    fn binding(&self) -> AppBinding {
        let namespace = match &self.store_namespace {
            Some(namespace) => namespace.clone(),
            None => self
                .providers
                .first()
                .map(|p| p.client.client_id().to_owned())
                .unwrap_or_default(),
        };
        let client_ids = self
            .providers
            .iter()
            .map(|p| p.client.client_id().to_owned())
            .collect();
        AppBinding::new(&namespace, client_ids)
    }

    /// Binds the store to the app again (after its namespace or providers changed).
    fn bind_store(&mut self) {
        self.sessions.store = self.sessions.store.rebind(self.binding());
    }

    /// Seconds since the Unix epoch, on the clock of the clients.
    pub(crate) fn now(&self) -> i64 {
        self.first().client.now()
    }
}
