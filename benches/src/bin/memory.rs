//! Bytes per cached token, measured with a counting global allocator: live heap after
//! verifying N distinct tokens with the token cache on, minus the same with it off. Then bytes
//! per login session (memory store): live heap after N logins through the login layer, minus
//! before, per session, and the same without the session's three tokens.
//!
//! `cargo run --release -p benches --bin memory [-- N]`

#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use oidc_core::{AccessTokenVerifier, AdditionalClaims};
use oidc_testing::TestProvider;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; it only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

async fn live_after(v: &AccessTokenVerifier, tokens: &[String]) -> isize {
    let before = LIVE.load(Ordering::SeqCst);
    for t in tokens {
        v.verify::<AdditionalClaims>(t).await.unwrap();
    }
    // Let moka apply its pending writes.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    for t in tokens.iter().take(1) {
        v.verify::<AdditionalClaims>(t).await.unwrap();
    }
    LIVE.load(Ordering::SeqCst) - before
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tp = TestProvider::start().await;
        let cached = benches::verifier(&tp).await;
        let uncached = cached.clone().without_token_cache();
        let tokens: Vec<String> = (0..n).map(|i| tp.token().claim("n", i).sign()).collect();
        let len = tokens.iter().map(String::len).sum::<usize>() / n;
        // Build the cache and warm everything once.
        let warm: Vec<String> = (0..10).map(|_| tp.token().sign()).collect();
        live_after(&cached, &warm).await;
        live_after(&uncached, &warm).await;
        let off = live_after(&uncached, &tokens).await;
        let on = live_after(&cached, &tokens).await;
        println!(
            "token cache: {} bytes per cached token (tokens of {len} bytes, 14 claims; {n} tokens; cache off: {} bytes in all)",
            (on - off) / n as isize,
            off
        );

        // Sessions: the store is read back to count the tokens each session holds.
        // The layer's view of its store: records by cookie id, in the app's namespace.
        let view = std::sync::Arc::new(std::sync::OnceLock::new());
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let port = {
            let view = view.clone();
            benches::session_app(
                &tp,
                move |l| {
                    let l = l.with_store(tower_sessions::MemoryStore::default());
                    let _ = view.set(l.store().clone());
                    l
                },
                app,
            )
            .await
        };
        let store = view.get().unwrap();
        let sessions = n / 4;
        benches::login(port).await;
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        let before = LIVE.load(Ordering::SeqCst);
        let mut cookies = Vec::with_capacity(sessions);
        for _ in 0..sessions {
            cookies.push(benches::login(port).await);
        }
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        let grown = LIVE.load(Ordering::SeqCst) - before;
        let mut token_bytes = 0;
        for cookie in &cookies {
            token_bytes += tokens_of(store, cookie).await;
        }
        let per = grown / sessions as isize;
        let tokens = token_bytes / sessions;
        println!(
            "login session (memory store, login cache, registry index): {per} bytes per session, {} besides its tokens ({tokens} bytes of tokens; {sessions} sessions)",
            per - tokens as isize,
        );
    });
}

/// The bytes of the three tokens (access, ID, refresh) stored in the session of `cookie`.
async fn tokens_of(store: &oidc_tower::login::store::LoginStore, cookie: &str) -> usize {
    use tower_sessions::SessionStore as _;
    let value = cookie
        .split("; ")
        .find_map(|c| c.strip_prefix("oidc-session="))
        .unwrap();
    let id: tower_sessions::session::Id = value.parse().unwrap();
    let record = store.load(&id).await.unwrap().unwrap();
    let tokens = &record.data["oidc.login"]["tokens"];
    ["access_token", "id_token", "refresh_token"]
        .iter()
        .filter_map(|name| tokens.get(*name).and_then(serde_json::Value::as_str))
        .map(str::len)
        .sum()
}
