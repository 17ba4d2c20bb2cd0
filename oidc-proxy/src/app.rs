//! The proxy service: built-in endpoints, then per-route authentication with the login layer,
//! then forwarding.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use oidc_core::flow::OidcClient;
use oidc_core::{AccessTokenVerifier, Provider};
use oidc_tower::login::store::MemoryStore;
use oidc_tower::login::{LoginLayer, LoginProvider, Unauthenticated, default_policy};
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt as _};

use crate::config::{
    BACKCHANNEL_LOGOUT_PATH, ConfigError, EndpointSettings, LOGIN_PATH, RESERVED_PREFIX,
    RouteSettings, SIGN_OUT_PATH, Settings, USERINFO_PATH,
};
use crate::forward::{Forwarder, plain};
use crate::identity::{Who, strip_client_headers};
use crate::metrics::{Metrics, Outcome};
use crate::routes::{self, RequestPath};

type Stack = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// The authenticating proxy: cheap to clone.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("routes", &self.shared.routes)
            .field("endpoints", &self.shared.endpoints)
            .field("bearer", &self.shared.bearer_stack.is_some())
            .finish_non_exhaustive()
    }
}

struct Shared {
    forwarder: Arc<Forwarder>,
    routes: RouteSettings,
    endpoints: EndpointSettings,
    /// The login layer without bearer tokens.
    session_stack: Stack,
    /// The login layer that also accepts bearer tokens (bearer routes, userinfo).
    bearer_stack: Option<Stack>,
    /// Callback paths of the providers (handled by the login layer wherever they are).
    callbacks: Vec<String>,
    providers: Vec<Provider>,
    metrics: Arc<Metrics>,
    limits: server_limits::Limits,
}

/// Set by the authenticated service when a request reached it (so: had an identity).
#[derive(Clone, Default)]
struct Reached(Arc<AtomicBool>);

impl Reached {
    fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

fn config_error(what: &str, e: impl std::fmt::Display) -> ConfigError {
    ConfigError::new(format!("{what}: {e}"))
}

impl Proxy {
    /// Builds the proxy (no I/O: providers are contacted on first need).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the library refuses a setting (a provider URL, a redirect URI).
    pub fn new(settings: &Settings) -> Result<Self, ConfigError> {
        let metrics = Arc::new(Metrics::new(
            settings.upstreams.iter().map(|u| u.name.as_str()),
        ));
        let forwarder = Arc::new(Forwarder::new(settings, metrics.clone()));

        let mut login_providers = Vec::new();
        let mut verifiers = Vec::new();
        let mut providers = Vec::new();
        for p in &settings.providers {
            let what = format!("provider {:?}", p.name);
            let mut builder = Provider::builder(p.issuer.clone());
            if p.insecure_allow_http {
                builder = builder.insecure_allow_http();
            }
            let provider = builder
                .build()
                .map_err(|e| config_error(&format!("{what}: issuer {:?}", p.issuer), e))?;
            let mut client = OidcClient::new(
                provider.clone(),
                p.client_id.clone(),
                p.redirect_uri.clone(),
            )
            .map_err(|e| config_error(&format!("{what}: redirect uri"), e))?
            .with_scopes(p.scopes.clone());
            if let Some(secret) = &p.client_secret {
                client = client.with_client_secret(secret.expose());
            }
            login_providers.push(LoginProvider::new(
                p.name.clone(),
                p.display_name.clone(),
                client,
            ));
            if p.accept_bearer {
                verifiers.push(
                    AccessTokenVerifier::new(provider.clone(), p.audience.clone())
                        .with_client_id(p.client_id.clone())
                        .require_at_jwt(p.require_at_jwt),
                );
            }
            providers.push(provider);
        }

        let api = settings.routes.api.clone();
        let policy = move |parts: &Parts| {
            let Ok(path) = RequestPath::parse(parts.uri.path()) else {
                return Unauthenticated::Reject;
            };
            if path.under(RESERVED_PREFIX) || routes::any(&api, &parts.method, &path) {
                Unauthenticated::Reject
            } else {
                default_policy(parts)
            }
        };
        let login = LoginLayer::with_providers(&settings.public_url, login_providers)
            .map_err(|e| config_error("login", e))?
            .with_login_path(LOGIN_PATH)
            .with_logout_path(SIGN_OUT_PATH)
            .with_backchannel_logout_path(BACKCHANNEL_LOGOUT_PATH)
            .with_post_logout_redirect_uri(settings.post_logout_redirect_uri.clone())
            .with_idle_timeout(settings.cookie.idle_timeout)
            .with_absolute_timeout(settings.cookie.absolute_timeout)
            .with_cookie_name(
                settings
                    .cookie
                    .name
                    .strip_prefix("__Host-")
                    .unwrap_or(&settings.cookie.name),
            )
            .map_err(|e| config_error("login", e))?
            .with_unauthenticated_policy(policy)
            // One store for both stacks: a session works on every route.
            .with_store(MemoryStore::default());
        // Websocket tunnels of a session close once the session is gone.
        let _ = forwarder.sessions.set(login.store().clone());

        let inner = {
            let forwarder = forwarder.clone();
            tower::service_fn(move |req: Request<Body>| {
                let forwarder = forwarder.clone();
                async move { Ok::<_, Infallible>(authenticated(&forwarder, req).await) }
            })
        };
        let session_stack = BoxCloneSyncService::new(
            ServiceBuilder::new()
                .layer(login.clone())
                .service(inner.clone()),
        );
        let bearer_stack = if verifiers.is_empty() {
            None
        } else {
            let verifier = AccessTokenVerifier::any_of(verifiers)
                .map_err(|e| config_error("bearer verifier", e))?;
            Some(BoxCloneSyncService::new(
                ServiceBuilder::new()
                    .layer(login.accept_bearer(oidc_tower::BearerAuthLayer::new(verifier)))
                    .service(inner),
            ))
        };

        Ok(Self {
            shared: Arc::new(Shared {
                forwarder,
                routes: settings.routes.clone(),
                endpoints: settings.endpoints.clone(),
                session_stack,
                bearer_stack,
                callbacks: settings
                    .providers
                    .iter()
                    .map(|p| p.redirect_path.clone())
                    .collect(),
                providers,
                metrics,
                limits: settings.limits,
            }),
        })
    }

