//! The callback: the redirect back from the provider, checked against the browser's pending
//! transactions, the code redeemed, the login hook run and the session created.

use http::request::Parts;
use http::{Method, Response, StatusCode};
use oidc_core::error::{FlowError, FlowErrorKind};
use oidc_core::flow::{AuthorizationResponse, Transaction};
use serde_json::Value;

use super::hook::LoginInfo;
use super::layer::{LoginConfig, UserInfoPolicy};
use super::pages::{
    error_page, method_not_allowed, missing_session_layer, see_other, store_unavailable,
};
use super::session::{
    LOGIN_KEY, LoginState, TX_KEY, ended_key, prune, session_of, sid_ended_key, sid_set, sub_set,
};
use super::start::login_link;

pub(super) fn flow_error_page<B: From<String>>(
    config: &LoginConfig,
    error: &FlowError,
) -> Response<B> {
    let again = login_link(config);
    match error.kind() {
        FlowErrorKind::Unbound => {
            tracing::info!(target: "oidc::rejection", %error, "callback not bound to this browser");
            error_page(
                StatusCode::BAD_REQUEST,
                "This sign-in response does not belong to a sign-in started in this browser, or that sign-in has expired.",
                Some(&again),
            )
        }
        FlowErrorKind::Rejected => {
            tracing::info!(target: "oidc::rejection", %error, "authentication failed");
            error_page(StatusCode::UNAUTHORIZED, "Sign-in failed.", Some(&again))
        }
        FlowErrorKind::Timeout => {
            tracing::error!(target: "oidc::rejection", %error, "identity provider timed out");
            error_page(
                StatusCode::GATEWAY_TIMEOUT,
                "The identity provider did not answer in time.",
                Some(&again),
            )
        }
        _ => {
            tracing::error!(target: "oidc::rejection", %error, "identity provider failed");
            error_page(
                StatusCode::BAD_GATEWAY,
                "The identity provider could not be reached or answered incorrectly.",
                Some(&again),
            )
        }
    }
}

