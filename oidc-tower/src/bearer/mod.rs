//! Bearer-token protection (RFC 6750).
//!
//! [`BearerAuthLayer`] reads `Authorization: Bearer <token>` (the scheme is matched
//! case-insensitively), verifies the token with an
//! [`AccessTokenVerifier`](oidc_core::AccessTokenVerifier) and, on success, inserts into the
//! request extensions both the [`Identity`](oidc_core::Identity) and the
//! [`Claims<C>`](oidc_core::Claims) (`C` defaults to the whole payload as a JSON object).
//!
//! | request | response |
//! |---|---|
//! | no `Authorization` header, or another scheme (`Basic …`) | 401, `WWW-Authenticate: Bearer realm="…"` |
//! | several `Authorization` headers, bad bearer syntax (`Bearer`, `Bearer a b`), or `access_token` in the query | 400, `error="invalid_request"` |
//! | a token that fails verification | 401, `error="invalid_token"` |
//! | no verification keys obtainable | 503 with `Retry-After` |
//!
//! For an API that accepts tokens of several issuers (one realm per tenant, say), give the
//! layer a verifier built with
//! [`AccessTokenVerifier::any_of`](oidc_core::AccessTokenVerifier::any_of): the token's exact
//! `iss` chooses the issuer's verifier, a token of any other issuer is refused with 401
//! `invalid_token` without a request to any provider, and handlers tell the issuers apart by
//! [`Identity::issuer`](oidc_core::Identity::issuer) (see
//! [Several issuers](oidc_core::verify#several-issuers)).
//!
//! With [`BearerAuthLayer::keep_presented_token`] the verified token itself is put in the
//! extensions too, as a [`PresentedToken`], for handlers that call another API on the
//! caller's behalf; it is off by default.
//!
//! With [`BearerAuthLayer::with_resource_metadata`] every challenge also names the API's RFC
//! 9728 metadata document (`resource_metadata="…"`), which
//! [`ProtectedResource`](crate::resource_metadata::ProtectedResource) serves.
//!
//! Tokens are never accepted from the URL query or a form body (RFC 6750 §2.2–2.3 allow it,
//! RFC 9700 §2.5 advises against it): a query `access_token` is refused so that tokens do not
//! end up in logs and browser history.
//!
//! The layer is generic over request and response bodies: it works under axum, tonic, or any
//! tower HTTP service. The default rejection needs a response body that implements `Default`;
//! replace it with [`BearerAuthLayer::with_rejection`].
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use oidc_core::{AccessTokenVerifier, Identity, Provider};
//! use oidc_tower::BearerAuthLayer;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let provider = Provider::builder("https://id.example.com").build()?;
//! let verifier = AccessTokenVerifier::new(provider, "https://api.example.com");
//!
//! let service = ServiceBuilder::new()
//!     .layer(BearerAuthLayer::new(verifier).with_realm("example"))
//!     .service(service_fn(|req: Request<String>| async move {
//!         let who = req.extensions().get::<Identity>().map(|i| i.subject().to_owned());
//!         Ok::<_, Infallible>(Response::new(who.unwrap_or_default()))
//!     }));
//!
//! // No token: refused before the provider is ever contacted.
//! let res = service.oneshot(Request::new(String::new())).await?;
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="example""#);
//! # Ok(())
//! # }
//! ```

mod layer;
mod service;

pub use self::layer::BearerAuthLayer;
pub use self::service::BearerAuth;
pub(crate) use self::service::BearerPath;

/// The bearer token of a verified request, in the request extensions when the layer was built
/// with [`BearerAuthLayer::keep_presented_token`]: for calling another API on the caller's
/// behalf (token exchange, RFC 8693, or forwarding). It is only there after
/// the token was verified. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedToken(oidc_core::flow::Secret);

impl PresentedToken {
    pub(crate) fn new(token: &str) -> Self {
        Self(oidc_core::flow::Secret::new(token))
    }

    /// The token as the caller presented it. Never log it.
    pub fn secret(&self) -> &oidc_core::flow::Secret {
        &self.0
    }

    /// The token, consuming the extension.
    pub fn into_secret(self) -> oidc_core::flow::Secret {
        self.0
    }
}

