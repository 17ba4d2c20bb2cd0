//! Harness of the proxy tests: an `oidc-testing` provider, echo upstreams on loopback, the
//! proxy in between, and clients that keep the session cookie by hand.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use oidc_proxy::config::{ProviderConfig, UpstreamConfig};
use oidc_proxy::{FileConfig, Proxy};
use oidc_testing::{ClientRegistration, TestProvider};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Notify;

/// The client registered at the provider.
pub const CLIENT_ID: &str = "auth-proxy";
/// Its secret.
pub const SECRET: &str = "proxy-secret";
/// The user the provider signs in.
pub const USER: &str = "user-1";
/// The proxy's session cookie (http: no `__Host-` prefix).
pub const COOKIE: &str = "oidc-proxy";
/// The audience of the provider's test access tokens.
pub const AUDIENCE: &str = "api://default";

/// A client that follows no redirects.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()
        .unwrap()
}

/// What an upstream does with the requests it sees.
#[derive(Debug, Default)]
pub struct UpstreamState {
    /// Notified when `/upload` got its first bytes.
    pub upload_started: Notify,
    /// `/stream` sends the rest of its body after this.
    pub release_stream: Notify,
    /// Requests seen.
    pub requests: AtomicU64,
}

/// An echo server on loopback.
pub struct Upstream {
    pub addr: SocketAddr,
    pub state: Arc<UpstreamState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    /// Starts an upstream that answers with `name` in its echo.
    pub async fn start(name: &'static str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(UpstreamState::default());
        let app = {
            let state = state.clone();
            axum::Router::new().fallback_service(tower::service_fn(move |req: Request<Body>| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(upstream(name, state, req).await) }
            }))
        };
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn headers_json(headers: &HeaderMap) -> Value {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        map.entry(name.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    json!(map)
}

async fn upstream(name: &str, state: Arc<UpstreamState>, mut req: Request<Body>) -> Response<Body> {
    state.requests.fetch_add(1, Ordering::Relaxed);
    let path = req.uri().path().to_owned();
    if path.ends_with("/ws") {
        return websocket_echo(&mut req);
    }
    if path.ends_with("/hang") {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    if path.ends_with("/switch") {
        // Switches protocols although nobody asked.
        return Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::UPGRADE, "websocket")
            .header(header::CONNECTION, "Upgrade")
            .body(Body::empty())
            .unwrap();
    }
    if path.ends_with("/set-cookie") {
        // Tries to plant the proxy's session cookie (session fixation), next to its own.
        let mut res = Response::new(Body::from("cookies set\n"));
        for cookie in [
            format!("{COOKIE}=planted; Path=/; HttpOnly"),
            format!("__Host-{COOKIE}=planted; Path=/; Secure"),
            format!("__secure-{COOKIE}=planted; Secure"),
            format!("={COOKIE}=planted"),
            "theme=dark; Path=/".to_owned(),
        ] {
            res.headers_mut()
                .append(header::SET_COOKIE, cookie.parse().unwrap());
        }
        return res;
    }
    if path.ends_with("/upload") {
        let mut body = req.into_body();
        let mut bytes = 0u64;
        let mut sum = 0u64;
        let mut first = true;
        while let Some(frame) = body.frame().await {
            let frame = frame.unwrap();
            if let Some(data) = frame.data_ref() {
                bytes += data.len() as u64;
                sum = data.iter().fold(sum, |s, b| s.wrapping_add(u64::from(*b)));
                if first && !data.is_empty() {
                    first = false;
                    state.upload_started.notify_one();
                }
            }
        }
        return Response::new(Body::from(json!({"bytes": bytes, "sum": sum}).to_string()));
    }
    if path.ends_with("/stream") {
        let gate: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
            state.release_stream.notified().await;
        });
        return Response::new(Body::new(TestBody::new(
            Bytes::from_static(b"first chunk\n"),
            5 * 1024 * 1024,
            Some(gate),
        )));
    }
    let echo = json!({
        "upstream": name,
        "method": req.method().as_str(),
        "path": path,
        "query": req.uri().query(),
        "headers": headers_json(req.headers()),
    });
    let mut res = Response::new(Body::from(echo.to_string()));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    // A hop-by-hop header the proxy must not pass on.
    res.headers_mut()
        .insert("keep-alive", http::HeaderValue::from_static("timeout=5"));
    res
}