/// A login that failed after the token request: counted, then the error page.
pub(super) fn login_failed<B: From<String>>(
    config: &LoginConfig,
    error: &FlowError,
) -> Response<B> {
    let outcome = if error.kind() == FlowErrorKind::Rejected {
        "refused"
    } else {
        "failed"
    };
    crate::metrics::event("oidc_logins_total", "outcome", outcome);
    flow_error_page(config, error)
}

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
    let unbound = |message: &str| {
        tracing::info!(target: "oidc::rejection", message, "callback refused");
        error_page(StatusCode::BAD_REQUEST, message, Some(&again))
    };
    let response = match AuthorizationResponse::from_query(req.uri.query().unwrap_or_default()) {
        Ok(r) => r,
        Err(_) => return unbound("This sign-in response is malformed."),
    };
    let mut txs: Vec<Transaction> = match session.get(TX_KEY).await {
        Ok(txs) => txs.unwrap_or_default(),
        Err(e) => {
            tracing::error!(error = %e, "session store failed");
            return store_unavailable();
        }
    };
    let position = response
        .state()
        .and_then(|state| txs.iter().position(|tx| tx.matches_state(state)));
    let Some(position) = position else {
        return unbound(
            "This sign-in response does not belong to a sign-in started in this browser, or that sign-in has expired.",
        );
    };
    // Single use: consumed whatever the outcome.
    let tx = txs.remove(position);
    let now = config.now();
    prune(
        &mut txs,
        now,
        config.transaction_lifetime,
        config.max_transactions,
    );
    let saved = if txs.is_empty() {
        session.remove_value(TX_KEY).await.map(|_| ())
    } else {
        session.insert(TX_KEY, &txs).await
    };
    // Persist the consumption now: tower-sessions does not save a session whose response is a
    // server error, so a 502/504 below would leave the transaction replayable.
    let saved = match saved {
        Ok(()) => session.save().await,
        Err(e) => Err(e),
    };
    if let Err(e) = saved {
        tracing::error!(error = %e, "session store failed");
        return store_unavailable();
    }
    if tx.created_at().saturating_add(config.transaction_lifetime) <= now {
        return unbound("This sign-in took too long. Please start again.");
    }
    // The provider the login was started at (RFC 9700 mix-up defence, CB-06): the code is
    // redeemed only there, and only when the response came back to that provider's callback.
    let Some(provider) = config.providers.iter().find(|p| {
        p.client.provider().issuer() == tx.issuer() && p.client.redirect_uri() == tx.redirect_uri()
    }) else {
        return unbound("This sign-in was started with a provider that is no longer configured.");
    };
    if provider.callback_path != req.uri.path() {
        return unbound("This sign-in response came back for another provider.");
    }
    let client = &provider.client;

    let tokens = match client.complete(&tx, response).await {
        Ok(tokens) => tokens,
        Err(e) => return login_failed(config, &e),
    };
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
            match client
                .userinfo(tokens.access_token(), tokens.subject())
                .await
            {
                Ok(info) => {
                    for (name, value) in info {
                        claims.entry(name).or_insert(value);
                    }
                }
                Err(e) => return login_failed(config, &e),
            }
        }
    }

    let issuer = client.provider().issuer().to_owned();
    let local_user = match &config.hook {
        Some(hook) => {
            let info = LoginInfo {
                provider: provider.name.clone(),
                issuer: issuer.clone(),
                claims: claims.clone(),
            };
            match hook.on_login(info).await {
                Ok(local) => local,
                Err(refused) => {
                    crate::metrics::event("oidc_logins_total", "outcome", "refused");
                    tracing::info!(target: "oidc::rejection", %refused, "login hook refused the user");
                    return error_page(StatusCode::FORBIDDEN, refused.message(), None);
                }
            }
        }
        None => None,
    };
    let sid = tokens
        .id_claims()
        .get("sid")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let state = LoginState {
        provider: provider.name.clone(),
        client_id: provider.client.client_id().to_owned(),
        issuer,
        tokens,
        claims,
        local_user,
        authenticated_at: now,
        last_seen: now,
        last_revalidated: now,
    };
    // A login already in this session (a second login in the same browser) ends with the old
    // id on every instance, even where it is still cached.
    let previous = match session.get::<LoginState>(LOGIN_KEY).await {
        Ok(previous) => previous.and(session.id()).map(|id| id.to_string()),
        Err(_) => session.id().map(|id| id.to_string()),
    };
    if let Some(old) = previous {
        config.logins.invalidate(&old);
        let ttl = std::time::Duration::from_secs(config.absolute_timeout.unsigned_abs());
        if let Err(e) = config.store.registry.end(&ended_key(&old), ttl).await {
            tracing::error!(error = %e, "session registry failed");
            return store_unavailable();
        }
    }
    // A new session id at login (SES-01): a planted id is never authenticated.
    if let Err(e) = session.cycle_id().await {
        tracing::error!(error = %e, "session store failed");
        return store_unavailable();
    }
    if let Err(e) = session.insert(LOGIN_KEY, &state).await {
        tracing::error!(error = %e, "session store failed");
        return store_unavailable();
    }
    // Saved now for its id, which back-channel logout finds by `sid` and `sub`.
    let id = match session.save().await.map(|()| session.id()) {
        Ok(Some(id)) => id.to_string(),
        Ok(None) => {
            tracing::error!("the session store gave the session no id");
            return store_unavailable();
        }
        Err(e) => {
            tracing::error!(error = %e, "session store failed");
            return store_unavailable();
        }
    };
    let registry = &config.store.registry;
    let ttl = std::time::Duration::from_secs(config.absolute_timeout.unsigned_abs());
    let mut indexed = registry
        .add_member(&sub_set(&state.issuer, state.tokens.subject()), &id, ttl)
        .await;
    if let (Ok(()), Some(sid)) = (&indexed, &sid) {
        indexed = registry
            .add_member(&sid_set(&state.issuer, sid), &id, ttl)
            .await;
    }
    if let Err(e) = indexed {
        // Fail closed: a session that back-channel logout could not find must not exist.
        tracing::error!(error = %e, "session registry failed");
        let _ = session.flush().await;
        return store_unavailable();
    }
    // A back-channel logout of this provider session may have arrived while the login was
    // finishing (before the index above existed).
    if let Some(sid) = &sid {
        match registry.contains(&sid_ended_key(&state.issuer, sid)).await {
            Ok(false) => {}
            Ok(true) => {
                let _ = registry.end(&ended_key(&id), ttl).await;
                let _ = session.flush().await;
                crate::metrics::event("oidc_logins_total", "outcome", "refused");
                tracing::info!(target: "oidc::rejection", "the provider session ended during the login");
                return error_page(
                    StatusCode::UNAUTHORIZED,
                    "You were signed out at the identity provider. Please sign in again.",
                    Some(&again),
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "session registry failed");
                let _ = session.flush().await;
                return store_unavailable();
            }
        }
    }
    crate::metrics::event("oidc_logins_total", "outcome", "ok");
    tracing::info!(sub = state.tokens.subject(), provider = %provider.name, "login");
    see_other(tx.return_to())
}