impl std::fmt::Debug for PresentedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PresentedToken(..)")
    }
}

use http::{HeaderMap, header};

/// Finds the bearer token of a request.
///
/// `Ok(None)`: no bearer credentials. `Err(description)`: a malformed request.
pub(crate) fn bearer_token<'a>(
    headers: &'a HeaderMap,
    query: Option<&str>,
) -> Result<Option<&'a str>, &'static str> {
    if query.is_some_and(|q| {
        q.split('&')
            .any(|pair| pair.split('=').next() == Some("access_token"))
    }) {
        return Err("tokens are not accepted in the url");
    }
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err("several authorization headers");
    }
    // The common case in one pass over the bytes: `Bearer <b64token>`, all visible ASCII.
    let bytes = value.as_bytes();
    let (scheme, rest) = match bytes.iter().position(|b| *b == b' ') {
        Some(space) => (bytes.get(..space), bytes.get(space + 1..)),
        None => (Some(bytes), None),
    };
    let (scheme, rest) = (scheme.unwrap_or_default(), rest.unwrap_or_default());
    if scheme.eq_ignore_ascii_case(b"bearer") {
        let token = trim_spaces(rest);
        if is_b64token(token) {
            // Only b64token characters: ASCII, so valid UTF-8.
            return std::str::from_utf8(token)
                .map(Some)
                .map_err(|_| "the bearer credential has invalid syntax");
        }
    }
    // Anything else: the checks in the order of RFC 6750 §2.1, for the right answer.
    let value = value
        .to_str()
        .map_err(|_| "the authorization header is not visible ascii")?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = rest.trim_matches(' ');
    if token.is_empty() {
        return Err("the bearer credential is empty");
    }
    Err("the bearer credential has invalid syntax")
}

/// `bytes` without leading and trailing spaces (only spaces: a tab is not trimmed).
fn trim_spaces(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != b' ');
    let end = bytes.iter().rposition(|b| *b != b' ');
    match (start, end) {
        (Some(start), Some(end)) => bytes.get(start..=end).unwrap_or_default(),
        _ => &[],
    }
}

/// A `b64token` character other than `=`.
fn is_b64token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

/// RFC 6750 §2.1 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &[u8]) -> bool {
    let body = token
        .iter()
        .rposition(|b| *b != b'=')
        .and_then(|last| token.get(..=last))
        .unwrap_or_default();
    // Without a branch per byte, so that the compiler checks a chunk at a time: this runs on
    // every request.
    !body.is_empty()
        && body
            .chunks(64)
            .all(|chunk| chunk.iter().fold(true, |ok, b| ok & is_b64token_char(*b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn at_03_bearer_syntax_table() {
        let ok = [
            ("Bearer abc.def.ghi", "abc.def.ghi"),
            ("bearer abc", "abc"),
            ("BEARER abc==", "abc=="),
            ("Bearer  abc ", "abc"),
        ];
        for (value, want) in ok {
            assert_eq!(
                bearer_token(&headers(&[value]), None),
                Ok(Some(want)),
                "{value}"
            );
        }
        for value in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer a,b",
            "Bearer ===",
            "Bearer a\"b",
            "Bearer \tabc",
            "Bearer abc\t",
            "Bearer abc=d",
        ] {
            assert!(bearer_token(&headers(&[value]), None).is_err(), "{value}");
        }
        for value in ["Basic dXNlcjpwYXNz", "Token abc", "Bearerabc"] {
            assert_eq!(bearer_token(&headers(&[value]), None), Ok(None), "{value}");
        }
        assert_eq!(bearer_token(&HeaderMap::new(), None), Ok(None));
        assert!(bearer_token(&headers(&["Bearer a", "Bearer b"]), None).is_err());
        assert!(bearer_token(&headers(&["Bearer a"]), Some("x=1&access_token=a")).is_err());
        assert!(bearer_token(&HeaderMap::new(), Some("access_token=a")).is_err());
        assert_eq!(
            bearer_token(&headers(&["Bearer a"]), Some("access_tokens=1")),
            Ok(Some("a"))
        );
    }
}
