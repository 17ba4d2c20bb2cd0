//! Token exchange: an API (`GET /my-orders`) that calls a downstream orders API *as its
//! caller*. The caller's bearer token is verified by `BearerAuthLayer` (which keeps it as a
//! `PresentedToken`), exchanged by `OnBehalfOfLayer` for a token of the orders API (RFC 8693,
//! cached per user), and sent to the orders API, which sees the user's `sub` in a token meant
//! for it. See the README for the settings and the forwarding mode.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use oidc_core::error::FlowError;
use oidc_core::flow::{ExchangeRequest, TokenExchanger};
use oidc_core::{AccessTokenVerifier, Provider};
use oidc_tower::outbound::{OnBehalfOfLayer, OutboundError, UserToken};
use oidc_tower::{BearerAuthLayer, PresentedToken};
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceExt, service_fn};

/// The settings of the app.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The provider's issuer.
    pub issuer: String,
    /// This API's audience: the `aud` its callers' tokens must have.
    pub audience: String,
    /// This API's confidential client, which exchanges tokens.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// The downstream URL called on `GET /my-orders`.
    pub orders_url: String,
    /// The downstream API's audience (sent as `audience`), or `None`.
    pub orders_audience: Option<String>,
    /// The downstream API's RFC 8707 resource indicator, or `None`.
    pub orders_resource: Option<String>,
    /// Scopes asked for the downstream token.
    pub scopes: Vec<String>,
    /// Forward the caller's own token instead of exchanging it (weaker; see the README).
    pub forward: bool,
}

/// The HTTP client of the downstream call, with the on-behalf-of layer.
type Downstream = BoxCloneSyncService<
    http::Request<Vec<u8>>,
    http::Response<reqwest::Body>,
    OutboundError<reqwest::Error>,
>;

#[derive(Clone)]
struct AppState {
    orders: Downstream,
    orders_url: Arc<str>,
}

/// The app's router.
///
/// # Errors
///
/// When the issuer is not an acceptable URL.
pub fn app(settings: &Settings) -> Result<Router, oidc_core::error::ConfigError> {
    let provider = Provider::builder(settings.issuer.as_str()).build()?;
    let verifier = AccessTokenVerifier::new(provider.clone(), settings.audience.as_str());
    let layer = if settings.forward {
        OnBehalfOfLayer::forward()
    } else {
        let exchanger = TokenExchanger::new(provider, &settings.client_id, &settings.client_secret);
        let mut request = ExchangeRequest::new().with_scopes(&settings.scopes);
        if let Some(audience) = &settings.orders_audience {
            request = request.with_audience(audience);
        }
        if let Some(resource) = &settings.orders_resource {
            request = request.with_resource(resource);
        }
        OnBehalfOfLayer::exchange(exchanger, request)
    };
    let http = reqwest::Client::new();
    // reqwest's client as a tower service of `http` requests; `Vec<u8>` bodies are `Clone`,
    // which the retry after a 401 needs.
    let client = service_fn(move |request: http::Request<Vec<u8>>| {
        let http = http.clone();
        async move {
            let request = reqwest::Request::try_from(request)?;
            Ok(http::Response::from(http.execute(request).await?))
        }
    });
    let state = AppState {
        orders: BoxCloneSyncService::new(layer.layer(client)),
        orders_url: Arc::from(settings.orders_url.as_str()),
    };
    Ok(Router::new()
        .route("/my-orders", get(my_orders))
        .with_state(state)
        .layer(BearerAuthLayer::new(verifier).keep_presented_token(true)))
}

/// Calls the orders API on behalf of the caller and answers with its status and body.
async fn my_orders(
    State(state): State<AppState>,
    Extension(caller): Extension<PresentedToken>,
) -> Response {
    let mut request = http::Request::get(&*state.orders_url)
        .body(Vec::new())
        .unwrap_or_default();
    request.extensions_mut().insert(UserToken::from(caller));
    match state.orders.oneshot(request).await {
        Ok(response) => {
            let status =
                StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let body = reqwest::Response::from(response)
                .text()
                .await
                .unwrap_or_default();
            (status, body).into_response()
        }
        // The provider refused to exchange the caller's token (expired, revoked, not
        // exchangeable): the caller's credentials are the problem.
        Err(OutboundError::Token(e))
            if e.is_invalid_grant() || matches!(e, FlowError::SubjectTokenExpired) =>
        {
            (
                StatusCode::UNAUTHORIZED,
                "your token cannot be used for the orders API",
            )
                .into_response()
        }
        Err(_) => (
            StatusCode::BAD_GATEWAY,
            "the orders API could not be called",
        )
            .into_response(),
    }
}
