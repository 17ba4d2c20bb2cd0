//! Opaque access tokens: validation by the provider's token introspection endpoint (RFC 7662).
//!
//! Turned on with [`AccessTokenVerifier::with_introspection`](super::AccessTokenVerifier::with_introspection).
//! A token that is a compact JWS (three base64url segments) is verified as a JWT, as without
//! introspection, and never sent to the endpoint; any other token is introspected.
//!
//! # The request
//!
//! `POST` to the provider's `introspection_endpoint` (from discovery, or
//! [`Introspector::with_endpoint`]) with `token` and `token_type_hint=access_token` in the
//! form body, never in the URL. The client authenticates exactly as
//! [`ServiceClient`](crate::flow::ServiceClient) does (`client_secret_basic` or
//! `client_secret_post`, through the same code): the method is
//! [`Introspector::with_auth_method`], else `client_secret_basic` when the provider lists it in
//! `introspection_endpoint_auth_methods_supported` (or, without that list, in
//! `token_endpoint_auth_methods_supported`) or lists nothing, else `client_secret_post`.
//!
//! # What is checked
//!
//! - The answer must be a 200 with a JSON object of at most 64 KiB without duplicate members;
//!   anything else, a transport error or a timeout is
//!   [`VerifyError::IntrospectionUnavailable`] (a 503 in the tower layer), and never cached.
//! - `active` must be the JSON value `true`: `false`, `"true"`, `1` or no `active` is
//!   [`VerifyError::Inactive`].
//! - `iss`, when present, must equal the issuer; `aud` is required and must contain a
//!   configured audience (as for JWTs); `exp` is required and must be in the future; `nbf` and
//!   `iat`, when present, must not be in the future (with the leeway); `iat` is not required.
//! - `token_type`, when present, must be `Bearer` or `access_token` (case-insensitive): a
//!   refresh token or anything else is [`VerifyError::NotAnAccessToken`]; a `cnf` member is
//!   [`VerifyError::SenderConstrained`].
//! - `sub` must be a non-empty string; without `sub`, the `client_id` is the subject (a
//!   client credentials token).
//! - `scope` becomes the [`Identity`]'s scopes; the whole answer is the claims handed to
//!   the application.
//!
//! # Cache
//!
//! Answers are kept by a keyed hash of the token (random seed per cache) and answered only
//! for the same token bytes (compared in constant time), like the JWT token cache:
//!
//! - an accepted token until its `exp`, at most 60 s by default
//!   ([`Introspector::with_cache`]): a token revoked at the provider is accepted at most that
//!   long after;
//! - a refused token (inactive, or refused by a check above) 10 s by default;
//! - both by the verifier's clock (and, as an upper bound, the monotonic clock);
//! - endpoint failures never.
//!
//! Concurrent requests with the same token send one introspection request (single-flight).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use openidconnect::{AccessToken, IntrospectionUrl, RequestTokenError};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::Config;
use super::cache::{EntryExpiry, Keyer, Lifetime, TokenBytes};
use crate::claims::Identity;
use crate::error::VerifyError;
use crate::flow::client::{provider_http_with, token_client};
use crate::flow::client_credentials::negotiate;
use crate::flow::{ClientAuth, Secret};
use crate::http::HttpResponse;
use crate::jws;
use crate::url_policy::checked_url;

/// The largest introspection answer read.
const MAX_BODY: usize = 64 * 1024;
/// Accepted tokens are kept at most this long by default.
const DEFAULT_POSITIVE_TTL: Duration = Duration::from_secs(60);
/// Refused tokens are kept this long by default.
const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(10);
/// Tokens kept by default.
const DEFAULT_CAPACITY: u64 = 10_000;

