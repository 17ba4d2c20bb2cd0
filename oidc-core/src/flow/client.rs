//! The relying-party client: authorization requests, code exchange, refresh, UserInfo, logout.

use std::sync::Arc;

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreRevocableToken,
    CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AuthType, AuthUrl, AuthenticationContextClass, AuthenticationFlow, AuthorizationCode, ClientId,
    CsrfToken, EndpointNotSet, EndpointSet, ExtraTokenFields, IssuerUrl, JsonWebKeySet, LoginHint,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, StandardErrorResponse, StandardTokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::callback::AuthorizationResponse;
use super::id_token::{self, Expect, IdTokenRules};
use super::par::{self, PushedAuthorization};
use super::secret::Secret;
use super::tokens::TokenSet;
use super::transaction::{AuthorizeOptions, RESERVED_PARAMS, Transaction, sanitize_return_to};
use crate::algorithm::{Algorithm, Algorithms};
use crate::clock::{self, Clock};
use crate::discovery::ProviderMetadata;
use crate::error::{ConfigError, FlowError, HttpError, VerifyError};
use crate::http::{HttpRequest, HttpResponse};
use crate::provider::Provider;
use crate::url_policy::checked_url;

/// The token response as openidconnect parses it, with the ID token kept as a raw string so
/// that it is validated by this crate (through the shared key cache), not parsed twice.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RawIdToken {
    #[serde(default)]
    id_token: Option<String>,
    /// An OAuth `error` member, which has no place in a successful response (CB-10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<Value>,
}

impl ExtraTokenFields for RawIdToken {}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NoClaims {}

impl openidconnect::AdditionalClaims for NoClaims {}

pub(crate) type RawTokenResponse = StandardTokenResponse<RawIdToken, CoreTokenType>;

impl
    openidconnect::TokenResponse<
        NoClaims,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    > for RawTokenResponse
{
    fn id_token(
        &self,
    ) -> Option<
        &openidconnect::IdToken<
            NoClaims,
            CoreGenderClaim,
            CoreJweContentEncryptionAlgorithm,
            CoreJwsSigningAlgorithm,
        >,
    > {
        None
    }
}

pub(crate) type OcBase<A, T> = openidconnect::Client<
    NoClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    RawTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    A,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    T,
    EndpointNotSet,
>;

type OcClient = OcBase<EndpointSet, EndpointSet>;

/// A client of the token endpoint only (no authorization endpoint, no redirect URI): what the
/// code flow builds on, and the client credentials grant uses as it is.
pub(crate) type OcTokenClient = OcBase<EndpointNotSet, EndpointSet>;

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic with the form-urlencoded id and secret (RFC 6749
    /// §2.3.1). The default for confidential clients.
    ClientSecretBasic,
    /// `client_secret_post`: id and secret in the request body.
    ClientSecretPost,
    /// A public client: no secret, only `client_id` in the body (PKCE protects the code).
    None,
}

/// An OpenID Connect relying party registered at one provider.
///
/// Cheap to clone; its own builder. The protocol details (PKCE S256, `state` and `nonce` of
/// 256 and 128+ bits, exact `redirect_uri`) are fixed; see the [module docs](crate::flow).
///
/// # Examples
///
/// ```
/// use oidc_core::Provider;
/// use oidc_core::flow::OidcClient;
///
/// let provider = Provider::builder("https://id.example.com").build()?;
/// let client = OidcClient::new(provider, "my-app", "https://app.example.com/auth/callback")?
///     .with_client_secret("s3cret")
///     .with_scopes(["openid", "profile", "email", "offline_access"]);
/// # Ok::<_, oidc_core::error::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct OidcClient {
    inner: Arc<ClientConfig>,
}

#[derive(Clone)]
struct ClientConfig {
    provider: Provider,
    client_id: String,
    secret: Option<Secret>,
    auth: ClientAuth,
    redirect_uri: String,
    scopes: Vec<String>,
    algorithms: Algorithms,
    trusted_audiences: Vec<String>,
    leeway: i64,
    max_token_size: usize,
    clock: Option<Clock>,
    pushed: PushedAuthorization,
}

impl std::fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.inner;
        f.debug_struct("OidcClient")
            .field("issuer", &c.provider.issuer())
            .field("client_id", &c.client_id)
            .field("auth", &c.auth)
            .field("redirect_uri", &c.redirect_uri)
            .field("scopes", &c.scopes)
            .field("algorithms", &c.algorithms)
            .finish_non_exhaustive()
    }
}

