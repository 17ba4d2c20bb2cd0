//! The single-flight token cache shared by the client credentials grant
//! ([`ServiceClient`](super::ServiceClient)) and token exchange
//! ([`TokenExchanger`](super::TokenExchanger)): one moka entry per key, computed by one caller
//! at a time, holding either a token or a failure remembered for a cooldown.

use std::future::Future;
use std::hash::Hash;
use std::time::Duration;

use moka::future::Cache;
use moka::ops::compute::{CompResult, Op};
use tokio::time::Instant;

use crate::error::FlowError;

/// A cache entry: a token, or a failure remembered until `until`.
#[derive(Debug, Clone)]
pub(crate) enum Slot<T> {
    Token(T),
    Failed { error: FlowError, until: Instant },
}

/// The cached result of `slot` when it may still be used: a token that `usable` accepts, or a
/// failure still in its cooldown.
pub(crate) fn reuse<T: Clone>(
    slot: &Slot<T>,
    usable: impl Fn(&T) -> bool,
) -> Option<Result<T, FlowError>> {
    match slot {
        Slot::Token(token) if usable(token) => Some(Ok(token.clone())),
        Slot::Token(_) => None,
        Slot::Failed { error, until } if Instant::now() < *until => Some(Err(error.clone())),
        Slot::Failed { .. } => None,
    }
}

/// The token of `key`: the cached one when `usable` accepts it, else the result of `fetch`,
/// which runs at most once at a time per key (callers arriving meanwhile wait and then find
/// its result). A failure of `fetch` is stored for `cooldown`; a failure is never stored as a
/// token.
pub(crate) async fn obtain<K, T, F, Fut>(
    cache: &Cache<K, Slot<T>>,
    key: &K,
    usable: impl Fn(&T) -> bool,
    cooldown: Duration,
    fetch: F,
) -> Result<T, FlowError>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, FlowError>>,
{
    if let Some(result) = cache.get(key).await.and_then(|slot| reuse(&slot, &usable)) {
        return result;
    }
    // Calls on one key run one after the other: the first sends the request, the others
    // find its result.
    let mut reused = None;
    let outcome = cache
        .entry_by_ref(key)
        .and_compute_with(|current| {
            reused = current.and_then(|entry| reuse(entry.value(), &usable));
            let fetch = reused.is_none().then_some(fetch);
            async move {
                let Some(fetch) = fetch else {
                    return Op::Nop;
                };
                match fetch().await {
                    Ok(token) => Op::Put(Slot::Token(token)),
                    Err(error) => Op::Put(Slot::Failed {
                        error,
                        until: Instant::now() + cooldown,
                    }),
                }
            }
        })
        .await;
    if let Some(result) = reused {
        return result;
    }
    match outcome {
        CompResult::Inserted(entry) | CompResult::ReplacedWith(entry) => match entry.into_value() {
            Slot::Token(token) => Ok(token),
            Slot::Failed { error, .. } => Err(error),
        },
        _ => Err(FlowError::InvalidResponse("no token was obtained")),
    }
}