/// How opaque tokens are introspected: the client that asks, and the cache of answers.
///
/// Given to [`AccessTokenVerifier::with_introspection`](super::AccessTokenVerifier::with_introspection);
/// see the [module docs](self).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use oidc_core::flow::ClientAuth;
/// use oidc_core::verify::Introspector;
/// use oidc_core::{AccessTokenVerifier, Provider};
///
/// let provider = Provider::builder("https://id.example.com").build()?;
/// let verifier = AccessTokenVerifier::new(provider, "https://api.example.com").with_introspection(
///     Introspector::new("orders-api", "s3cret")
///         .with_auth_method(ClientAuth::ClientSecretPost)
///         .with_cache(Duration::from_secs(30), Duration::from_secs(5), 1_000),
/// );
/// # Ok::<_, oidc_core::error::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Introspector {
    client_id: String,
    secret: Secret,
    auth: Option<ClientAuth>,
    endpoint: Option<String>,
    positive_ttl: Duration,
    negative_ttl: Duration,
    capacity: u64,
}

impl std::fmt::Debug for Introspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspector")
            .field("client_id", &self.client_id)
            .field("auth", &self.auth)
            .field("endpoint", &self.endpoint)
            .field("positive_ttl", &self.positive_ttl)
            .field("negative_ttl", &self.negative_ttl)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Introspector {
    /// Introspects as the client `client_id` with `secret` (the resource server's own
    /// client at the provider).
    ///
    /// Defaults: the endpoint and client authentication from discovery, accepted tokens kept
    /// at most 60 s, refused ones 10 s, at most 10 000 tokens.
    pub fn new(client_id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            secret: Secret::new(secret),
            auth: None,
            endpoint: None,
            positive_ttl: DEFAULT_POSITIVE_TTL,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            capacity: DEFAULT_CAPACITY,
        }
    }

    /// Uses `url` instead of the provider's `introspection_endpoint`. It must pass the
    /// provider's URL policy (https, or http when the provider allows it).
    #[must_use]
    pub fn with_endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Sets the client authentication method. The default is picked from discovery (see the
    /// [module docs](self#the-request)); [`ClientAuth::None`] makes every introspection fail.
    #[must_use]
    pub fn with_auth_method(mut self, auth: ClientAuth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Sizes the cache: accepted tokens kept until their `exp`, at most `positive`; refused
    /// tokens kept `negative`; at most `capacity` tokens. `0` capacity turns it off.
    ///
    /// # Security
    ///
    /// A token revoked at the provider is still accepted for up to `positive`.
    #[must_use]
    pub fn with_cache(mut self, positive: Duration, negative: Duration, capacity: u64) -> Self {
        self.positive_ttl = positive;
        self.negative_ttl = negative;
        self.capacity = capacity;
        self
    }
}

/// What the endpoint said about one token, as kept.
enum Outcome {
    Active {
        identity: Identity,
        payload: Arc<Map<String, Value>>,
    },
    Refused(VerifyError),
}

struct Entry {
    token: TokenBytes,
    outcome: Outcome,
    /// Until when (verifier clock, Unix seconds, exclusive) the entry answers.
    until: i64,
    /// The monotonic upper bound of its life.
    ttl: Duration,
}

impl Lifetime for Entry {
    fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// An introspector with its cache, part of one verifier configuration.
pub(crate) struct Slot {
    introspector: Introspector,
    keyer: Keyer,
    cache: Option<moka::future::Cache<u64, Arc<Entry>>>,
}

impl Slot {
    pub(crate) fn new(introspector: Introspector) -> Self {
        let cache = (introspector.capacity > 0).then(|| {
            moka::future::Cache::builder()
                .max_capacity(introspector.capacity)
                .expire_after(EntryExpiry)
                .build()
        });
        Self {
            introspector,
            keyer: Keyer::default(),
            cache,
        }
    }

    /// The same introspector with an empty cache, for a changed configuration.
    pub(crate) fn fresh(&self) -> Self {
        Self::new(self.introspector.clone())
    }

    pub(crate) fn introspector(&self) -> &Introspector {
        &self.introspector
    }
}

/// Whether `token` is to be verified as a JWT (three base64url segments), not introspected.
pub(crate) fn is_jws(token: &str) -> bool {
    super::token::split(token).is_ok()
}

impl Config {
    /// [`AccessTokenVerifier::verify`](super::AccessTokenVerifier::verify) of a token that
    /// is not a JWS, by introspection through `slot`.
    pub(crate) async fn introspect<C>(
        &self,
        slot: &Slot,
        token: &str,
    ) -> Result<crate::Claims<C>, VerifyError>
    where
        C: serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        if token.len() > self.max_token_size {
            return Err(VerifyError::TooLarge {
                limit: self.max_token_size,
            });
        }
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(VerifyError::Malformed);
        }
        let Some(cache) = &slot.cache else {
            return answer(&self.fetch(slot, token).await?.outcome);
        };
        let key = slot.keyer.key(token);
        if let Some(entry) = cache.get(&key).await {
            if !entry.token.is(token) {
                // A collision of the lookup hash: answered, not cached.
                return answer(&self.fetch(slot, token).await?.outcome);
            }
            if self.now() < entry.until {
                return answer(&entry.outcome);
            }
            cache.invalidate(&key).await;
        }
        // Single-flight: concurrent callers with this token wait for one request. Endpoint
        // failures are errors here, which moka does not cache.
        let entry = cache
            .try_get_with(key, async { self.fetch(slot, token).await.map(Arc::new) })
            .await
            .map_err(|e| (*e).clone())?;
        if !entry.token.is(token) {
            return answer(&self.fetch(slot, token).await?.outcome);
        }
        // Just fetched (by this call or the one it waited for): answered even if its cache
        // life is zero.
        answer(&entry.outcome)
    }

    /// One introspection request, and the checks of its answer; `Err` only when the endpoint
    /// gave no usable answer.
    async fn fetch(&self, slot: &Slot, token: &str) -> Result<Entry, VerifyError> {
        let body = self.request(&slot.introspector, token).await?;
        let claims = parse(&body)?;
        let now = self.now();
        let i = &slot.introspector;
        let (outcome, until, ttl) = match self.check_introspected(claims, now) {
            Ok((identity, payload)) => {
                let exp = identity.expires_at();
                let positive = i64::try_from(i.positive_ttl.as_secs()).unwrap_or(i64::MAX);
                let until = exp.min(now.saturating_add(positive));
                let left = u64::try_from(until.saturating_sub(now)).unwrap_or(0);
                (
                    Outcome::Active {
                        identity,
                        payload: Arc::new(payload),
                    },
                    until,
                    Duration::from_secs(left).min(i.positive_ttl),
                )
            }
            Err(error) => {
                let negative = i64::try_from(i.negative_ttl.as_secs()).unwrap_or(i64::MAX);
                (
                    Outcome::Refused(error),
                    now.saturating_add(negative),
                    i.negative_ttl,
                )
            }
        };
        Ok(Entry {
            token: TokenBytes::new(token),
            outcome,
            until,
            ttl,
        })
    }

    /// The body of the endpoint's 200 answer for `token`.
    async fn request(&self, i: &Introspector, token: &str) -> Result<Vec<u8>, VerifyError> {
        use VerifyError::IntrospectionUnavailable as Unavailable;
        let metadata = self
            .provider
            .metadata()
            .await
            .map_err(|_| Unavailable("the provider's metadata could not be loaded"))?;
        let url = i
            .endpoint
            .as_deref()
            .or(metadata.introspection_endpoint())
            .ok_or(Unavailable(
                "the provider publishes no introspection endpoint",
            ))?;
        checked_url(url, self.provider.allows_http())
            .map_err(|_| Unavailable("the introspection endpoint url is not allowed"))?;
        let auth = match i.auth {
            Some(auth) => auth,
            None => negotiate(
                metadata
                    .introspection_endpoint_auth_methods_supported()
                    .or(metadata.token_endpoint_auth_methods_supported()),
            )
            .map_err(|_| Unavailable("no supported client authentication method"))?,
        };
        if auth == ClientAuth::None {
            return Err(Unavailable("introspection needs client authentication"));
        }
        let client = token_client(
            &self.provider,
            &i.client_id,
            Some(&i.secret),
            auth,
            &metadata,
        )
        .map_err(|_| Unavailable("the token endpoint is missing or not allowed"))?
        .set_introspection_url(
            IntrospectionUrl::new(url.to_owned())
                .map_err(|_| Unavailable("the introspection endpoint url is invalid"))?,
        );
        // openidconnect builds the request (client authentication as for every grant); its
        // parse of the answer is not used: the raw answer is kept and checked here.
        let captured: Arc<Mutex<Option<HttpResponse>>> = Arc::default();
        let http = provider_http_with(&self.provider, Arc::clone(&captured));
        let access = AccessToken::new(token.to_owned());
        let result = client
            .introspect(&access)
            .set_token_type_hint("access_token")
            .request_async(&http)
            .await;
        if let Err(RequestTokenError::Request(_)) = result {
            return Err(Unavailable("the introspection request failed"));
        }
        let response = captured
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or(Unavailable("the introspection request failed"))?;
        if response.status() != http::StatusCode::OK {
            tracing::warn!(
                status = response.status().as_u16(),
                "introspection endpoint refused"
            );
            return Err(Unavailable("the introspection endpoint did not answer 200"));
        }
        let body = response.into_body();
        if body.len() > MAX_BODY {
            return Err(Unavailable("the introspection answer is too large"));
        }
        Ok(body)
    }

    /// The checks of the [module docs](self#what-is-checked) on an answer.
    fn check_introspected(
        &self,
        mut claims: Map<String, Value>,
        now: i64,
    ) -> Result<(Identity, Map<String, Value>), VerifyError> {
        if claims.get("active") != Some(&Value::Bool(true)) {
            return Err(VerifyError::Inactive);
        }
        if claims.contains_key("iss") {
            jws::check_issuer(&claims, self.provider.issuer())?;
        } else {
            claims.insert(
                "iss".to_owned(),
                Value::String(self.provider.issuer().to_owned()),
            );
        }
        let audience = jws::audiences(&claims)?;
        if !audience
            .iter()
            .any(|a| !a.is_empty() && self.audiences.iter().any(|want| want == a))
        {
            return Err(VerifyError::InvalidAudience);
        }
        let exp = jws::time(&claims, "exp")?.ok_or(VerifyError::MissingClaim("exp"))?;
        if exp <= now {
            return Err(VerifyError::Expired);
        }
        jws::check_times(&claims, now, self.leeway, false)?;
        match claims.get("token_type") {
            None => {}
            Some(Value::String(t))
                if t.eq_ignore_ascii_case("bearer") || t.eq_ignore_ascii_case("access_token") => {}
            Some(_) => return Err(VerifyError::NotAnAccessToken),
        }
        if claims.contains_key("cnf") {
            return Err(VerifyError::SenderConstrained);
        }
        if !claims.contains_key("sub")
            && let Some(client_id) = claims.get("client_id").cloned()
        {
            claims.insert("sub".to_owned(), client_id);
        }
        jws::check_subject(&claims)?;
        let identity = Identity::from_verified(&claims, audience, exp, &self.roles);
        Ok((identity, claims))
    }
}

