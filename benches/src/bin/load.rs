//! HTTP load on loopback: a plain axum route against the same route behind our bearer layer
//! (one repeated token; a pool of unique tokens), jwt-authorizer, a hand-written jsonwebtoken
//! layer, and our login layer's session mode (memory store, and Redis: a `redis-server` on a
//! free loopback port, started by the run); then a storm of unknown `kid`s.
//!
//! `cargo run --release -p benches --bin load [-- SECONDS [POOL]]`: starts itself as the
//! server (`load serve`, pinned to core 0 with `taskset` when there is one), runs `wrk` (pinned
//! to core 1) for SECONDS (default 10) per scenario, prints a Markdown table and stops the
//! server. Loopback only; every run is bounded in time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::exit)]

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use benches::{AUDIENCE, jwk, jwt_key, jwt_validation};
use http::StatusCode;
use oidc_core::AccessTokenVerifier;
use oidc_testing::{SigningAlg, TestProvider};
use oidc_tower::bearer::BearerAuthLayer;
use tokio::net::TcpListener;
use tower::ServiceBuilder;

/// The scenarios, in the order they run, each on its own listener.
const SCENARIOS: [&str; 10] = [
    "plain",
    "plain_no_header",
    "bearer_repeated",
    "bearer_unique_uncached",
    "bearer_unique_cached",
    "jsonwebtoken_unique",
    "jwt_authorizer_unique",
    "tower_sessions_alone",
    "session_memory",
    "session_redis",
];

async fn ok() -> &'static str {
    "ok"
}

fn route() -> Router {
    Router::new().route("/", get(ok))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve") => serve(Path::new(&args[2]), args[3].parse().unwrap()),
        Some("storm") => storm(),
        _ => {
            let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
            let pool: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
            drive(secs, pool);
            storm();
        }
    }
}

fn has(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn pinned(core: &str, program: &str) -> Command {
    if has("taskset") {
        let mut c = Command::new("taskset");
        c.args(["-c", core, program]);
        c
    } else {
        Command::new(program)
    }
}

/// Runs the server process and `wrk` against each scenario; prints the table.
fn drive(secs: u64, pool: usize) {
    assert!(has("wrk"), "wrk is needed (Debian package `wrk`)");
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench-load"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let me = std::env::current_exe().unwrap();
    let mut server = pinned("0", me.to_str().unwrap())
        .args(["serve", dir.to_str().unwrap(), &pool.to_string()])
        .spawn()
        .unwrap();
    let ready = dir.join("ready");
    let started = std::time::Instant::now();
    while !ready.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "server not ready"
        );
        if let Ok(Some(status)) = server.try_wait() {
            panic!("server exited: {status}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let ports: BTreeMap<String, u16> =
        serde_json::from_slice(&std::fs::read(&ready).unwrap()).unwrap();
    let token = std::fs::read_to_string(dir.join("token.txt")).unwrap();
    let cookie = std::fs::read_to_string(dir.join("cookie.txt")).unwrap();
    let lua = dir.join("pool.lua");
    std::fs::write(
        &lua,
        format!(
            r#"local tokens = {{}}
for line in io.lines("{}") do tokens[#tokens + 1] = "Bearer " .. line end
local i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", "/", {{["Authorization"] = tokens[i]}})
end
"#,
            dir.join("pool.txt").display()
        ),
    )
    .unwrap();
    let mut rows = Vec::new();
    for name in SCENARIOS {
        let port = ports[name];
        let url = format!("http://127.0.0.1:{port}/");
        let mut wrk = pinned("1", "wrk");
        wrk.args(["-t1", "-c32", &format!("-d{secs}s"), "--latency"]);
        match name {
            "plain_no_header" => {}
            // The baseline gets the same request as the bearer scenarios (an ignored header).
            "plain" | "bearer_repeated" => {
                wrk.args(["-H", &format!("Authorization: Bearer {}", token.trim())]);
            }
            "session_memory" => {
                wrk.args(["-H", &format!("Cookie: {}", cookie.trim())]);
            }
            "tower_sessions_alone" => {
                let cookie = std::fs::read_to_string(dir.join("cookie-ts.txt")).unwrap();
                wrk.args(["-H", &format!("Cookie: {}", cookie.trim())]);
            }
            "session_redis" => {
                let cookie = std::fs::read_to_string(dir.join("cookie-redis.txt")).unwrap();
                wrk.args(["-H", &format!("Cookie: {}", cookie.trim())]);
            }
            _ => {
                wrk.args(["-s", lua.to_str().unwrap()]);
            }
        }
        wrk.arg(&url);
        let out = wrk.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let parsed = parse_wrk(&text);
        assert!(
            parsed.non_2xx == 0 && parsed.requests > 0.0,
            "{name}: not all 2xx\n{text}"
        );
        eprintln!("{name}: {:.0} req/s", parsed.requests);
        rows.push((name, parsed));
    }
    let _ = server.kill();
    let _ = server.wait();

    let plain = rows[0].1.clone();
    let mut table = String::from(
        "| scenario | req/s | × plain | p50 | × plain | p99 | × plain |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (name, r) in &rows {
        table.push_str(&format!(
            "| {name} | {:.0} | {:.2} | {:.0} µs | {:.2} | {:.0} µs | {:.2} |\n",
            r.requests,
            r.requests / plain.requests,
            r.p50_us,
            r.p50_us / plain.p50_us,
            r.p99_us,
            r.p99_us / plain.p99_us,
        ));
    }
    println!(
        "\nwrk -t1 -c32 -d{secs}s on loopback, server on core 0, wrk on core 1; unique pool: {pool} tokens\n\n{table}"
    );
    let find = |n: &str| {
        rows.iter()
            .find(|(name, _)| *name == n)
            .map(|(_, r)| r.requests)
    };
    if let (Some(ours), Some(peer)) = (
        find("bearer_unique_uncached"),
        find("jwt_authorizer_unique"),
    ) {
        println!(
            "bearer_unique_uncached / jwt_authorizer_unique: {:.2}",
            ours / peer
        );
    }
    if let (Some(ours), Some(peer)) = (find("bearer_unique_uncached"), find("jsonwebtoken_unique"))
    {
        println!(
            "bearer_unique_uncached / jsonwebtoken_unique: {:.2}",
            ours / peer
        );
    }
}

#[derive(Debug, Clone, Default)]
struct Wrk {
    requests: f64,
    p50_us: f64,
    p99_us: f64,
    non_2xx: u64,
}

fn micros(s: &str) -> f64 {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let n: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n,
        "ms" => n * 1e3,
        "s" => n * 1e6,
        _ => f64::NAN,
    }
}

fn parse_wrk(text: &str) -> Wrk {
    let mut w = Wrk::default();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", n, ..] => w.requests = n.parse().unwrap_or(0.0),
            ["50%", v] => w.p50_us = micros(v),
            ["99%", v] => w.p99_us = micros(v),
            ["Non-2xx", "or", "3xx", "responses:", n] => w.non_2xx = n.parse().unwrap_or(1),
            _ => {}
        }
    }
    w
}