fn http_error(e: impl std::error::Error + Send + Sync + 'static) -> FlowError {
    FlowError::Http(HttpError::Other(Arc::new(e)))
}

impl OidcClient {
    /// A public client (no secret) of `provider` whose callback is `redirect_uri`.
    ///
    /// Defaults: scopes `openid profile email`, ID token algorithms `RS256` and `ES256` (and
    /// `EdDSA` when the provider advertises it in `id_token_signing_alg_values_supported`),
    /// leeway 60 s.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when `redirect_uri` is not an absolute `https` URL (or `http` on a
    /// loopback host).
    pub fn new(
        provider: Provider,
        client_id: impl Into<String>,
        redirect_uri: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        let redirect_uri = redirect_uri.into();
        checked_url(&redirect_uri, provider.allows_http())?;
        Ok(Self {
            inner: Arc::new(ClientConfig {
                provider,
                client_id: client_id.into(),
                secret: None,
                auth: ClientAuth::None,
                redirect_uri,
                scopes: ["openid", "profile", "email"].map(str::to_owned).to_vec(),
                algorithms: Algorithms::Default,
                trusted_audiences: Vec::new(),
                leeway: clock::DEFAULT_LEEWAY_SECS,
                max_token_size: 16 * 1024,
                clock: None,
                pushed: PushedAuthorization::WhenRequired,
            }),
        })
    }

    fn config(&mut self) -> &mut ClientConfig {
        Arc::make_mut(&mut self.inner)
    }

    /// Makes this a confidential client with `secret`, sent with `client_secret_basic` unless
    /// [`with_auth_method`](Self::with_auth_method) says otherwise. By default the client is
    /// public.
    #[must_use]
    pub fn with_client_secret(mut self, secret: impl Into<String>) -> Self {
        let c = self.config();
        c.secret = Some(Secret::new(secret));
        if c.auth == ClientAuth::None {
            c.auth = ClientAuth::ClientSecretBasic;
        }
        self
    }

    /// Sets the token endpoint authentication. The default value is
    /// [`ClientAuth::ClientSecretBasic`] with a secret, [`ClientAuth::None`] without.
    #[must_use]
    pub fn with_auth_method(mut self, auth: ClientAuth) -> Self {
        self.config().auth = auth;
        self
    }

    /// Replaces the requested scopes; `openid` is always requested. The default value is
    /// `openid profile email`.
    #[must_use]
    pub fn with_scopes<I: IntoIterator<Item = T>, T: Into<String>>(mut self, scopes: I) -> Self {
        let mut list: Vec<String> = vec!["openid".to_owned()];
        for s in scopes.into_iter().map(Into::into) {
            if !list.contains(&s) {
                list.push(s);
            }
        }
        self.config().scopes = list;
        self
    }

    /// Replaces the algorithms accepted for ID tokens (and logout tokens). By default `RS256`
    /// and `ES256` are accepted, and `EdDSA` when the provider advertises it in
    /// `id_token_signing_alg_values_supported`. A provider that publishes that list narrows
    /// these algorithms to the ones it names (OIDC Core 3.1.3.7 #7).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidAlgorithms`] for an empty list.
    pub fn with_id_token_algorithms(
        mut self,
        algorithms: impl IntoIterator<Item = Algorithm>,
    ) -> Result<Self, ConfigError> {
        self.config().algorithms = Algorithms::configured(algorithms)?;
        Ok(self)
    }

    /// Accepts ID tokens whose `aud` also names `audience` (OIDC Core 3.1.3.7 #3). By default
    /// only the client id is accepted.
    #[must_use]
    pub fn add_trusted_audience(mut self, audience: impl Into<String>) -> Self {
        self.config().trusted_audiences.push(audience.into());
        self
    }

    /// Sets the clock skew tolerated for ID token times. The default value is 60 s.
    #[must_use]
    pub fn with_leeway(mut self, leeway: std::time::Duration) -> Self {
        self.config().leeway = clock::leeway_secs(leeway);
        self
    }

    /// Sets when [`authorize`](Self::authorize) pushes the authorization request to the
    /// provider first (RFC 9126, [`par`](crate::flow::par)). The default is
    /// [`PushedAuthorization::WhenRequired`]: when the discovery document requires it.
    #[must_use]
    pub fn with_pushed_authorization(mut self, when: PushedAuthorization) -> Self {
        self.config().pushed = when;
        self
    }