/// The claims of a cached or fresh outcome.
fn answer<C>(outcome: &Outcome) -> Result<crate::Claims<C>, VerifyError>
where
    C: serde::de::DeserializeOwned + Send + Sync + 'static,
{
    match outcome {
        Outcome::Refused(error) => Err(error.clone()),
        Outcome::Active { identity, payload } => {
            let shared: Arc<dyn std::any::Any + Send + Sync> = payload.clone();
            if let Ok(same) = shared.downcast::<C>() {
                return Ok(crate::Claims::shared(identity.clone(), same));
            }
            Ok(crate::Claims::new(
                identity.clone(),
                super::cache::decode(payload)?,
            ))
        }
    }
}

/// The answer as a JSON object, refusing duplicate members (`{"active":false,"active":true}`).
fn parse(body: &[u8]) -> Result<Map<String, Value>, VerifyError> {
    struct Unique;
    impl<'de> Visitor<'de> for Unique {
        type Value = Map<String, Value>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object without duplicate members")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
            let mut map = Map::new();
            while let Some((name, value)) = access.next_entry::<String, Value>()? {
                if map.insert(name, value).is_some() {
                    return Err(serde::de::Error::custom("duplicate member"));
                }
            }
            Ok(map)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let map = de
        .deserialize_map(Unique)
        .and_then(|map| de.end().map(|()| map))
        .map_err(|_| {
            VerifyError::IntrospectionUnavailable("the introspection answer is not a JSON object")
        })?;
    Ok(map)
}

#[cfg(test)]
#[path = "introspection_tests.rs"]
mod tests;