async fn listen(app: Router) -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

/// A hand-written bearer layer on jsonwebtoken (aws-lc-rs): keys by `kid`, built once.
async fn jsonwebtoken_layer(
    keys: Arc<(
        HashMap<String, jsonwebtoken::DecodingKey>,
        jsonwebtoken::Validation,
    )>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(token) = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let Ok(header) = jsonwebtoken::decode_header(token) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let Some(key) = header.kid.as_deref().and_then(|kid| keys.0.get(kid)) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, key, &keys.1) {
        Ok(data) => {
            req.extensions_mut().insert(data.claims);
            next.run(req).await
        }
        Err(_) => StatusCode::UNAUTHORIZED.into_response(),
    }
}

/// jwt-authorizer's layer wants a response type it can build from its own error: a newtype
/// carries axum 0.8's response through it.
struct PeerResponse(Response);

impl From<jwt_authorizer::AuthError> for PeerResponse {
    fn from(_: jwt_authorizer::AuthError) -> Self {
        Self(StatusCode::UNAUTHORIZED.into_response())
    }
}

fn serve(dir: &Path, pool: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tp = TestProvider::start().await;
        let mut ports = BTreeMap::new();
        let plain = listen(route()).await;
        ports.insert("plain", plain);
        ports.insert("plain_no_header", plain);

        let verifier = benches::verifier(&tp).await;
        let bearer = |v: AccessTokenVerifier| route().layer(BearerAuthLayer::new(v));
        ports.insert("bearer_repeated", listen(bearer(verifier.clone())).await);
        ports.insert(
            "bearer_unique_uncached",
            listen(bearer(verifier.clone().without_token_cache())).await,
        );
        ports.insert(
            "bearer_unique_cached",
            listen(bearer(verifier.clone())).await,
        );

        let jwk = jwk(&tp, SigningAlg::RS256);
        let keys = Arc::new((
            HashMap::from([(tp.kid(SigningAlg::RS256), jwt_key(&jwk))]),
            jwt_validation(&tp.issuer(), SigningAlg::RS256),
        ));
        ports.insert(
            "jsonwebtoken_unique",
            listen(route().layer(middleware::from_fn(move |req, next| {
                jsonwebtoken_layer(keys.clone(), req, next)
            })))
            .await,
        );

        let validation = jwt_authorizer::Validation::new()
            .iss(&[tp.issuer().as_str()])
            .aud(&[AUDIENCE]);
        let peer =
            jwt_authorizer::JwtAuthorizer::<serde_json::Value>::from_jwks_url(&tp.jwks_uri())
                .validation(validation)
                .build()
                .await
                .unwrap();
        let peer_layer = jwt_authorizer::IntoLayer::into_layer(vec![peer]);
        let peer_service = ServiceBuilder::new()
            .map_response(|r: PeerResponse| r.0)
            .layer(peer_layer)
            .map_response(PeerResponse)
            .service(route());
        ports.insert(
            "jwt_authorizer_unique",
            listen(Router::new().fallback_service(peer_service)).await,
        );

        // The floor of any tower-sessions based login: its session manager on its memory
        // store and a stored session's cookie, the handler asking only for the session id
        // (as the login layer does on a cached login).
        let ts_port = listen(
            Router::new()
                .route(
                    "/",
                    get(|s: tower_sessions::Session| async move {
                        std::hint::black_box(s.id());
                        "ok"
                    }),
                )
                .route(
                    "/set",
                    get(|s: tower_sessions::Session| async move {
                        s.insert("k", 1).await.unwrap();
                        "ok"
                    }),
                )
                .layer(tower_sessions::SessionManagerLayer::new(
                    tower_sessions::MemoryStore::default(),
                )),
        )
        .await;
        ports.insert("tower_sessions_alone", ts_port);
        let set = reqwest::get(format!("http://127.0.0.1:{ts_port}/set"))
            .await
            .unwrap();
        let ts_cookie = set.headers()["set-cookie"].to_str().unwrap();
        std::fs::write(
            dir.join("cookie-ts.txt"),
            ts_cookie.split(';').next().unwrap(),
        )
        .unwrap();

        let session_port = benches::session_app(&tp, |l| l, route()).await;
        ports.insert("session_memory", session_port);
        let cookie = benches::login(session_port).await;
        let redis = oidc_e2e::servers::RedisServer::start().await;
        let redis_port = {
            let store = benches::redis_store(&redis.url()).await;
            benches::session_app(&tp, |l| l.with_shared_store(store), route())
        }
        .await;
        ports.insert("session_redis", redis_port);
        std::fs::write(
            dir.join("cookie-redis.txt"),
            benches::login(redis_port).await,
        )
        .unwrap();

        // Tokens: one repeated, and a pool of unique ones (all RS256).
        let token = tp.token().sign();
        std::fs::write(dir.join("token.txt"), &token).unwrap();
        let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("pool.txt")).unwrap());
        for i in 0..pool {
            writeln!(out, "{}", tp.token().claim("n", i).expires_in(3600).sign()).unwrap();
        }
        out.flush().unwrap();
        drop(out);
        std::fs::write(dir.join("cookie.txt"), cookie).unwrap();
        std::fs::write(dir.join("ready"), serde_json::to_vec(&ports).unwrap()).unwrap();
        // Until the driver stops this process.
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
}

/// 1 000 concurrent requests, each with another unknown `kid`, through the bearer layer:
/// how many JWKS fetches they caused.
fn storm() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tp = TestProvider::start().await;
        let verifier = benches::verifier(&tp).await;
        let port = listen(route().layer(BearerAuthLayer::new(verifier))).await;
        let before = tp.jwks_fetch_count();
        let tokens: Vec<String> = (0..1000)
            .map(|i| tp.token().header("kid", format!("unknown-{i}")).sign())
            .collect();
        let http = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}/");
        let tasks: Vec<_> = tokens
            .into_iter()
            .map(|t| {
                let req = http.get(&url).bearer_auth(t);
                tokio::spawn(async move { req.send().await.map(|r| r.status().as_u16()) })
            })
            .collect();
        let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
        for t in tasks {
            if let Ok(Ok(s)) = t.await {
                *statuses.entry(s).or_default() += 1;
            }
        }
        println!(
            "kid storm: 1000 concurrent requests with unknown kids -> {} JWKS fetch(es) (cooldown 30 s); statuses {statuses:?}",
            tp.jwks_fetch_count() - before
        );
    });
}