/// `Sec-WebSocket-Accept` for `key` (RFC 6455 §4.2.2).
pub fn websocket_accept(key: &str) -> String {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

fn websocket_echo(req: &mut Request<Body>) -> Response<Body> {
    let Some(key) = req
        .headers()
        .get("sec-websocket-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(Body::empty())
            .unwrap();
    };
    let forwarded_user = req.headers().get("x-forwarded-user").cloned();
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut io = TokioIo::new(upgraded);
        // Greets with the user it was told about, then echoes until a close frame.
        let greeting = forwarded_user
            .map(|u| format!("user={}", u.to_str().unwrap_or_default()))
            .unwrap_or_default();
        write_frame(&mut io, 0x1, greeting.as_bytes(), None).await;
        while let Some((opcode, payload)) = read_frame(&mut io).await {
            if opcode == 0x8 {
                write_frame(&mut io, 0x8, &payload, None).await;
                break;
            }
            write_frame(&mut io, opcode, &payload, None).await;
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header("sec-websocket-accept", websocket_accept(&key))
        .body(Body::empty())
        .unwrap()
}

/// Reads one websocket frame: (opcode, unmasked payload); `None` at end of stream.
pub async fn read_frame<S: tokio::io::AsyncRead + Unpin>(io: &mut S) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    io.read_exact(&mut head).await.ok()?;
    let opcode = head[0] & 0x0f;
    let masked = head[1] & 0x80 != 0;
    let mut len = u64::from(head[1] & 0x7f);
    if len == 126 {
        let mut ext = [0u8; 2];
        io.read_exact(&mut ext).await.ok()?;
        len = u64::from(u16::from_be_bytes(ext));
    } else if len == 127 {
        let mut ext = [0u8; 8];
        io.read_exact(&mut ext).await.ok()?;
        len = u64::from_be_bytes(ext);
    }
    let mut mask = [0u8; 4];
    if masked {
        io.read_exact(&mut mask).await.ok()?;
    }
    let mut payload = vec![0u8; usize::try_from(len).unwrap()];
    io.read_exact(&mut payload).await.ok()?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Some((opcode, payload))
}

/// Writes one final websocket frame, masked with `mask` (clients must mask).
pub async fn write_frame<S: tokio::io::AsyncWrite + Unpin>(
    io: &mut S,
    opcode: u8,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    let mut frame = vec![0x80 | opcode];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    if payload.len() < 126 {
        frame.push(mask_bit | u8::try_from(payload.len()).unwrap());
    } else {
        frame.push(mask_bit | 126);
        frame.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
    }
    match mask {
        Some(mask) => {
            frame.extend_from_slice(&mask);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        None => frame.extend_from_slice(payload),
    }
    let _ = io.write_all(&frame).await;
    let _ = io.flush().await;
}

/// A generated body: `first`, then (after `gate`, if any) `total` bytes of a repeating
/// pattern in 64 KiB chunks. Never held in memory whole.
pub struct TestBody {
    first: Option<Bytes>,
    gate: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    remaining: usize,
    chunk: Bytes,
}

impl TestBody {
    pub fn new(
        first: Bytes,
        total: usize,
        gate: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    ) -> Self {
        let chunk: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
        Self {
            first: Some(first),
            gate,
            remaining: total,
            chunk: Bytes::from(chunk),
        }
    }

    /// The byte count and byte sum of the body, as the upstream's `/upload` reports them.
    pub fn expected(first: &[u8], total: usize) -> (u64, u64) {
        let mut sum = first
            .iter()
            .fold(0u64, |s, b| s.wrapping_add(u64::from(*b)));
        let chunk: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
        let mut left = total;
        while left > 0 {
            let n = left.min(chunk.len());
            sum = chunk[..n]
                .iter()
                .fold(sum, |s, b| s.wrapping_add(u64::from(*b)));
            left -= n;
        }
        ((first.len() + total) as u64, sum)
    }
}

impl http_body::Body for TestBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        if let Some(gate) = self.gate.as_mut() {
            match gate.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => self.gate = None,
            }
        }
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(self.chunk.len());
        self.remaining -= n;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }
}

