//! Public types of the authorization server's misbehaviour knobs and
//! request recordings. The provider's state holds them; each setter and
//! reader sits with the endpoint it changes or records (`endpoints/`,
//! `backchannel.rs`).

use crate::params::find_param;

/// How the ID tokens of the token endpoint are signed; set with
/// [`TestProvider::sign_id_token_with`](crate::TestProvider::sign_id_token_with).
///
/// Every variant signs the header and claims exactly as built (after the
/// mutations of
/// [`mutate_id_token`](crate::TestProvider::mutate_id_token)), with the
/// `kid` of the client's algorithm's current key unless a mutation changed
/// it.
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum IdTokenSigning {
    /// Signed with the provider's current key for the client's
    /// [`id_token_alg`](crate::ClientRegistration::with_id_token_alg) (the
    /// default).
    #[default]
    Normal,
    /// Signed with the never-published foreign key of that algorithm's
    /// family (IDT-02: the signature verifies with no published key).
    ForeignKey,
    /// Validly signed, then one bit of the signature flipped (IDT-02).
    TamperedSignature,
    /// Unsigned: the header's `alg` set to this name (`"none"`, `"None"`,
    /// `"NONE"`, ...) and an empty signature part (IDT-03).
    None(String),
    /// Like [`None`](IdTokenSigning::None) but keeping a real signature
    /// part (IDT-03, "signature present").
    NoneWithSignature(String),
    /// `alg` `"HS256"`, MACed with these bytes as the key: the client secret
    /// (IDT-05 for a client configured for HMAC), a wrong secret (IDT-02),
    /// or [`TestProvider::rsa_public_key_pem`](crate::TestProvider::rsa_public_key_pem)
    /// (IDT-04 key confusion; the `kid` stays the RSA key's).
    Hs256(Vec<u8>),
}

/// The `iss` parameter of the authorization response (RFC 9207); set with
/// [`TestProvider::set_callback_iss`](crate::TestProvider::set_callback_iss).
/// Applies to successful and error responses.
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CallbackIss {
    /// `iss` = the provider's issuer (the default; discovery advertises
    /// `authorization_response_iss_parameter_supported: true`).
    #[default]
    Correct,
    /// No `iss` parameter (CB-05).
    Omit,
    /// `iss` = this value (CB-05: another issuer, a trailing slash, ...).
    Value(String),
}

/// The `state` the end-session endpoint sends back to the
/// `post_logout_redirect_uri`; set with
/// [`TestProvider::set_logout_state`](crate::TestProvider::set_logout_state).
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LogoutState {
    /// The `state` of the logout request, when it had one (the default).
    #[default]
    Echo,
    /// No `state` (LO-03 "no state").
    Omit,
    /// This `state` instead (LO-03 "other state").
    Value(String),
}

/// One request to the token endpoint, as recorded by the provider (see
/// [`TestProvider::token_requests`](crate::TestProvider::token_requests)).
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordedTokenRequest {
    /// The form parameters in order, decoded, duplicates kept.
    pub params: Vec<(String, String)>,
    /// Whether the request had an `Authorization: Basic` header.
    pub basic_auth: bool,
    /// The client id from the Basic credentials, after form-urlencoded
    /// decoding (RFC 6749 §2.3.1).
    pub basic_client_id: Option<String>,
    /// The client secret from the Basic credentials, after form-urlencoded
    /// decoding.
    pub basic_client_secret: Option<String>,
}

impl RecordedTokenRequest {
    /// The first value of the form parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name)
    }
}

/// One back-channel logout delivery: a `POST` of a `logout_token` to a
/// client's `backchannel_logout_uri`, and what the client answered.
///
/// Recorded for each delivery, whether it was caused by the end-session
/// endpoint or asked for by the test; see
/// [`TestProvider::backchannel_deliveries`](crate::TestProvider::backchannel_deliveries).
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackchannelDelivery {
    /// The client the token was delivered to.
    pub client_id: String,
    /// The URI it was POSTed to (the client's `backchannel_logout_uri`).
    pub uri: String,
    /// The `logout_token` as sent.
    pub logout_token: String,
    /// The token's `sub` claim (read without verification), if any.
    pub sub: Option<String>,
    /// The token's `sid` claim (read without verification), if any.
    pub sid: Option<String>,
    /// The HTTP status of the client's answer; `None` when there was no
    /// answer (see [`error`](BackchannelDelivery::error)).
    pub status: Option<u16>,
    /// The response headers in order, names in lowercase.
    pub headers: Vec<(String, String)>,
    /// The response body (lossy UTF-8; chunked bodies decoded), at most
    /// 64 KiB with the head.
    pub body: String,
    /// Why the delivery got no answer (connection refused, timeout, an
    /// `https` URI, a malformed response...).
    pub error: Option<String>,
}

impl BackchannelDelivery {
    /// The first value of the response header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// How the token endpoint answers a token exchange (RFC 8693) it accepted; set with
/// [`TestProvider::set_token_exchange_answer`](crate::TestProvider::set_token_exchange_answer).
///
/// Every variant except [`Normal`](TokenExchangeAnswer::Normal) is a hostile or broken
/// provider, for the client's rejection paths. The subject token and the client are checked
/// first in every case: an invalid subject token is refused with `invalid_grant` whatever the
/// knob says.
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TokenExchangeAnswer {
    /// A new access token for the requested audience (the default).
    #[default]
    Normal,
    /// `400` with this OAuth `error` code (`invalid_target`, `unauthorized_client`…; with
    /// `invalid_client`, `401`) and an `error_description`.
    Error(String),
    /// A normal answer whose `issued_token_type` is this value.
    IssuedTokenType(String),
    /// A normal answer whose `token_type` is this value.
    TokenType(String),
    /// A normal answer whose `access_token` is this many bytes of `A`.
    HugeToken(usize),
    /// A normal answer whose `access_token` is the subject token itself.
    EchoSubjectToken,
    /// A normal answer whose `expires_in` is this JSON value.
    ExpiresIn(serde_json::Value),
}