    /// Replaces the clock. The default is the system clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.config().clock = Some(clock);
        self
    }

    /// The provider.
    pub fn provider(&self) -> &Provider {
        &self.inner.provider
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The registered callback URL.
    pub fn redirect_uri(&self) -> &str {
        &self.inner.redirect_uri
    }

    /// Seconds since the Unix epoch, by the configured clock.
    pub fn now(&self) -> i64 {
        clock::unix_now(self.inner.clock.as_ref())
    }

    pub(super) async fn metadata(&self) -> Result<Arc<ProviderMetadata>, FlowError> {
        self.inner
            .provider
            .metadata()
            .await
            .map_err(FlowError::Discovery)
    }

    fn endpoint(&self, url: Option<&str>, name: &'static str) -> Result<String, FlowError> {
        endpoint(&self.inner.provider, url, name)
    }

    /// The client of the token endpoint alone, authenticating as this client (the device and
    /// revocation requests build on it).
    pub(super) fn token_endpoint_client(
        &self,
        metadata: &ProviderMetadata,
    ) -> Result<OcTokenClient, FlowError> {
        let c = &*self.inner;
        token_client(
            &c.provider,
            &c.client_id,
            c.secret.as_ref(),
            c.auth,
            metadata,
        )
    }

    /// The requested scopes, `openid` first.
    pub(super) fn scopes(&self) -> &[String] {
        &self.inner.scopes
    }

    /// This client with another redirect URI: the loopback redirect of a native app (RFC 8252
    /// §7.3), whose port is known only once the listener is bound.
    #[cfg_attr(not(feature = "cli"), allow(dead_code))]
    pub(crate) fn with_redirect_uri(&self, redirect_uri: String) -> Result<Self, ConfigError> {
        checked_url(&redirect_uri, self.inner.provider.allows_http())?;
        let mut copy = self.clone();
        copy.config().redirect_uri = redirect_uri;
        Ok(copy)
    }

    fn oc_client(&self, metadata: &ProviderMetadata) -> Result<OcClient, FlowError> {
        let c = &*self.inner;
        let auth = self.endpoint(metadata.authorization_endpoint(), "authorization endpoint")?;
        let client = token_client(
            &c.provider,
            &c.client_id,
            c.secret.as_ref(),
            c.auth,
            metadata,
        )?;
        Ok(client
            .set_auth_uri(AuthUrl::new(auth).map_err(bad_url)?)
            .set_redirect_uri(RedirectUrl::new(c.redirect_uri.clone()).map_err(bad_url)?))
    }

    /// Starts a login: the URL to send the browser to, and the transaction to keep
    /// server-side until the callback.
    ///
    /// # Errors
    ///
    /// [`FlowError::UnsupportedGrant`] when an extra parameter asks for a refused grant (a
    /// `response_type` other than `code`, a `response_mode` other than `query`, a
    /// `grant_type`; see [refused grants](crate::flow::grants#refused-grants)), before any
    /// request; [`FlowError`] when the provider's metadata is unavailable or lacks an
    /// endpoint.
    pub async fn authorize(
        &self,
        options: &AuthorizeOptions,
    ) -> Result<(String, Transaction), FlowError> {
        for (name, value) in &options.extra {
            super::grants::check_authorize_param(name, value)
                .map_err(FlowError::UnsupportedGrant)?;
        }
        let metadata = self.metadata().await?;
        let client = self.oc_client(&metadata)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                AuthenticationFlow::<openidconnect::core::CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in self.inner.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        if let Some(hint) = &options.login_hint {
            request = request.set_login_hint(LoginHint::new(hint.clone()));
        }
        if let Some(max_age) = options.max_age {
            request = request.set_max_age(std::time::Duration::from_secs(max_age));
        }
        for prompt in &options.prompt {
            let prompt = match prompt.as_str() {
                "none" => CoreAuthPrompt::None,
                "login" => CoreAuthPrompt::Login,
                "consent" => CoreAuthPrompt::Consent,
                "select_account" => CoreAuthPrompt::SelectAccount,
                other => CoreAuthPrompt::Extension(other.to_owned()),
            };
            request = request.add_prompt(prompt);
        }
        for acr in &options.acr_values {
            request = request.add_auth_context_value(AuthenticationContextClass::new(acr.clone()));
        }
        for (name, value) in &options.extra {
            if !RESERVED_PARAMS.contains(&name.as_str()) {
                request = request.add_extra_param(name.clone(), value.clone());
            }
        }
        let (url, state, nonce) = request.url();
        let url = self.pushed(&metadata, url).await?;
        let tx = Transaction {
            state: Secret::new(state.secret().clone()),
            nonce: Secret::new(nonce.secret().clone()),
            pkce_verifier: Secret::new(verifier.secret().clone()),
            issuer: self.inner.provider.issuer().to_owned(),
            redirect_uri: self.inner.redirect_uri.clone(),
            return_to: options
                .return_to
                .clone()
                .unwrap_or_else(|| sanitize_return_to("/")),
            max_age: options.max_age,
            created_at: self.now(),
        };
        Ok((url, tx))
    }

    /// `url` as it is, or, when the authorization request is to be pushed (RFC 9126), the
    /// authorization endpoint with `client_id` and the `request_uri` of the pushed request.
    async fn pushed(
        &self,
        metadata: &ProviderMetadata,
        url: url::Url,
    ) -> Result<String, FlowError> {
        let endpoint = metadata.pushed_authorization_request_endpoint();
        let push = match self.inner.pushed {
            PushedAuthorization::WhenRequired => metadata.require_pushed_authorization_requests(),
            PushedAuthorization::WhenAvailable => endpoint.is_some(),
            PushedAuthorization::Always => true,
        };
        if !push {
            return Ok(url.into());
        }
        let endpoint = self.endpoint(endpoint, "pushed authorization request endpoint")?;
        let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let client = self.token_endpoint_client(metadata)?;
        let request_uri = par::push(&client, &self.inner.provider, &endpoint, params).await?;
        let mut pushed = url;
        pushed
            .query_pairs_mut()
            .clear()
            .append_pair("client_id", &self.inner.client_id)
            .append_pair("request_uri", &request_uri);
        Ok(pushed.into())
    }

    /// Checks an authorization response against its transaction (state, RFC 9207 `iss`, error)
    /// and, only then, exchanges the code and validates the ID token.
    ///
    /// # Errors
    ///
    /// [`FlowError`]; [`FlowError::kind`] says how to answer. For
    /// [`FlowErrorKind::Unbound`](crate::error::FlowErrorKind::Unbound) no request was sent
    /// to the provider.
    pub async fn complete(
        &self,
        tx: &Transaction,
        response: AuthorizationResponse,
    ) -> Result<TokenSet, FlowError> {
        if tx.issuer() != self.inner.provider.issuer() {
            return Err(FlowError::Unbound(
                "the transaction belongs to another provider",
            ));
        }
        let metadata = self.metadata().await?;
        let code = response.into_code(
            tx,
            metadata.authorization_response_iss_parameter_supported(),
        )?;
        let client = self.oc_client(&metadata)?;
        let response = client
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(PkceCodeVerifier::new(tx.pkce_verifier.secret().to_owned()))
            .request_async(&self.http())
            .await
            .map_err(token_error)?;
        self.token_set(response, None, Some(tx.nonce.secret()), tx.max_age, None)
            .await
    }

    /// Uses the refresh token of `tokens` for new tokens. A rotated refresh token replaces the
    /// old one; a new ID token must keep `iss`, `sub` and `aud` (IDT-14).
    ///
    /// # Errors
    ///
    /// [`FlowError`]; [`FlowError::is_invalid_grant`] means the session should end.
    pub async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet, FlowError> {
        let refresh_token = tokens
            .refresh_token()
            .ok_or(FlowError::InvalidResponse("no refresh token to use"))?;
        let metadata = self.metadata().await?;
        let client = self.oc_client(&metadata)?;
        let refresh = RefreshToken::new(refresh_token.secret().to_owned());
        let response = client
            .exchange_refresh_token(&refresh)
            .request_async(&self.http())
            .await
            .map_err(token_error)?;
        self.token_set(response, Some(tokens), None, None, Some(refresh_token))
            .await
    }

    pub(super) async fn token_set(
        &self,
        response: RawTokenResponse,
        previous: Option<&TokenSet>,
        nonce: Option<&str>,
        max_age: Option<u64>,
        old_refresh: Option<&Secret>,
    ) -> Result<TokenSet, FlowError> {
        let access_token = checked_access_token(&response)?;
        let (id_token, id_claims) = match (response.extra_fields().id_token.clone(), previous) {
            (Some(raw), _) => {
                let expectation = Expect {
                    nonce,
                    max_age,
                    access_token: Some(&access_token),
                    previous: previous.map(TokenSet::id_claims),
                };
                let is_refresh = previous.is_some();
                let claims = id_token::verify(&self.rules(), &raw, &expectation)
                    .await
                    .map_err(|e| match e {
                        VerifyError::InvalidClaim("iss" | "sub" | "azp")
                        | VerifyError::InvalidAudience
                            if is_refresh =>
                        {
                            FlowError::RefreshMismatch
                        }
                        other => FlowError::IdToken(other),
                    })?;
                (Secret::new(raw), claims)
            }
            (None, Some(previous)) => (previous.id_token.clone(), previous.id_claims.clone()),
            (None, None) => return Err(FlowError::MissingIdToken),
        };
        let now = self.now();
        Ok(TokenSet {
            access_token: Secret::new(access_token),
            refresh_token: response
                .refresh_token()
                .map(|r| Secret::new(r.secret().clone()))
                .or_else(|| old_refresh.cloned()),
            id_token,
            expires_at: response
                .expires_in()
                .map(|d| now.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))),
            scope: response
                .scopes()
                .map(|s| s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "))
                .or_else(|| previous.and_then(|p| p.scope.clone())),
            id_claims,
        })
    }

    pub(super) fn rules(&self) -> IdTokenRules<'_> {
        let c = &*self.inner;
        IdTokenRules {
            provider: &c.provider,
            client_id: &c.client_id,
            trusted_audiences: &c.trusted_audiences,
            algorithms: &c.algorithms,
            leeway: c.leeway,
            max_size: c.max_token_size,
            now: self.now(),
        }
    }

    fn http(
        &self,
    ) -> impl Fn(
        HttpRequest,
    )
        -> std::pin::Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send>> {
        provider_http(&self.inner.provider)
    }

    /// Fetches the UserInfo claims with `access_token`; their `sub` must be `subject`.
    ///
    /// # Errors
    ///
    /// [`FlowError::UserInfoSubjectMismatch`] (IDT-16), [`FlowError::UserInfoRefused`] when the
    /// token is refused, or a provider failure.
    pub async fn userinfo(
        &self,
        access_token: &Secret,
        subject: &str,
    ) -> Result<Map<String, Value>, FlowError> {
        let metadata = self.metadata().await?;
        let url = self.endpoint(metadata.userinfo_endpoint(), "userinfo endpoint")?;
        let request = http::Request::get(url)
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", access_token.secret()),
            )
            .body(Vec::new())
            .map_err(http_error)?;
        let response = self
            .inner
            .provider
            .http_client()
            .execute(request)
            .await
            .map_err(FlowError::Http)?;
        match response.status().as_u16() {
            200 => {}
            status @ (400 | 401 | 403) => return Err(FlowError::UserInfoRefused { status }),
            _ => {
                return Err(FlowError::InvalidResponse(
                    "userinfo answered with an error status",
                ));
            }
        }
        let claims: Map<String, Value> = serde_json::from_slice(response.body())
            .map_err(|_| FlowError::InvalidResponse("userinfo is not a json object"))?;
        match claims.get("sub") {
            Some(Value::String(sub)) if sub == subject => Ok(claims),
            _ => Err(FlowError::UserInfoSubjectMismatch),
        }
    }

    /// The URL that ends the user's session at the provider (OIDC RP-Initiated Logout, with a
    /// fresh random `state`), or `None` when the provider publishes no `end_session_endpoint`.
    ///
    /// # Errors
    ///
    /// [`FlowError`] when the provider's metadata is unavailable.
    pub async fn end_session_url(
        &self,
        id_token_hint: Option<&Secret>,
        post_logout_redirect_uri: Option<&str>,
    ) -> Result<Option<String>, FlowError> {
        let state = CsrfToken::new_random();
        let metadata = self.metadata().await?;
        let Some(endpoint) = metadata.end_session_endpoint() else {
            return Ok(None);
        };
        let endpoint = self.endpoint(Some(endpoint), "end_session endpoint")?;
        let mut url = url::Url::parse(&endpoint)
            .map_err(|_| FlowError::InvalidResponse("end_session endpoint is invalid"))?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(hint) = id_token_hint {
                query.append_pair("id_token_hint", hint.secret());
            }
            query.append_pair("client_id", &self.inner.client_id);
            if let Some(uri) = post_logout_redirect_uri {
                query.append_pair("post_logout_redirect_uri", uri);
            }
            query.append_pair("state", state.secret());
        }
        Ok(Some(url.into()))
    }
}

