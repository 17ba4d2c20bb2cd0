//! The OAuth grants by name: which ones this library implements, where, and which it refuses
//! (the implicit flow and the resource owner password grant), with Keycloak's names for
//! each.
//!
//! # Keycloak flows by name
//!
//! A Keycloak client's *Capability config* names its flows; this table says what each one
//! is in this library. The issuer of a Keycloak realm is `https://<host>/realms/<realm>`.
//!
//! | Keycloak setting | grant (`grant_type`) | this library |
//! |---|---|---|
//! | *Standard flow*, *Client authentication* **off** (a public client: a single-page or native app) | `authorization_code` with PKCE, no secret | [`OidcClient::new`](super::OidcClient::new) (public by default); a command line: `oidc_core::cli::LoopbackLogin` (feature `cli`, RFC 8252 loopback redirect) |
//! | *Standard flow*, *Client authentication* **on** (a confidential client: a web server) | `authorization_code` with PKCE and the client secret | [`OidcClient::with_client_secret`](super::OidcClient::with_client_secret) (`client_secret_basic`; [`ClientAuth::ClientSecretPost`](super::ClientAuth::ClientSecretPost) for *Client Id and Secret* sent in the body), in a web app `oidc_tower::login::LoginLayer` |
//! | refresh tokens (*Use refresh tokens*, on by default; the `offline_access` scope for offline tokens) | `refresh_token` | [`OidcClient::refresh`](super::OidcClient::refresh); `LoginLayer` refreshes sessions itself, `oidc_core::cli::TokenFile` on next use, [`issue::Revalidator`](crate::issue::Revalidator) before minting |
//! | *Service accounts roles* (needs *Client authentication* on) | `client_credentials` | [`ServiceClient`](super::ServiceClient) (cached, renewed single-flight), on outgoing calls `oidc_tower::OutboundAuthLayer` |
//! | *OAuth 2.0 Device Authorization Grant* | `urn:ietf:params:oauth:grant-type:device_code` (RFC 8628) | [`DeviceFlow`](super::DeviceFlow) (public or confidential client) |
//! | *Standard Token Exchange* (Keycloak 26.2 and later) | `urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693) | [`TokenExchanger`](super::TokenExchanger): the signed-in user's access token in, a token for another audience out |
//! | *Implicit flow* | none: `response_type=token` or `id_token token` | **refused**: use *Standard flow* (authorization code with PKCE); see below |
//! | *Direct access grants* | `password` | **refused**: *Standard flow* for users with a browser, *OAuth 2.0 Device Authorization Grant* for a command line without one, *Service accounts roles* for a service; see below |
//! | *OIDC CIBA Grant*, *Client Authenticator: Signed JWT* (`private_key_jwt`), *mTLS* | | not implemented |
//!
//! Turn *Implicit flow* and *Direct access grants* off in Keycloak: this library never uses
//! them, and a client that has them on accepts them from anyone who holds its id (and secret).
//! In *Advanced*, set *Proof Key for Code Exchange Code Challenge Method* to `S256`: this
//! library always sends PKCE S256, and the setting makes Keycloak refuse requests without it.
//! Back-channel logout: *Backchannel logout URL* `{app_url}/auth/backchannel-logout` with
//! *Backchannel logout session required* on (see `oidc_tower::login`).
//!
//! # Refused grants
//!
//! Where a user of this library could ask for either refused grant, the answer is an error
//! that names the alternative, and nothing is sent to the provider:
//!
//! - By name in configuration: [`Grant`]'s [`FromStr`](std::str::FromStr) answers
//!   [`ConfigError::UnsupportedGrant`] for `implicit`, `password`, the response types that
//!   return tokens from the authorization endpoint (`token`, `id_token`, `id_token token`,
//!   the hybrid `code id_token`…), and any name it does not know.
//! - In an authorization request: an extra parameter
//!   ([`AuthorizeOptions::add_param`](super::AuthorizeOptions::add_param)) that sets
//!   `response_type` to anything but `code`, `response_mode` to anything but `query`, or any
//!   `grant_type`, makes [`OidcClient::authorize`](super::OidcClient::authorize) fail with
//!   [`FlowError::UnsupportedGrant`](crate::error::FlowError::UnsupportedGrant).
//! - At the callback: an authorization response that carries `access_token`, `id_token`,
//!   `token_type` or `refresh_token` (an implicit or hybrid response, with or without a
//!   `code`) is refused by
//!   [`AuthorizationResponse::from_query`](super::AuthorizationResponse::from_query) with
//!   [`FlowError::ImplicitResponse`](crate::error::FlowError::ImplicitResponse), before the transaction is looked up and before any
//!   token request; `oidc_tower`'s callback answers 400 with a page that says so (and never
//!   shows the token).
//!
//! Why: the implicit flow returns the access token in the redirect URL, where browser
//! history, logs and `Referer` headers leak it, with no PKCE and no client authentication to
//! bind it to the client (RFC 9700 §2.1.2: "SHOULD NOT use the implicit grant"). The password
//! grant gives the user's password to the client, and cannot do multi-factor or federated
//! login (RFC 9700 §2.4: "MUST NOT be used").
//!
//! # Examples
//!
//! A configuration names its grant; each one leads to its API:
//!
//! ```
//! use oidc_core::Provider;
//! use oidc_core::error::ConfigError;
//! use oidc_core::flow::{DeviceFlow, Grant, OidcClient, ServiceClient};
//!
//! let provider = Provider::builder("https://keycloak.example.com/realms/corp").build()?;
//!
//! match "urn:ietf:params:oauth:grant-type:device_code".parse::<Grant>()? {
//!     Grant::AuthorizationCode | Grant::RefreshToken => {
//!         let _web = OidcClient::new(provider, "web", "https://app.example.com/auth/callback")?
//!             .with_client_secret("from-the-keycloak-credentials-tab");
//!     }
//!     Grant::ClientCredentials => {
//!         let _service = ServiceClient::new(provider, "billing", "secret");
//!     }
//!     Grant::DeviceCode => {
//!         // A public Keycloak client with "OAuth 2.0 Device Authorization Grant" on.
//!         let client = OidcClient::new(provider, "cli", "http://127.0.0.1/callback")?;
//!         let _device = DeviceFlow::new(client);
//!     }
//!     _ => {}
//! }
//!
//! // The refused grants say what to use instead.
//! let err = "password".parse::<Grant>().unwrap_err();
//! assert!(matches!(err, ConfigError::UnsupportedGrant { .. }));
//! assert!(err.to_string().contains("device_code"));
//! let err = "implicit".parse::<Grant>().unwrap_err();
//! assert!(err.to_string().contains("authorization code flow with PKCE"));
//! # Ok::<_, ConfigError>(())
//! ```