    /// The proxy's metrics.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.shared.metrics.clone()
    }

    /// The providers (for readiness).
    pub fn providers(&self) -> &[Provider] {
        &self.shared.providers
    }

    /// An axum router that sends every request to the proxy.
    pub fn router(&self) -> Router {
        let shared = self.shared.clone();
        Router::new().fallback_service(tower::service_fn(move |req: Request<Body>| {
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(handle(shared, req).await) }
        }))
    }

    /// Serves on `listener` until `shutdown` completes (then lets requests in progress end).
    ///
    /// # Errors
    ///
    /// When accepting connections fails for good.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let metrics = self.metrics();
        let upkeep = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                metrics.run_upkeep();
            }
        });
        // Header-read timeout, body-read deadline, connection cap; peer addresses as
        // `ConnectInfo` (read by the forwarder).
        let limits = self.shared.limits;
        let result = server_limits::serve(listener, self.router(), limits, shutdown).await;
        upkeep.abort();
        result
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Body>) -> Response<Body> {
    if let Some(which) = Endpoint::of(&shared.endpoints, req.uri().path()) {
        let allowed = req.method() == Method::GET || req.method() == Method::HEAD;
        drop(req);
        return endpoint(&shared, which, allowed).await;
    }
    let _in_flight = shared.metrics.in_flight();
    let started = Instant::now();
    let (outcome, res) = dispatch(&shared, req).await;
    shared.metrics.request(outcome, started.elapsed());
    res
}

/// The built-in endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Ping,
    Ready,
    Metrics,
}

impl Endpoint {
    fn of(endpoints: &EndpointSettings, path: &str) -> Option<Self> {
        let is = |p: &Option<String>| p.as_deref() == Some(path);
        if is(&endpoints.ping) {
            Some(Self::Ping)
        } else if is(&endpoints.ready) {
            Some(Self::Ready)
        } else if is(&endpoints.metrics) {
            Some(Self::Metrics)
        } else {
            None
        }
    }
}