fn bad_url(_: url::ParseError) -> FlowError {
    FlowError::InvalidResponse("an endpoint url is invalid")
}

/// `url`, the provider's endpoint `name`, when it is published and acceptable under the
/// provider's URL policy.
fn endpoint(
    provider: &Provider,
    url: Option<&str>,
    name: &'static str,
) -> Result<String, FlowError> {
    let url = url.ok_or(FlowError::MissingEndpoint(name))?;
    checked_url(url, provider.allows_http()).map_err(|_| FlowError::MissingEndpoint(name))?;
    Ok(url.to_owned())
}

/// The openidconnect client of `provider`'s token endpoint, authenticating as `client_id`
/// with `secret` by `auth` (no secret: a public client that sends only its id). Shared by the
/// code flow and the client credentials grant, so that both authenticate the same way.
pub(crate) fn token_client(
    provider: &Provider,
    client_id: &str,
    secret: Option<&Secret>,
    auth: ClientAuth,
    metadata: &ProviderMetadata,
) -> Result<OcTokenClient, FlowError> {
    let token = endpoint(provider, metadata.token_endpoint(), "token endpoint")?;
    let mut client = OcBase::<EndpointNotSet, EndpointNotSet>::new(
        ClientId::new(client_id.to_owned()),
        IssuerUrl::new(provider.issuer().to_owned()).map_err(bad_url)?,
        JsonWebKeySet::new(Vec::new()),
    )
    .set_token_uri(TokenUrl::new(token).map_err(bad_url)?);
    if let Some(secret) = secret {
        let auth_type = match auth {
            ClientAuth::ClientSecretBasic => Some(AuthType::BasicAuth),
            ClientAuth::ClientSecretPost => Some(AuthType::RequestBody),
            ClientAuth::None => None,
        };
        if let Some(auth_type) = auth_type {
            client = client
                .set_client_secret(openidconnect::ClientSecret::new(secret.secret().to_owned()))
                .set_auth_type(auth_type);
        }
    }
    Ok(client)
}