use crate::error::ConfigError;

/// A grant this library implements, by the name a configuration gives it.
///
/// [`FromStr`](std::str::FromStr) takes the `grant_type` values of the RFCs and their short
/// names (exact, case-sensitive); [`as_str`](Self::as_str) gives the `grant_type` value. See
/// the [module docs](self) for the API of each and the refused ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Grant {
    /// The authorization code flow with PKCE (`authorization_code`; also the response type
    /// `code`): [`OidcClient`](super::OidcClient), `LoginLayer`, `LoopbackLogin`.
    AuthorizationCode,
    /// `refresh_token`: [`OidcClient::refresh`](super::OidcClient::refresh).
    RefreshToken,
    /// `client_credentials`: [`ServiceClient`](super::ServiceClient).
    ClientCredentials,
    /// `urn:ietf:params:oauth:grant-type:device_code` (also `device_code`):
    /// [`DeviceFlow`](super::DeviceFlow).
    DeviceCode,
    /// `urn:ietf:params:oauth:grant-type:token-exchange` (also `token_exchange`,
    /// `token-exchange`): RFC 8693 token exchange.
    TokenExchange,
}

/// The advice for the implicit flow and for response types that return tokens from the
/// authorization endpoint.
pub(crate) const IMPLICIT_ADVICE: &str = "the implicit flow returns tokens in the redirect url and is not supported; \
     use the authorization code flow with PKCE (grant authorization_code, response type code: \
     OidcClient, LoginLayer, or LoopbackLogin for a native app)";

const PASSWORD_ADVICE: &str = "the resource owner password grant gives the user's password to the client and is not supported; \
     use the authorization code flow (authorization_code) for users with a browser, \
     the device grant (urn:ietf:params:oauth:grant-type:device_code, DeviceFlow) for a command line without one, \
     or client_credentials (ServiceClient) for a service";

