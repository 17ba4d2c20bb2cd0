//! Rejections of the extractors: responses, with a status and a text.

use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use oidc_tower::OnRejection;

/// Why [`Claims`](crate::Claims), [`Authenticated`](crate::Authenticated) or
/// [`RequireScopes`](crate::RequireScopes) could not be extracted.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ClaimsRejection {
    /// The authentication layer let the request through without credentials
    /// ([`allow_anonymous`](oidc_tower::BearerAuthLayer::allow_anonymous), or a login layer
    /// that does not require login), and this handler needs an identity. **401** with the
    /// layer's `WWW-Authenticate` challenge, or **303** to the login for a browser navigation
    /// behind a login layer (see [`Anonymous::error_for`](oidc_tower::Anonymous::error_for)).
    Unauthenticated(oidc_tower::AuthError),
    /// No verified claims of this type are in the request: the authentication layer is
    /// missing, or it inserts another claim type. **500**: a bug in the application.
    MissingLayer {
        /// The claim type that was asked for.
        claims_type: &'static str,
    },
    /// The token lacks a scope the handler requires. **403** with the challenge of
    /// [`AuthError::insufficient_scope`](oidc_tower::AuthError::insufficient_scope) (the
    /// authenticating layer's realm, `error="insufficient_scope"`, the required scopes);
    /// [`AuthError::required_scopes`](oidc_tower::AuthError::required_scopes) lists them.
    InsufficientScope(oidc_tower::AuthError),
}

impl ClaimsRejection {
    /// The status code of the response.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated(error) => error.status(),
            Self::MissingLayer { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            Self::InsufficientScope(error) => error.status(),
        }
    }

    /// The text of the response body.
    pub fn body_text(&self) -> String {
        self.to_string()
    }
}

impl std::fmt::Display for ClaimsRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unauthenticated(_) => f.write_str("authentication required"),
            Self::MissingLayer { claims_type } => write!(
                f,
                "missing verified claims of type `{claims_type}`: is `oidc_tower::BearerAuthLayer` \
                 added around this route (with `.with_claims::<C>()` for a custom claim type)?"
            ),
            Self::InsufficientScope(error) => {
                write!(
                    f,
                    "insufficient scope: requires {}",
                    error.required_scopes().join(" ")
                )
            }
        }
    }
}

impl std::error::Error for ClaimsRejection {}

impl IntoResponse for ClaimsRejection {
    fn into_response(self) -> Response {
        tracing::trace!(target: "oidc::rejection", status = %self.status(), "{self}");
        match &self {
            Self::Unauthenticated(error) => oidc_tower::DefaultRejection.on_rejection(error),
            // The layer's challenge and headers, with this text as the body.
            Self::InsufficientScope(error) => {
                let res: Response = oidc_tower::DefaultRejection.on_rejection(error);
                let (mut parts, _) = res.into_parts();
                parts.headers.insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                Response::from_parts(parts, self.body_text().into())
            }
            Self::MissingLayer { .. } => (self.status(), self.body_text()).into_response(),
        }
    }
}
