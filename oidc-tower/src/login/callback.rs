//! The callback: the redirect back from the provider, checked against the browser's pending
//! transactions, the code redeemed, the login hook run and the session created.
//!
//! The steps, each a function here: the pending login found and consumed
//! ([`Sessions::take_transaction`](super::sessions::Sessions::take_transaction)), the
//! provider it was started at ([`provider_of_transaction`]), the code redeemed with the
//! claims completed from UserInfo ([`redeem`]), the login hook ([`run_hook`]), and the
//! logged-in session made ([`Sessions::complete`](super::sessions::Sessions::complete)).

use http::request::Parts;
use http::{Method, Response, StatusCode};
use oidc_core::AdditionalClaims;
use oidc_core::error::FlowError;
use oidc_core::flow::{AuthorizationResponse, TokenSet, Transaction};
use serde_json::Value;

use super::hook::LoginInfo;
use super::layer::{LoginConfig, UserInfoPolicy};
use super::pages::{
    error_page, login_failed, method_not_allowed, missing_session_layer, see_other,
    session_error_page, unbound,
};
use super::providers::LoginProvider;
use super::session::{LoginState, session_of};
use super::start::login_link;

/// The page of an implicit or hybrid response (tokens in the callback URL).
const IMPLICIT_REFUSED: &str = "Implicit responses are not accepted: this sign-in response carries tokens in its URL. \
     This app signs in with the authorization code flow (response type code) only; \
     turn the implicit flow off for this client at the identity provider.";

/// The page of a callback without any parameter.
const EMPTY_RESPONSE: &str = "This sign-in response has no parameters. If the identity provider sent tokens in the URL \
     fragment (the implicit flow), they are not accepted: this app signs in with the authorization code flow only.";

/// The redirect back from the provider.
pub(super) async fn callback<B: Default + From<String>>(
    config: &LoginConfig,
    req: &Parts,
) -> Response<B> {
    if req.method != Method::GET {
        return method_not_allowed("GET");
    }
    let again = login_link(config);
    let Some(session) = session_of(req) else {
        return missing_session_layer();
    };
    let query = req.uri.query().unwrap_or_default();
    let response = match AuthorizationResponse::from_query(query) {
        Ok(response) => response,
        // Tokens in the callback URL: never looked at, the pending login left as it is.
        Err(FlowError::ImplicitResponse) => return unbound(IMPLICIT_REFUSED, &again),
        Err(_) => return unbound("This sign-in response is malformed.", &again),
    };
    if query.is_empty() {
        // The implicit flow answers in the URL fragment, which never reaches the server.
        return unbound(EMPTY_RESPONSE, &again);
    }
    let now = config.now();
    let sessions = &config.sessions;
    let tx = match sessions
        .take_transaction(&session, response.state(), now)
        .await
    {
        Ok(tx) => tx,
        Err(e) => return session_error_page(&e, &again),
    };
    let provider = match provider_of_transaction(config, &tx, req.uri.path()) {
        Ok(provider) => provider,
        Err(message) => return unbound(message, &again),
    };
    let (tokens, claims) = match redeem(config, provider, &tx, response).await {
        Ok(redeemed) => redeemed,
        Err(e) => return login_failed(&e, &again),
    };
    let local_user = match run_hook(config, provider, &claims).await {
        Ok(local_user) => local_user,
        Err(refused) => return refused,
    };
    let sid = tokens
        .id_claims()
        .get("sid")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let state = LoginState {
        provider: provider.name.clone(),
        client_id: provider.client.client_id().to_owned(),
        issuer: provider.client.provider().issuer().to_owned(),
        tokens,
        claims,
        local_user,
        authenticated_at: now,
        last_seen: now,
        last_revalidated: now,
    };
    if let Err(e) = sessions.complete(&session, &state, sid.as_deref()).await {
        return session_error_page(&e, &again);
    }
    crate::metrics::event("oidc_logins_total", "outcome", "ok");
    tracing::info!(sub = state.tokens.subject(), provider = %provider.name, "login");
    see_other(tx.return_to())
}

/// The provider the login was started at (RFC 9700 mix-up defence, CB-06): the code is
/// redeemed only there, and only when the response came back to that provider's callback.
fn provider_of_transaction<'a>(
    config: &'a LoginConfig,
    tx: &Transaction,
    path: &str,
) -> Result<&'a LoginProvider, &'static str> {
    let provider = config
        .providers
        .iter()
        .find(|p| {
            p.client.provider().issuer() == tx.issuer()
                && p.client.redirect_uri() == tx.redirect_uri()
        })
        .ok_or("This sign-in was started with a provider that is no longer configured.")?;
    if provider.callback_path != path {
        return Err("This sign-in response came back for another provider.");
    }
    Ok(provider)
}

/// Redeems the code (the ID token validated by [`oidc_core::flow`]) and completes the claims
/// from UserInfo when the layer's policy asks for it (its `sub` must match).
async fn redeem(
    config: &LoginConfig,
    provider: &LoginProvider,
    tx: &Transaction,
    response: AuthorizationResponse,
) -> Result<(TokenSet, AdditionalClaims), FlowError> {
    let client = &provider.client;
    let tokens = client.complete(tx, response).await?;
    let mut claims = tokens.id_claims().clone();
    let wants_userinfo = match &config.userinfo {
        UserInfoPolicy::Always => true,
        UserInfoPolicy::Never => false,
        UserInfoPolicy::WhenMissing(names) => names.iter().any(|n| !claims.contains_key(n)),
    };
    if wants_userinfo {
        let has_endpoint = client
            .provider()
            .metadata()
            .await
            .is_ok_and(|m| m.userinfo_endpoint().is_some());
        if has_endpoint {
            let info = client
                .userinfo(tokens.access_token(), tokens.subject())
                .await?;
            for (name, value) in info {
                claims.entry(name).or_insert(value);
            }
        }
    }
    Ok((tokens, claims))
}

/// The login hook's decision: the app's own user id (or none), or the 403 page of a refusal.
async fn run_hook<B: From<String>>(
    config: &LoginConfig,
    provider: &LoginProvider,
    claims: &AdditionalClaims,
) -> Result<Option<String>, Response<B>> {
    let Some(hook) = &config.hook else {
        return Ok(None);
    };
    let info = LoginInfo {
        provider: provider.name.clone(),
        issuer: provider.client.provider().issuer().to_owned(),
        claims: claims.clone(),
    };
    hook.on_login(info).await.map_err(|refused| {
        crate::metrics::event("oidc_logins_total", "outcome", "refused");
        tracing::info!(target: "oidc::rejection", %refused, "login hook refused the user");
        error_page(StatusCode::FORBIDDEN, refused.message(), None)
    })
}
