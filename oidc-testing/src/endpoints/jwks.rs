//! The JWKS endpoint (`/jwks`), the key publication and rotation knobs,
//! and the JWKS failure knobs.
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::failure::{self, Failure};
use crate::keys::{SigningAlg, keyring};
use crate::provider::TestProvider;
use crate::state::{ProviderState, ServerState};

use super::reply::to_json_bytes;

/// Path of the JWKS.
pub(crate) const JWKS_PATH: &str = "/jwks";

pub(crate) async fn jwks(State(server): State<ServerState>) -> Response {
    let provider = server.provider;
    provider.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let (failure, cache_control) = {
        let config = provider.config();
        (
            config.jwks_failure.clone(),
            config.jwks_cache_control.clone(),
        )
    };
    let headers: Vec<(HeaderName, HeaderValue)> = cache_control
        .and_then(|value| HeaderValue::from_str(&value).ok())
        .map(|value| (header::CACHE_CONTROL, value))
        .into_iter()
        .collect();
    failure::respond(
        failure,
        server.shutdown,
        move || jwks_body(&provider),
        headers,
    )
    .await
}

fn public_jwks(provider: &ProviderState) -> Value {
    let config = provider.config();
    let by_kid = keyring().jwk_by_kid();
    let keys: Vec<Value> = config
        .published
        .iter()
        .filter_map(|kid| by_kid.get(kid).cloned())
        .chain(config.raw_jwks.iter().cloned())
        .collect();
    json!({ "keys": keys })
}

/// The JWKS response body: the override if set, else the JWKS.
fn jwks_body(provider: &ProviderState) -> Vec<u8> {
    if let Some(body) = &provider.config().jwks_override {
        return body.clone();
    }
    to_json_bytes(&public_jwks(provider))
}

impl TestProvider {
    /// The JWKS URL: [`issuer`](TestProvider::issuer) + `/jwks`.
    pub fn jwks_uri(&self) -> String {
        format!("{}{JWKS_PATH}", self.state().issuer)
    }

    /// Makes the next committed key of `alg`'s family the current signer for
    /// `alg` (RSA: `rsa1` → `rsa2` → `rsa3` → `rsa1`; EC and Ed25519 alternate
    /// between their two keys), publishes it if it is not published, and
    /// returns its kid. Previously published keys stay published; other
    /// algorithms keep their current key.
    ///
    /// Rotating more often than the family has keys comes back to a key
    /// used before, whose kid is then returned again.
    pub fn rotate_key(&self, alg: SigningAlg) -> String {
        let keyring = keyring();
        let mut config = self.state().config();
        let next = (config.current(alg) + 1) % keyring.count(alg).max(1);
        config.current.insert(alg, next);
        let kid = keyring.key(alg, next).kid(alg);
        if !config.published.contains(&kid) {
            config.published.push(kid.clone());
        }
        kid
    }

    /// Stops publishing the key with this kid: a committed key, or any raw
    /// JWK added with [`add_raw_jwk`](TestProvider::add_raw_jwk) whose `kid`
    /// member is this string. Tokens keep being signed with the current key
    /// even when it is no longer published.
    pub fn remove_key(&self, kid: &str) {
        let mut config = self.state().config();
        config.published.retain(|published| published != kid);
        config
            .raw_jwks
            .retain(|jwk| jwk.get("kid").and_then(Value::as_str) != Some(kid));
    }

    /// Publishes the key with this kid again (or for the first time: any
    /// committed key's kid works, such as `rsa3-PS512`), without making it
    /// current. Returns `false` when no committed key has this kid.
    pub fn publish_key(&self, kid: &str) -> bool {
        if keyring().find_kid(kid).is_none() {
            return false;
        }
        let mut config = self.state().config();
        if !config.published.iter().any(|published| published == kid) {
            config.published.push(kid.to_owned());
        }
        true
    }

    /// Appends an arbitrary JSON value to the JWKS `keys` array, as is (for
    /// unusable-key tests: `kty` `"AKP"`, an unknown `kty`, `use` `"enc"`,
    /// `kty` `"oct"`, an RSA key with a bad `n`, ...). Remove it with
    /// [`remove_key`](TestProvider::remove_key) (by its `kid`) or
    /// [`clear_raw_jwks`](TestProvider::clear_raw_jwks).
    pub fn add_raw_jwk(&self, jwk: Value) {
        self.state().config().raw_jwks.push(jwk);
    }

    /// Removes every JWK added with [`add_raw_jwk`](TestProvider::add_raw_jwk).
    pub fn clear_raw_jwks(&self) {
        self.state().config().raw_jwks.clear();
    }

    /// Replaces the whole JWKS response body with these raw bytes (`None`
    /// serves the normal JWKS again). The status stays 200 with
    /// `Content-Type: application/json` unless a [`Failure`] is set.
    pub fn set_jwks_override(&self, body: Option<Vec<u8>>) {
        self.state().config().jwks_override = body;
    }

    /// Sets how the JWKS endpoint misbehaves ([`Failure::None`] to restore).
    pub fn fail_jwks(&self, failure: Failure) {
        self.state().config().jwks_failure = failure;
    }

    /// Sets the `Cache-Control` header of JWKS responses (default
    /// `"public, max-age=300"`); `None` sends no `Cache-Control`. The header
    /// is sent on every JWKS response, including injected failures (except
    /// [`Failure::Hang`]). An invalid header value sends no header.
    pub fn set_jwks_cache_control(&self, value: Option<&str>) {
        self.state().config().jwks_cache_control = value.map(str::to_owned);
    }

    /// How many requests reached the JWKS endpoint, whatever their outcome.
    pub fn jwks_fetch_count(&self) -> usize {
        self.state().jwks_fetches.load(Ordering::SeqCst)
    }

    /// The kid of `alg`'s current signing key (even if it was removed from
    /// the JWKS).
    pub fn kid(&self, alg: SigningAlg) -> String {
        let index = self.state().current_index(alg);
        keyring().key(alg, index).kid(alg)
    }

    /// The SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`) of the
    /// current RS256 signing key, for example as the HMAC secret of
    /// [`TokenBuilder::sign_hs256`](crate::TokenBuilder::sign_hs256) in algorithm-confusion tests.
    pub fn rsa_public_key_pem(&self) -> Vec<u8> {
        let index = self.state().current_index(SigningAlg::RS256);
        keyring().key(SigningAlg::RS256, index).public_pem.to_vec()
    }

    /// The JWKS as currently published (`{"keys": [...]}`): the published
    /// committed keys in publication order, then the raw JWKs. Ignores
    /// [`set_jwks_override`](TestProvider::set_jwks_override) and failures.
    pub fn public_jwks(&self) -> Value {
        public_jwks(self.state())
    }

    /// The public JWK of the never-published foreign key of `alg`'s family
    /// (kid `<family>-foreign-<alg>`, such as `rsa-foreign-RS256`). Tokens
    /// from [`TokenBuilder::sign_with_foreign_key`](crate::TokenBuilder::sign_with_foreign_key) verify with it; use it
    /// for embedded-`jwk`-header attacks or a JWKS of a wrong issuer.
    pub fn foreign_public_jwk(&self, alg: SigningAlg) -> Value {
        keyring().foreign(alg.family()).public_jwk(alg)
    }
}