const UNKNOWN_ADVICE: &str = "supported grants are authorization_code, refresh_token, client_credentials, \
     urn:ietf:params:oauth:grant-type:device_code and urn:ietf:params:oauth:grant-type:token-exchange";

/// The longest name repeated in an error: a value pasted into the wrong setting (a secret)
/// is not copied whole into logs.
const MAX_NAME_IN_ERROR: usize = 64;

impl Grant {
    /// The `grant_type` value of the token request.
    ///
    /// ```
    /// use oidc_core::flow::Grant;
    ///
    /// assert_eq!(Grant::DeviceCode.as_str(), "urn:ietf:params:oauth:grant-type:device_code");
    /// assert_eq!("device_code".parse::<Grant>().ok(), Some(Grant::DeviceCode));
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
            Self::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
            Self::TokenExchange => "urn:ietf:params:oauth:grant-type:token-exchange",
        }
    }
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Grant {
    type Err = ConfigError;

    /// Parses a grant name; see the [module docs](self#refused-grants) for what is refused.
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnsupportedGrant`], naming the alternative, for `implicit`, `password`,
    /// a response type that returns tokens from the authorization endpoint, or an unknown
    /// name.
    fn from_str(name: &str) -> Result<Self, ConfigError> {
        match name {
            "authorization_code" | "code" => Ok(Self::AuthorizationCode),
            "refresh_token" => Ok(Self::RefreshToken),
            "client_credentials" => Ok(Self::ClientCredentials),
            "urn:ietf:params:oauth:grant-type:device_code" | "device_code" => Ok(Self::DeviceCode),
            "urn:ietf:params:oauth:grant-type:token-exchange"
            | "token_exchange"
            | "token-exchange" => Ok(Self::TokenExchange),
            "password" => Err(unsupported(name, PASSWORD_ADVICE)),
            _ if is_front_channel_token_request(name) => Err(unsupported(name, IMPLICIT_ADVICE)),
            _ => Err(unsupported(name, UNKNOWN_ADVICE)),
        }
    }
}

/// `implicit`, or a response type (space-separated, any order) that returns a token from the
/// authorization endpoint: `token`, `id_token`, `id_token token`, `code token`, `code
/// id_token`…
pub(crate) fn is_front_channel_token_request(name: &str) -> bool {
    name == "implicit"
        || name
            .split_ascii_whitespace()
            .any(|part| part == "token" || part == "id_token")
}

/// The error for `name`, refused with `advice`; `name` is cut to a bounded length.
pub(crate) fn unsupported(name: &str, advice: &'static str) -> ConfigError {
    let grant = match name.char_indices().nth(MAX_NAME_IN_ERROR) {
        Some((end, _)) => format!("{}…", name.get(..end).unwrap_or_default()),
        None => name.to_owned(),
    };
    ConfigError::UnsupportedGrant { grant, advice }
}

/// Refuses an extra authorization request parameter that would ask for another grant: a
/// `response_type` other than `code`, a `response_mode` other than `query`, any `grant_type`.
pub(crate) fn check_authorize_param(name: &str, value: &str) -> Result<(), ConfigError> {
    match name {
        "response_type" if value == "code" => Ok(()),
        "response_type" if is_front_channel_token_request(value) => {
            Err(unsupported(value, IMPLICIT_ADVICE))
        }
        "response_type" => Err(unsupported(value, RESPONSE_TYPE_ADVICE)),
        "response_mode" if value == "query" => Ok(()),
        "response_mode" => Err(unsupported(value, RESPONSE_MODE_ADVICE)),
        "grant_type" => Err(unsupported(value, GRANT_TYPE_ADVICE)),
        _ => Ok(()),
    }
}

const RESPONSE_TYPE_ADVICE: &str = "the authorization request always uses response type code (the authorization code flow with PKCE)";

const RESPONSE_MODE_ADVICE: &str = "the callback reads the code from the query: only response_mode query is supported \
     (fragment is for the implicit flow, form_post is not accepted by the callback)";

const GRANT_TYPE_ADVICE: &str = "grant_type is not a parameter of the authorization request; \
     the code flow redeems its code with authorization_code, use ServiceClient, DeviceFlow or TokenExchanger for the other grants";
