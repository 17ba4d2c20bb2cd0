//! Fetching the key set: one `GET` of the provider's `jwks_uri`, bounded in size, parsed into
//! usable keys. The cache ([`JwksCache`](super::JwksCache)) decides when a fetch may run
//! (single flight, cooldown, backoff); this file only does it.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{HttpError, JwksError};
use crate::http::HttpClient;

use super::key::{KeySet, parse_set};

/// A fetched key set and how long the provider asks to keep it.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) keys: KeySet,
    pub(crate) max_age: Option<Duration>,
}

/// The largest key set body accepted, whatever the HTTP client allows (DOS-04: 512 KiB).
/// 64 keys (the most read from a set) of RSA-8192 take well under 100 KiB.
pub(crate) const MAX_BODY: usize = 512 * 1024;

/// Fetches and parses the key set at `jwks_uri`.
///
/// Only a `200` is a key set: any other status (a redirect included, the default client
/// follows none) is [`JwksError::Status`]. A body over [`MAX_BODY`] is refused before it is
/// parsed, even from an HTTP client with a larger limit.
pub(crate) async fn fetch(http: &dyn HttpClient, jwks_uri: &str) -> Result<Fetched, JwksError> {
    let request = http::Request::get(jwks_uri)
        .header(
            http::header::ACCEPT,
            "application/jwk-set+json, application/json",
        )
        .body(Vec::new())
        .map_err(|e| JwksError::Http(HttpError::Other(Arc::new(e))))?;
    tracing::debug!(jwks_uri, "fetching jwks");
    let response = http.execute(request).await.map_err(JwksError::Http)?;
    if response.status() != http::StatusCode::OK {
        return Err(JwksError::Status(response.status().as_u16()));
    }
    if response.body().len() > MAX_BODY {
        return Err(JwksError::Http(HttpError::BodyTooLarge { limit: MAX_BODY }));
    }
    let max_age = max_age(response.headers().get(http::header::CACHE_CONTROL));
    let keys = parse_set(response.body())?;
    Ok(Fetched { keys, max_age })
}

/// Reads `max-age` from a `Cache-Control` value.
pub(crate) fn max_age(cache_control: Option<&http::HeaderValue>) -> Option<Duration> {
    let value = cache_control?.to_str().ok()?;
    value.split(',').find_map(|directive| {
        let (name, secs) = directive.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("max-age") {
            return None;
        }
        secs.trim()
            .trim_matches('"')
            .parse::<u64>()
            .ok()
            .map(Duration::from_secs)
    })
}