/// A hyper client for streaming tests.
pub fn hyper_client() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// The proxy, its provider and its upstreams.
pub struct World {
    pub op: TestProvider,
    /// The providers after the first, for tests with several.
    pub more_ops: Vec<TestProvider>,
    pub url: String,
    pub addr: SocketAddr,
    pub proxy: Proxy,
    pub upstreams: Vec<Upstream>,
    pub http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for World {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The base configuration of the tests: upstream A at `/`, upstream B at `/b/` (prefix
/// stripped), skip-auth `/public/` and `GET=/health`, API `/api/`, bearer `/api/` and
/// `/bearer/`.
pub fn base_config(op: &TestProvider, a: &Upstream, b: &Upstream) -> FileConfig {
    let mut config = FileConfig::from_toml(
        r#"
        [routes]
        skip_auth = ["/public/", "GET=/health"]
        api = ["/api/"]
        bearer = ["/api/", "/bearer/"]
        "#,
    )
    .unwrap();
    config.providers.push(ProviderConfig {
        issuer: Some(op.issuer()),
        client_id: Some(CLIENT_ID.to_owned()),
        client_secret: Some(oidc_proxy::config::SecretString::new(SECRET)),
        audience: Some(AUDIENCE.to_owned()),
        ..ProviderConfig::default()
    });
    config.upstreams.push(UpstreamConfig {
        name: Some("a".to_owned()),
        prefix: Some("/".to_owned()),
        url: Some(a.url()),
        ..UpstreamConfig::default()
    });
    config.upstreams.push(UpstreamConfig {
        name: Some("b".to_owned()),
        prefix: Some("/b/".to_owned()),
        url: Some(b.url()),
        strip_prefix: Some(true),
    });
    config
}

impl World {
    /// Starts everything with the base configuration edited by `edit`.
    pub async fn start(edit: impl FnOnce(&mut FileConfig)) -> Self {
        let op = TestProvider::start().await;
        op.set_auto_login(Some(USER));
        let a = Upstream::start("a").await;
        let b = Upstream::start("b").await;
        let mut config = base_config(&op, &a, &b);
        edit(&mut config);
        Self::start_with(op, config, vec![a, b]).await
    }

    pub async fn start_with(
        op: TestProvider,
        config: FileConfig,
        upstreams: Vec<Upstream>,
    ) -> Self {
        Self::start_with_providers(vec![op], config, upstreams).await
    }

    /// Starts the proxy with `config`, whose `[[provider]]`s are `ops`, in order.
    pub async fn start_with_providers(
        mut ops: Vec<TestProvider>,
        config: FileConfig,
        upstreams: Vec<Upstream>,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}");
        let settings = config.validate_for(addr).unwrap();
        let more_ops = ops.split_off(1);
        let op = ops.pop().unwrap();
        for p in &settings.providers {
            let op = std::iter::once(&op)
                .chain(&more_ops)
                .find(|op| op.issuer() == p.issuer)
                .unwrap();
            op.register_client(
                ClientRegistration::confidential(&p.client_id, SECRET, &p.redirect_uri)
                    .add_post_logout_redirect_uri(&format!("{url}/")),
            );
        }
        let proxy = Proxy::new(&settings).unwrap();
        let server = {
            let proxy = proxy.clone();
            tokio::spawn(async move {
                let _ = proxy.serve(listener, std::future::pending()).await;
            })
        };
        Self {
            op,
            more_ops,
            url,
            addr,
            proxy,
            upstreams,
            http: http(),
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// `GET path` as a browser navigation, with the session cookie when given.
    pub async fn navigate(&self, path: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut req = self
            .http
            .get(self.url(path))
            .header("accept", "text/html,application/xhtml+xml");
        if let Some(cookie) = cookie {
            req = req.header("cookie", format!("{COOKIE}={cookie}"));
        }
        req.send().await.unwrap()
    }

    /// `GET path` as an API call with these headers (and the session cookie when given).
    pub async fn get(
        &self,
        path: &str,
        cookie: Option<&str>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self
            .http
            .get(self.url(path))
            .header("accept", "application/json");
        if let Some(cookie) = cookie {
            req = req.header("cookie", format!("{COOKIE}={cookie}"));
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.send().await.unwrap()
    }

    /// Signs in through the proxy (the provider logs [`USER`] in at once) and returns the
    /// session cookie's value.
    pub async fn login(&self) -> String {
        let res = self.navigate("/app/page?x=1", None).await;
        assert_eq!(res.status(), 303, "login start");
        let pre = session_cookie(&res).expect("a pre-login session cookie");
        let authorize = res.headers()["location"].to_str().unwrap().to_owned();
        assert!(authorize.starts_with(&self.op.issuer()), "{authorize}");
        let res = self.http.get(&authorize).send().await.unwrap();
        assert_eq!(res.status(), 303, "authorize");
        let callback = res.headers()["location"].to_str().unwrap().to_owned();
        assert!(callback.starts_with(&self.url), "{callback}");
        let res = self
            .http
            .get(&callback)
            .header("cookie", format!("{COOKIE}={pre}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "callback");
        assert_eq!(res.headers()["location"], "/app/page?x=1");
        let cookie = session_cookie(&res).expect("a session cookie after login");
        assert_ne!(cookie, pre, "the session id changes at login");
        cookie
    }

    /// Signs in at `op` through `/oauth2/start/{provider}` (several providers) and returns
    /// the session cookie's value.
    pub async fn login_at(&self, op: &TestProvider, provider: &str) -> String {
        let res = self
            .navigate(&format!("/oauth2/start/{provider}?return_to=/app"), None)
            .await;
        assert_eq!(res.status(), 303, "login start");
        let pre = session_cookie(&res).expect("a pre-login session cookie");
        let authorize = res.headers()["location"].to_str().unwrap().to_owned();
        assert!(authorize.starts_with(&op.issuer()), "{authorize}");
        let res = self.http.get(&authorize).send().await.unwrap();
        assert_eq!(res.status(), 303, "authorize");
        let callback = res.headers()["location"].to_str().unwrap().to_owned();
        let res = self
            .http
            .get(&callback)
            .header("cookie", format!("{COOKIE}={pre}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "callback");
        session_cookie(&res).expect("a session cookie after login")
    }

    /// Requests seen by all upstreams.
    pub fn upstream_requests(&self) -> u64 {
        self.upstreams
            .iter()
            .map(|u| u.state.requests.load(Ordering::Relaxed))
            .sum()
    }

    /// The proxy's `/metrics`, parsed.
    pub async fn metrics(&self) -> BTreeMap<String, f64> {
        let res = self.http.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        parse_prometheus(&res.text().await.unwrap())
    }
}

/// The session cookie set by a response, if any (not a removal).
pub fn session_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next())
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, value)| *name == COOKIE && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}

/// Parses Prometheus text exposition format strictly enough to catch a broken page:
/// `# HELP`/`# TYPE` comments with known types, and `name{labels} value` samples with valid
/// names, quoted label values and numeric values. Returns `name{labels}` → value.
pub fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_whitespace();
            match words.next() {
                Some("TYPE") => {
                    let name = words.next().unwrap();
                    assert!(valid_name(name), "{line}");
                    let kind = words.next().unwrap();
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "{line}"
                    );
                }
                Some("HELP") => assert!(valid_name(words.next().unwrap()), "{line}"),
                _ => {}
            }
            continue;
        }
        let (key, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let name = key.split('{').next().unwrap();
        assert!(valid_name(name), "bad name in {line}");
        if let Some(labels) = key.strip_prefix(name).filter(|l| !l.is_empty()) {
            assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
            let inner = &labels[1..labels.len() - 1];
            for pair in inner.split("\",").filter(|p| !p.is_empty()) {
                let (label, value) = pair.split_once('=').unwrap_or_else(|| panic!("{line}"));
                assert!(valid_name(label), "bad label in {line}");
                assert!(value.starts_with('"'), "unquoted label value in {line}");
            }
        }
        samples.insert(key.to_owned(), value);
    }
    samples
}

/// A sample of `metrics` (0 when absent).
pub fn sample(metrics: &BTreeMap<String, f64>, key: &str) -> f64 {
    metrics.get(key).copied().unwrap_or(0.0)
}

/// Sends `head` (a request head without the final blank line) on a fresh connection and
/// returns the status code of the answer: for paths a normal client would clean up first.
pub async fn raw_status(addr: SocketAddr, head: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("{head}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"))
}

/// The JSON echo of an upstream.
pub async fn echo(res: reqwest::Response) -> Value {
    let status = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not an echo: {text}"))
}

/// The values of header `name` the upstream saw.
pub fn seen<'a>(echo: &'a Value, name: &str) -> Vec<&'a str> {
    echo["headers"][name]
        .as_array()
        .map(|values| values.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

pub async fn websocket_handshake(w: &World, auth: &str) -> (tokio::net::TcpStream, String) {
    let mut stream = tokio::net::TcpStream::connect(w.addr).await.unwrap();
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let head = format!(
        "GET /bearer/ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nX-Forwarded-User: mallory\r\n{auth}\r\n",
        w.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // Read the response head byte by byte (the frames follow it on the same stream).
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            n,
            1,
            "connection closed in the head: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    (stream, String::from_utf8(head).unwrap())
}
