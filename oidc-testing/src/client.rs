//! Client registrations of the provider's authorization server.

use std::net::IpAddr;

use url::{Host, Url};

use crate::keys::SigningAlg;

/// The default audience of access tokens (and of registered clients).
pub(crate) const DEFAULT_AUDIENCE: &str = "api://default";

/// How a client authenticates at the token endpoint
/// (`token_endpoint_auth_method`).
///
/// The provider enforces the registered method strictly: a request that
/// authenticates another way (for example with `client_secret` in the body
/// for a `client_secret_basic` client, or with any secret for a public
/// client) fails with `401 invalid_client`.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TokenEndpointAuth {
    /// `client_secret_basic`: HTTP Basic authentication, the client id and
    /// secret each `application/x-www-form-urlencoded` first (RFC 6749
    /// §2.3.1). The default of [`ClientRegistration::confidential`].
    #[default]
    ClientSecretBasic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// `none`: a public client, which sends only `client_id` in the body (and
    /// must use PKCE, as every client of this provider). The method of
    /// [`ClientRegistration::public`].
    None,
}

impl TokenEndpointAuth {
    /// The registered name, as in `token_endpoint_auth_methods_supported`
    /// (`"client_secret_basic"`, `"client_secret_post"` or `"none"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenEndpointAuth::ClientSecretBasic => "client_secret_basic",
            TokenEndpointAuth::ClientSecretPost => "client_secret_post",
            TokenEndpointAuth::None => "none",
        }
    }
}

/// A client (relying party) registered at a
/// [`TestProvider`](crate::TestProvider) with
/// [`register_client`](crate::TestProvider::register_client).
///
/// Build it with [`confidential`](ClientRegistration::confidential) or
/// [`public`](ClientRegistration::public), then the `with_*`/`add_*`
/// methods. Defaults: access tokens for the audience `"api://default"`, ID
/// tokens signed with RS256, no post-logout redirect URI, no back-channel
/// logout URI, redirect URIs compared exactly.
///
/// ```
/// use oidc_testing::{ClientRegistration, SigningAlg, TokenEndpointAuth};
///
/// let client = ClientRegistration::confidential("app", "s3cret", "http://127.0.0.1:3000/cb")
///     .with_auth_method(TokenEndpointAuth::ClientSecretPost)
///     .add_post_logout_redirect_uri("http://127.0.0.1:3000/")
///     .with_access_token_audience("https://api.example.test")
///     .with_id_token_alg(SigningAlg::ES256);
/// assert_eq!(client.client_id(), "app");
/// assert_eq!(client.id_token_alg(), SigningAlg::ES256);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRegistration {
    pub(crate) client_id: String,
    pub(crate) secret: Option<String>,
    pub(crate) auth_method: TokenEndpointAuth,
    pub(crate) redirect_uris: Vec<String>,
    pub(crate) post_logout_redirect_uris: Vec<String>,
    pub(crate) backchannel_logout_uri: Option<String>,
    pub(crate) access_token_audience: String,
    pub(crate) id_token_alg: SigningAlg,
    pub(crate) any_loopback_redirect: bool,
}

impl ClientRegistration {
    /// A confidential client with this secret, authenticating with
    /// `client_secret_basic`, and one redirect URI.
    pub fn confidential(client_id: &str, secret: &str, redirect_uri: &str) -> Self {
        ClientRegistration {
            client_id: client_id.to_owned(),
            secret: Some(secret.to_owned()),
            auth_method: TokenEndpointAuth::ClientSecretBasic,
            redirect_uris: vec![redirect_uri.to_owned()],
            post_logout_redirect_uris: Vec::new(),
            backchannel_logout_uri: None,
            access_token_audience: DEFAULT_AUDIENCE.to_owned(),
            id_token_alg: SigningAlg::RS256,
            any_loopback_redirect: false,
        }
    }

    /// A public client (token endpoint auth method `none`, no secret) with
    /// one redirect URI. Like every client of this provider it must use PKCE
    /// with S256.
    pub fn public(client_id: &str, redirect_uri: &str) -> Self {
        ClientRegistration {
            secret: None,
            auth_method: TokenEndpointAuth::None,
            ..ClientRegistration::confidential(client_id, "", redirect_uri)
        }
    }

    /// Sets the token endpoint authentication method. A client without a
    /// secret (see [`public`](ClientRegistration::public)) that is switched
    /// to a secret method needs [`with_client_secret`](ClientRegistration::with_client_secret).
    pub fn with_auth_method(mut self, method: TokenEndpointAuth) -> Self {
        self.auth_method = method;
        self
    }

    /// Sets the client secret (used by the `client_secret_*` methods).
    pub fn with_client_secret(mut self, secret: &str) -> Self {
        self.secret = Some(secret.to_owned());
        self
    }

    /// Registers one more redirect URI (compared exactly, as a string).
    pub fn add_redirect_uri(mut self, uri: &str) -> Self {
        self.redirect_uris.push(uri.to_owned());
        self
    }

    /// Registers a `post_logout_redirect_uri` for RP-initiated logout
    /// (compared exactly, as a string).
    pub fn add_post_logout_redirect_uri(mut self, uri: &str) -> Self {
        self.post_logout_redirect_uris.push(uri.to_owned());
        self
    }

