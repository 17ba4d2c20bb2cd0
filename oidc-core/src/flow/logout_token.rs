//! Logout token validation (OpenID Connect Back-Channel Logout 1.0 §2.4 and §2.6), through
//! the same key cache and signature code as ID tokens.
//!
//! The provider POSTs a `logout_token` to the client's `backchannel_logout_uri` when a user's
//! session ends there; [`OidcClient::verify_logout_token`] decides whether it is genuine and
//! for this client, and returns what it names: the provider session (`sid`), the user (`sub`),
//! or both. Ending the matching sessions is the caller's job (`oidc-tower` does it).
//!
//! The checks, and why, are listed in the [module docs](crate::flow#logout-token-checks).

use serde_json::{Map, Value};

use super::client::OidcClient;
use super::id_token::IdTokenRules;
use crate::error::{FlowError, VerifyError};
use crate::jws::{self, Signed};
use crate::verify::token;

/// The member of `events` that makes a JWT a back-channel logout token.
const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A verified back-channel logout token: which provider session or user has logged out.
///
/// At least one of [`session_id`](Self::session_id) and [`subject`](Self::subject) is
/// present. With a session id, end the sessions that logged in with that `sid` (the ID token's
/// `sid` claim); with only a subject, end every session of that user at this issuer.
///
/// Returned by [`OidcClient::verify_logout_token`]; see the
/// [module docs](crate::flow#logout-token-checks) for the checks. It holds no token, only the claims
/// below, which identify but grant nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogoutToken {
    issuer: String,
    subject: Option<String>,
    session_id: Option<String>,
    jti: String,
    issued_at: i64,
    expires_at: i64,
}

impl LogoutToken {
    /// The issuer (`iss`): the provider's issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The user (`sub`), when the token names one.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// The provider session (`sid`), when the token names one.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// The token's unique id (`jti`), for refusing replays.
    pub fn jti(&self) -> &str {
        &self.jti
    }

    /// When the token was issued (`iat`), in seconds since the Unix epoch.
    pub fn issued_at(&self) -> i64 {
        self.issued_at
    }

    /// When the token expires (`exp`), in seconds since the Unix epoch. A `jti` need not be
    /// remembered past this time (plus the leeway).
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }
}

impl OidcClient {
    /// Verifies a back-channel logout token (the `logout_token` form parameter the provider
    /// POSTs to the client's `backchannel_logout_uri`) and returns what it names.
    ///
    /// The token is checked with the provider's keys, through the same cache as ID tokens,
    /// and with the client's ID token algorithms, leeway and trusted audiences; see the
    /// [module docs](crate::flow#logout-token-checks) for every check.
    ///
    /// # Errors
    ///
    /// A [`FlowError`] of kind [`Rejected`](crate::error::FlowErrorKind::Rejected) when the
    /// token is not an acceptable logout token for this client (answer 400 `invalid_request`,
    /// BCL §2.8); of kind [`ProviderFailure`](crate::error::FlowErrorKind::ProviderFailure) or
    /// [`Timeout`](crate::error::FlowErrorKind::Timeout) when the provider's keys could not be
    /// obtained, so the token could not be checked.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use oidc_core::flow::OidcClient;
    /// # async fn run(client: OidcClient, form_value: &str) -> Result<(), oidc_core::error::FlowError> {
    /// let logout = client.verify_logout_token(form_value).await?;
    /// match (logout.session_id(), logout.subject()) {
    ///     (Some(sid), _) => println!("end the sessions of provider session {sid}"),
    ///     (None, Some(sub)) => println!("end every session of {sub}"),
    ///     (None, None) => {} // never: one of them is always present
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn verify_logout_token(&self, token: &str) -> Result<LogoutToken, FlowError> {
        verify(&self.rules(), token)
            .await
            .map_err(FlowError::LogoutToken)
    }
}

/// Whether a logout token may carry this header `typ` (`None`: no `typ`).
fn accepts_typ(typ: Option<&str>) -> bool {
    match typ {
        None => true,
        Some(typ) => {
            token::token_type(Some(typ)) == token::TokenType::Generic || token::is_logout_type(typ)
        }
    }
}

/// Every check of the [module docs](crate::flow#logout-token-checks), in that order.
pub(crate) async fn verify(
    rules: &IdTokenRules<'_>,
    token: &str,
) -> Result<LogoutToken, VerifyError> {
    let Signed { claims, .. } = jws::verify_signature_typ(
        rules.provider,
        rules.algorithms,
        rules.max_size,
        token,
        accepts_typ,
    )
    .await?;

    jws::check_issuer(&claims, rules.provider.issuer())?;
    rules.audience(&claims)?;
    let expires_at = jws::check_times(&claims, rules.now, rules.leeway, true)?;
    let issued_at = jws::time(&claims, "iat")?.ok_or(VerifyError::MissingClaim("iat"))?;

    match claims.get("events") {
        None => return Err(VerifyError::MissingClaim("events")),
        Some(Value::Object(events))
            if matches!(events.get(BACKCHANNEL_LOGOUT_EVENT), Some(Value::Object(_))) => {}
        Some(_) => return Err(VerifyError::InvalidClaim("events")),
    }
    if claims.contains_key("nonce") {
        return Err(VerifyError::InvalidClaim("nonce"));
    }
    let jti = match claims.get("jti") {
        None => return Err(VerifyError::MissingClaim("jti")),
        Some(Value::String(jti)) if !jti.is_empty() => jti.clone(),
        Some(_) => return Err(VerifyError::InvalidClaim("jti")),
    };
    let session_id = match claims.get("sid") {
        None => None,
        Some(Value::String(sid)) if !sid.is_empty() => Some(sid.clone()),
        Some(_) => return Err(VerifyError::InvalidClaim("sid")),
    };
    let subject = subject(&claims)?;
    if session_id.is_none() && subject.is_none() {
        return Err(VerifyError::MissingClaim("sub or sid"));
    }
    Ok(LogoutToken {
        issuer: rules.provider.issuer().to_owned(),
        subject,
        session_id,
        jti,
        issued_at,
        expires_at,
    })
}

/// `sub`, when present, with the rules of every other token (non-empty, at most 255
/// characters).
fn subject(claims: &Map<String, Value>) -> Result<Option<String>, VerifyError> {
    if !claims.contains_key("sub") {
        return Ok(None);
    }
    jws::check_subject(claims)?;
    Ok(claims.get("sub").and_then(Value::as_str).map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typ_values() {
        for ok in [
            None,
            Some("JWT"),
            Some("jwt"),
            Some("application/jwt"),
            Some("logout+jwt"),
            Some("Logout+JWT"),
            Some("application/logout+jwt"),
        ] {
            assert!(accepts_typ(ok), "{ok:?}");
        }
        for bad in [
            "at+jwt",
            "application/at+jwt",
            "id_token+jwt",
            "secevent+jwt",
            "",
            "logout",
        ] {
            assert!(!accepts_typ(Some(bad)), "{bad}");
        }
    }
}