/// The provider's HTTP client in the shape openidconnect's `request_async` takes.
pub(crate) fn provider_http(
    provider: &Provider,
) -> impl Fn(
    HttpRequest,
) -> std::pin::Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send>> {
    let http = provider.http_client();
    move |request| {
        let http = http.clone();
        Box::pin(async move { http.execute(request).await })
    }
}

/// [`provider_http`] that keeps the provider's response in `captured` and hands openidconnect
/// only its status: for a caller that checks the raw answer itself (token introspection).
pub(crate) fn provider_http_with(
    provider: &Provider,
    captured: Arc<std::sync::Mutex<Option<HttpResponse>>>,
) -> impl Fn(
    HttpRequest,
) -> std::pin::Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send>> {
    let http = provider_http(provider);
    move |request| {
        let sent = http(request);
        let captured = Arc::clone(&captured);
        Box::pin(async move {
            let response = sent.await?;
            let mut status_only = HttpResponse::new(Vec::new());
            *status_only.status_mut() = response.status();
            *captured
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(response);
            Ok(status_only)
        })
    }
}

/// The access token of a successful token response, after the checks every grant shares: no
/// OAuth `error` member (CB-10), `token_type` `Bearer`, a non-empty access token.
pub(super) fn checked_access_token(response: &RawTokenResponse) -> Result<String, FlowError> {
    match &response.extra_fields().error {
        None => {}
        Some(Value::String(error)) => {
            return Err(FlowError::TokenEndpoint {
                error: error.clone(),
            });
        }
        Some(_) => {
            return Err(FlowError::InvalidResponse(
                "the token response has an error",
            ));
        }
    }
    if *response.token_type() != CoreTokenType::Bearer {
        return Err(FlowError::InvalidResponse("token_type is not Bearer"));
    }
    let access_token = response.access_token().secret().clone();
    if access_token.is_empty() {
        return Err(FlowError::InvalidResponse("the access token is empty"));
    }
    Ok(access_token)
}

pub(super) fn token_error(
    e: RequestTokenError<HttpError, StandardErrorResponse<CoreErrorResponseType>>,
) -> FlowError {
    match e {
        RequestTokenError::ServerResponse(err) => FlowError::TokenEndpoint {
            error: err.error().as_ref().to_owned(),
        },
        RequestTokenError::Request(http) => FlowError::Http(http),
        RequestTokenError::Parse(_, _) => {
            FlowError::InvalidResponse("the token response is not of the expected shape")
        }
        RequestTokenError::Other(_) => {
            FlowError::InvalidResponse("the token endpoint answered unexpectedly")
        }
    }
}