/// A built-in endpoint (`GET`/`HEAD` only; other methods get 405).
async fn endpoint(shared: &Shared, which: Endpoint, allowed: bool) -> Response<Body> {
    if !allowed {
        let mut res = plain(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.\n");
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return res;
    }
    match which {
        Endpoint::Ping => plain(StatusCode::OK, "OK\n"),
        Endpoint::Ready => ready(&shared.providers).await,
        Endpoint::Metrics => {
            let mut res = Response::new(Body::from(shared.metrics.render()));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
    }
}

/// 200 when every provider's metadata and keys are loaded (loading them now if needed).
async fn ready(providers: &[Provider]) -> Response<Body> {
    for provider in providers {
        if provider.readiness().is_ready() {
            continue;
        }
        match tokio::time::timeout(Duration::from_secs(5), provider.warm_up()).await {
            Ok(Ok(())) if provider.readiness().is_ready() => {}
            Ok(Err(e)) => {
                tracing::info!(issuer = provider.issuer(), error = %e, "not ready");
                return plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Provider keys unavailable.\n",
                );
            }
            _ => {
                tracing::info!(issuer = provider.issuer(), "not ready");
                return plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Provider keys unavailable.\n",
                );
            }
        }
    }
    plain(StatusCode::OK, "Ready.\n")
}

async fn call(stack: &Stack, req: Request<Body>) -> Response<Body> {
    match stack.clone().oneshot(req).await {
        Ok(res) => res,
        Err(never) => match never {},
    }
}

async fn dispatch(shared: &Shared, mut req: Request<Body>) -> (Outcome, Response<Body>) {
    let raw = req.uri().path().to_owned();
    let path = match RequestPath::parse(&raw) {
        Ok(path) => path,
        Err(e) => {
            tracing::debug!(error = %e, "request path refused");
            return (
                Outcome::Rejected,
                plain(StatusCode::BAD_REQUEST, "Bad request path.\n"),
            );
        }
    };
    // Whatever the route: the identity and rewrite headers of the client go now.
    strip_client_headers(req.headers_mut(), &shared.forwarder.headers);

    if path.under(RESERVED_PREFIX) || shared.callbacks.contains(&raw) {
        let stack = match &shared.bearer_stack {
            Some(bearer) if raw == USERINFO_PATH => bearer,
            _ => &shared.session_stack,
        };
        return (Outcome::OAuth2, call(stack, req).await);
    }
    let method = req.method().clone();
    if routes::any(&shared.routes.skip_auth, &method, &path) {
        return (Outcome::Skipped, shared.forwarder.forward(req, None).await);
    }
    let reached = Reached::default();
    req.extensions_mut().insert(reached.clone());
    let stack = match &shared.bearer_stack {
        Some(bearer) if routes::any(&shared.routes.bearer, &method, &path) => bearer,
        _ => &shared.session_stack,
    };
    let res = call(stack, req).await;
    let outcome = if reached.get() {
        Outcome::Authenticated
    } else if res.status().is_redirection() {
        Outcome::Redirected
    } else {
        Outcome::Rejected
    };
    (outcome, res)
}

/// Behind the login layer: the request has an identity.
async fn authenticated(forwarder: &Forwarder, req: Request<Body>) -> Response<Body> {
    let Some(who) = Who::from_request(req.extensions(), req.headers(), &forwarder.headers) else {
        // The login layer lets no request through without an identity; refuse anyway.
        return plain(StatusCode::UNAUTHORIZED, "Unauthorized.\n");
    };
    let path = req.uri().path();
    if path == USERINFO_PATH {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut res = plain(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.\n");
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return res;
        }
        let Ok(json) = who.to_json() else {
            return plain(
                StatusCode::FORBIDDEN,
                "Your identity cannot be forwarded.\n",
            );
        };
        let mut res = Response::new(Body::from(json.to_string()));
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return res;
    }
    if routes::prefix_matches(RESERVED_PREFIX, path.as_bytes()) {
        return plain(StatusCode::NOT_FOUND, "Not found.\n");
    }
    if let Some(reached) = req.extensions().get::<Reached>() {
        reached.set();
    }
    forwarder.forward(req, Some(&who)).await
}
