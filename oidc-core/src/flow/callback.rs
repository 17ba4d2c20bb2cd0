//! The authorization response: the query string of the redirect back to the app.

use super::transaction::Transaction;
use crate::error::FlowError;
use crate::flow::secret::ct_eq;

/// The parameters only a response that returns tokens from the authorization endpoint has
/// (the implicit flow, `response_type=token` or `id_token token`, and the hybrid flows).
const TOKEN_PARAMS: [&str; 4] = ["access_token", "id_token", "token_type", "refresh_token"];

/// The parameters of an authorization response, parsed strictly: every parameter at most once.
#[derive(Debug, Clone, Default)]
pub struct AuthorizationResponse {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

impl AuthorizationResponse {
    /// Parses a query string (`code=…&state=…&iss=…`).
    ///
    /// # Errors
    ///
    /// [`FlowError::ImplicitResponse`] when the response carries a token (`access_token`,
    /// `id_token`, `token_type`, `refresh_token`), with or without a `code`: an implicit or
    /// hybrid response, never asked for (see
    /// [refused grants](crate::flow::grants#refused-grants)); the token is not kept.
    /// [`FlowError::Unbound`] when a parameter appears twice (CB-02).
    pub fn from_query(query: &str) -> Result<Self, FlowError> {
        let mut out = Self::default();
        let pairs = url::form_urlencoded::parse(query.as_bytes());
        if pairs
            .clone()
            .any(|(name, _)| TOKEN_PARAMS.contains(&&*name))
        {
            return Err(FlowError::ImplicitResponse);
        }
        for (name, value) in pairs {
            let slot = match &*name {
                "code" => &mut out.code,
                "state" => &mut out.state,
                "iss" => &mut out.iss,
                "error" => &mut out.error,
                "error_description" => &mut out.error_description,
                _ => continue,
            };
            if slot.is_some() {
                return Err(FlowError::Unbound("a parameter appears twice"));
            }
            *slot = Some(value.into_owned());
        }
        Ok(out)
    }

    /// The `state` parameter, used to find the transaction.
    pub fn state(&self) -> Option<&str> {
        self.state.as_deref()
    }

    /// Checks the response against its transaction and returns the code.
    ///
    /// Order: `state` (constant-time), then RFC 9207 `iss` (compared when present, required
    /// when the provider advertises it), then an `error` from the provider, then `code`.
    pub(crate) fn into_code(
        self,
        tx: &Transaction,
        iss_advertised: bool,
    ) -> Result<String, FlowError> {
        let state = self.state.ok_or(FlowError::Unbound("state is missing"))?;
        if !ct_eq(state.as_bytes(), tx.state().as_bytes()) {
            return Err(FlowError::Unbound("state does not match"));
        }
        match &self.iss {
            Some(iss) if iss != tx.issuer() => {
                return Err(FlowError::Unbound("iss does not match the issuer"));
            }
            None if iss_advertised => {
                return Err(FlowError::Unbound("iss is missing but advertised"));
            }
            _ => {}
        }
        if let Some(error) = self.error {
            return Err(FlowError::AuthorizationDenied {
                error,
                description: self.error_description,
            });
        }
        self.code
            .filter(|c| !c.is_empty())
            .ok_or(FlowError::InvalidResponse("the callback has no code"))
    }
}