    /// Sets the client's back-channel logout URI (`backchannel_logout_uri`,
    /// OpenID Connect Back-Channel Logout 1.0). When the end-session
    /// endpoint ends a provider session in which this client was issued
    /// tokens, the provider POSTs a logout token (`sub` and the session's
    /// `sid`) to this URI; see
    /// [`TestProvider::backchannel_deliveries`](crate::TestProvider::backchannel_deliveries).
    /// Only `http` URIs can be delivered to (the delivery of an `https` URI
    /// is recorded as failed).
    pub fn with_backchannel_logout_uri(mut self, uri: &str) -> Self {
        self.backchannel_logout_uri = Some(uri.to_owned());
        self
    }

    /// Sets the `aud` of the access tokens issued to this client (default
    /// `"api://default"`).
    pub fn with_access_token_audience(mut self, aud: &str) -> Self {
        self.access_token_audience = aud.to_owned();
        self
    }

    /// Sets the algorithm of the ID tokens issued to this client
    /// (`id_token_signed_response_alg`, default RS256). They are signed with
    /// the provider's current key for that algorithm.
    pub fn with_id_token_alg(mut self, alg: SigningAlg) -> Self {
        self.id_token_alg = alg;
        self
    }

    /// **Test-only leniency.** With `true`, any `http`/`https` redirect URI
    /// and post-logout redirect URI on a loopback host (`127.0.0.0/8`,
    /// `[::1]` or `localhost`), with any port and path and no fragment, is
    /// accepted in addition to the registered ones. Useful when the app under
    /// test listens on a port chosen at run time. A real provider compares
    /// redirect URIs exactly.
    pub fn allow_any_loopback_redirect(mut self, yes: bool) -> Self {
        self.any_loopback_redirect = yes;
        self
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The client secret, if any.
    pub fn client_secret(&self) -> Option<&str> {
        self.secret.as_deref()
    }

    /// The token endpoint authentication method.
    pub fn auth_method(&self) -> TokenEndpointAuth {
        self.auth_method
    }

    /// The registered redirect URIs.
    pub fn redirect_uris(&self) -> &[String] {
        &self.redirect_uris
    }

    /// The registered post-logout redirect URIs.
    pub fn post_logout_redirect_uris(&self) -> &[String] {
        &self.post_logout_redirect_uris
    }

    /// The back-channel logout URI, if any.
    pub fn backchannel_logout_uri(&self) -> Option<&str> {
        self.backchannel_logout_uri.as_deref()
    }

    /// The `aud` of this client's access tokens.
    pub fn access_token_audience(&self) -> &str {
        &self.access_token_audience
    }

    /// The algorithm of this client's ID tokens.
    pub fn id_token_alg(&self) -> SigningAlg {
        self.id_token_alg
    }

    /// Whether [`allow_any_loopback_redirect`](ClientRegistration::allow_any_loopback_redirect)
    /// is on.
    pub fn allows_any_loopback_redirect(&self) -> bool {
        self.any_loopback_redirect
    }

    /// Whether `uri` is an acceptable `redirect_uri` for this client.
    pub(crate) fn accepts_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris
            .iter()
            .any(|registered| registered == uri)
            || (self.any_loopback_redirect && is_loopback_uri(uri))
    }

    /// Whether `uri` is an acceptable `post_logout_redirect_uri`.
    pub(crate) fn accepts_post_logout_redirect_uri(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris
            .iter()
            .any(|registered| registered == uri)
            || (self.any_loopback_redirect && is_loopback_uri(uri))
    }
}

/// An absolute `http(s)` URL on a loopback host, without a fragment.
fn is_loopback_uri(uri: &str) -> bool {
    let Ok(url) = Url::parse(uri) else {
        return false;
    };
    if !matches!(url.scheme(), "http" | "https") || url.fragment().is_some() {
        return false;
    }
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_leniency() {
        let strict = ClientRegistration::public("c", "http://127.0.0.1:3000/cb");
        assert!(strict.accepts_redirect_uri("http://127.0.0.1:3000/cb"));
        assert!(!strict.accepts_redirect_uri("http://127.0.0.1:3001/cb"));
        assert!(!strict.accepts_redirect_uri("http://127.0.0.1:3000/cb/"));

        let lenient = strict.allow_any_loopback_redirect(true);
        for ok in [
            "http://127.0.0.1:3001/cb",
            "http://127.0.0.2/x?y=1",
            "http://localhost:8080/auth/callback",
            "http://[::1]:9/",
        ] {
            assert!(lenient.accepts_redirect_uri(ok), "{ok}");
            assert!(lenient.accepts_post_logout_redirect_uri(ok), "{ok}");
        }
        for bad in [
            "http://evil.example/cb",
            "http://127.0.0.1.evil.example/cb",
            "http://localhost.evil.example/",
            "http://127.0.0.1:3000/cb#frag",
            "javascript:alert(1)",
            "/relative",
            "ftp://127.0.0.1/",
        ] {
            assert!(!lenient.accepts_redirect_uri(bad), "{bad}");
        }
    }

    #[test]
    fn builders() {
        let client = ClientRegistration::public("p", "http://a/cb")
            .with_auth_method(TokenEndpointAuth::ClientSecretPost)
            .with_client_secret("s")
            .add_redirect_uri("http://b/cb")
            .with_backchannel_logout_uri("http://a/bcl");
        assert_eq!(client.client_secret(), Some("s"));
        assert_eq!(client.auth_method().as_str(), "client_secret_post");
        assert_eq!(client.redirect_uris().len(), 2);
        assert_eq!(client.backchannel_logout_uri(), Some("http://a/bcl"));
        assert_eq!(client.access_token_audience(), "api://default");
        assert_eq!(
            ClientRegistration::confidential("c", "s", "http://a/cb").auth_method(),
            TokenEndpointAuth::ClientSecretBasic
        );
    }
}
