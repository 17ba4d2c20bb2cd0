//! Forwarding to the upstreams: hyper's HTTP/1.1 client, streamed bodies both ways, the
//! `Upgrade` handshake (websockets) spliced with `copy_bidirectional`, hop-by-hop headers
//! removed, `X-Forwarded-*` set, and the proxy's own cookie and the client's identity
//! headers never passed on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use oidc_tower::login::store::LoginStore;

use crate::config::{HeaderSettings, Settings, UpstreamSettings};
use crate::identity::{Who, sets_own_cookie, strip_identity_headers};
use crate::metrics::{Metrics, UpstreamError};
use crate::routes::RequestPath;

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus the
/// non-standard ones proxies also drop.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// Set by other proxies; a client's copies are dropped unless `reverse_proxy` is on.
const CLIENT_FORWARDING: [HeaderName; 5] = [
    header::FORWARDED,
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-uri"),
];

/// Sends requests to the upstreams.
#[derive(Debug)]
pub(crate) struct Forwarder {
    client: Client<HttpConnector, Body>,
    /// Longest prefix first.
    upstreams: Vec<UpstreamSettings>,
    timeout: Duration,
    reverse_proxy: bool,
    pass_host_header: bool,
    public_scheme: HeaderValue,
    public_host: HeaderValue,
    cookie_name: String,
    pub(crate) headers: HeaderSettings,
    pub(crate) metrics: Arc<Metrics>,
    /// The login layer's view of its session store: a websocket tunnel opened with a session
    /// closes once that session is gone (signed out, logged out by the provider, expired).
    pub(crate) sessions: std::sync::OnceLock<LoginStore>,
    /// How often a tunnel checks its session.
    tunnel_check: Duration,
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// A plain-text answer of the proxy itself.
pub(crate) fn plain(status: StatusCode, body: &'static str) -> Response<Body> {
    text(status, body)
}

impl Forwarder {
    pub(crate) fn new(settings: &Settings, metrics: Arc<Metrics>) -> Self {
        let mut connector = HttpConnector::new();
        connector.enforce_http(true);
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(10)));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        let mut upstreams = settings.upstreams.clone();
        upstreams.sort_by_key(|u| std::cmp::Reverse(u.prefix.len()));
        let public = url::Url::parse(&settings.public_url).ok();
        let public_host = public
            .as_ref()
            .and_then(|u| {
                let host = u.host_str()?;
                Some(match u.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host.to_owned(),
                })
            })
            .and_then(|h| HeaderValue::from_str(&h).ok())
            .unwrap_or_else(|| HeaderValue::from_static("localhost"));
        Self {
            client,
            upstreams,
            timeout: settings.upstream_timeout,
            reverse_proxy: settings.reverse_proxy,
            pass_host_header: settings.pass_host_header,
            public_scheme: HeaderValue::from_static(if settings.secure { "https" } else { "http" }),
            public_host,
            cookie_name: settings.cookie.name.clone(),
            headers: settings.headers.clone(),
            metrics,
            sessions: std::sync::OnceLock::new(),
            tunnel_check: settings.websocket_session_check,
        }
    }

    /// The upstream serving `path` (longest prefix), if any.
    pub(crate) fn upstream_for(&self, path: &RequestPath<'_>) -> Option<&UpstreamSettings> {
        self.upstreams.iter().find(|u| path.under(&u.prefix))
    }

    /// Forwards `req` to its upstream with the identity headers of `who` (none on skip-auth
    /// routes). Never fails: upstream problems are answered 502 or 504.
    pub(crate) async fn forward(
        &self,
        mut req: Request<Body>,
        who: Option<&Who>,
    ) -> Response<Body> {
        let Ok(path) = RequestPath::parse(req.uri().path()) else {
            return text(StatusCode::BAD_REQUEST, "Bad request path.\n");
        };
        let Some(upstream) = self.upstream_for(&path) else {
            return text(StatusCode::NOT_FOUND, "Not found.\n");
        };
        let Some(uri) = target_uri(upstream, req.uri()) else {
            return text(StatusCode::BAD_REQUEST, "Bad request path.\n");
        };
        let upgrade = match upgrade_protocol(req.method(), req.version(), req.headers()) {
            Ok(upgrade) => upgrade,
            Err(refused) => {
                tracing::debug!(reason = refused.0, "protocol upgrade refused");
                return text(
                    StatusCode::BAD_REQUEST,
                    "Only websocket upgrades are forwarded.\n",
                );
            }
        };
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
        // The browser session a tunnel belongs to (none for a bearer token).
        let tunnel_session = upgrade
            .as_ref()
            .and_then(|_| req.extensions().get::<tower_sessions::Session>())
            .and_then(tower_sessions::Session::id)
            .zip(self.sessions.get().cloned());
        let tunnel_check = self.tunnel_check;

        let (parts, body) = req.into_parts();
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let mut headers = parts.headers;
        let client_host = headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        remove_hop_by_hop(&mut headers);
        strip_identity_headers(&mut headers, self.headers.pass_authorization_header);
        remove_cookie(&mut headers, &self.cookie_name);
        headers.remove(header::EXPECT);
        headers.remove(header::HOST);
        if self.pass_host_header
            && let Some(host) = client_host
        {
            headers.insert(header::HOST, host);
        }
        self.set_forwarding_headers(&mut headers, peer);
        if let Some(who) = who
            && who.apply(&mut headers, &self.headers).is_err()
        {
            tracing::warn!("the user claim cannot be sent in a header; request refused");
            return text(
                StatusCode::FORBIDDEN,
                "Your identity cannot be forwarded.\n",
            );
        }
        if let Some(protocol) = &upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, protocol.clone());
        }

        let mut out = Request::new(body);
        *out.method_mut() = parts.method;
        *out.uri_mut() = uri;
        *out.version_mut() = Version::HTTP_11;
        *out.headers_mut() = headers;

        let name = upstream.name.as_str();
        let mut res = match tokio::time::timeout(self.timeout, self.client.request(out)).await {
            Err(_) => {
                self.metrics.upstream_error(name, UpstreamError::Timeout);
                tracing::warn!(upstream = name, "upstream did not answer in time");
                return text(
                    StatusCode::GATEWAY_TIMEOUT,
                    "The upstream did not answer in time.\n",
                );
            }
            Ok(Err(e)) => {
                let reason = if e.is_connect() {
                    UpstreamError::Connect
                } else {
                    UpstreamError::Other
                };
                self.metrics.upstream_error(name, reason);
                tracing::warn!(upstream = name, error = %e, "upstream request failed");
                return text(StatusCode::BAD_GATEWAY, "The upstream is unavailable.\n");
            }
            Ok(Ok(res)) => res,
        };
        self.metrics.upstream_response(name, res.status());

        if res.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_upgrade) = client_upgrade else {
                tracing::warn!(upstream = name, "upstream switched protocols unasked");
                return text(StatusCode::BAD_GATEWAY, "The upstream answered wrongly.\n");
            };
            // Spliced only when the upstream switched to the websocket the proxy asked for.
            let switched_to_websocket = res.headers().get(header::UPGRADE).is_some_and(|v| {
                v.as_bytes()
                    .trim_ascii()
                    .eq_ignore_ascii_case(WEBSOCKET.as_bytes())
            }) && res.headers().get_all(header::UPGRADE).iter().count()
                == 1;
            if !switched_to_websocket {
                tracing::warn!(
                    upstream = name,
                    "upstream switched to another protocol than websocket"
                );
                return text(StatusCode::BAD_GATEWAY, "The upstream answered wrongly.\n");
            }
            let protocol = Some(HeaderValue::from_static(WEBSOCKET));
            let upstream_upgrade = hyper::upgrade::on(&mut res);
            let upstream_name = upstream.name.clone();
            tokio::spawn(async move {
                match tokio::try_join!(client_upgrade, upstream_upgrade) {
                    Ok((client, server)) => {
                        let mut client = TokioIo::new(client);
                        let mut server = TokioIo::new(server);
                        let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
                        if let Err(e) = splice(copy, tunnel_session, tunnel_check).await {
                            tracing::debug!(upstream = upstream_name, error = %e, "upgraded connection ended");
                        }
                    }
                    Err(e) => {
                        tracing::debug!(upstream = upstream_name, error = %e, "upgrade failed");
                    }
                }
            });
            remove_hop_by_hop(res.headers_mut());
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            if let Some(protocol) = protocol {
                res.headers_mut().insert(header::UPGRADE, protocol);
            }
        } else {
            remove_hop_by_hop(res.headers_mut());
        }
        self.drop_own_set_cookies(res.headers_mut(), name);
        let (parts, body) = res.into_parts();
        Response::from_parts(parts, Body::new(body))
    }

    /// Drops the upstream's `Set-Cookie` headers for the proxy's session cookie (session
    /// fixation): logged by name only, counted.
    fn drop_own_set_cookies(&self, headers: &mut HeaderMap, upstream: &str) {
        // Nothing is copied on the usual path, where no value names the proxy's cookie.
        if !headers
            .get_all(header::SET_COOKIE)
            .iter()
            .any(|v| sets_own_cookie(v.as_bytes(), &self.cookie_name))
        {
            return;
        }
        let all: Vec<HeaderValue> = headers
            .get_all(header::SET_COOKIE)
            .iter()
            .cloned()
            .collect();
        headers.remove(header::SET_COOKIE);
        for value in all {
            if sets_own_cookie(value.as_bytes(), &self.cookie_name) {
                self.metrics.own_cookie_dropped(upstream);
                tracing::warn!(upstream, cookie = ?self.cookie_name, "the upstream tried to set the proxy's session cookie; dropped");
            } else {
                headers.append(header::SET_COOKIE, value);
            }
        }
    }

    fn set_forwarding_headers(&self, headers: &mut HeaderMap, peer: Option<std::net::IpAddr>) {
        let peer = peer.and_then(|ip| HeaderValue::from_str(&ip.to_string()).ok());
        if self.reverse_proxy {
            // Behind a trusted proxy: keep its headers, add the hop it came from.
            let mut chain: Vec<String> = headers
                .get_all(&X_FORWARDED_FOR)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_owned)
                .collect();
            if let Some(peer) = peer.as_ref().and_then(|p| p.to_str().ok()) {
                chain.push(peer.to_owned());
            }
            headers.remove(&X_FORWARDED_FOR);
            if let Ok(value) = HeaderValue::from_str(&chain.join(", "))
                && !chain.is_empty()
            {
                headers.insert(X_FORWARDED_FOR, value);
            }
            if !headers.contains_key(&X_FORWARDED_PROTO) {
                headers.insert(X_FORWARDED_PROTO, self.public_scheme.clone());
            }
            if !headers.contains_key(&X_FORWARDED_HOST) {
                headers.insert(X_FORWARDED_HOST, self.public_host.clone());
            }
            return;
        }
        for name in CLIENT_FORWARDING {
            headers.remove(name);
        }
        headers.remove(&X_FORWARDED_FOR);
        if let Some(peer) = peer {
            headers.insert(X_FORWARDED_FOR, peer);
        }
        headers.insert(X_FORWARDED_PROTO, self.public_scheme.clone());
        headers.insert(X_FORWARDED_HOST, self.public_host.clone());
    }
}

/// Runs a spliced tunnel until either side closes it or, for a tunnel of a browser session,
/// until that session is gone from the store (checked every `every`; a store that cannot
/// answer closes the tunnel too: fail closed).
async fn splice(
    copy: impl Future<Output = std::io::Result<(u64, u64)>>,
    session: Option<(tower_sessions::session::Id, LoginStore)>,
    every: Duration,
) -> std::io::Result<()> {
    let mut copy = std::pin::pin!(copy);
    let Some((id, store)) = session else {
        return copy.await.map(|_| ());
    };
    loop {
        tokio::select! {
            result = copy.as_mut() => return result.map(|_| ()),
            () = tokio::time::sleep(every) => {
                use tower_sessions::SessionStore as _;
                match store.load(&id).await {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        tracing::info!("the session of a websocket ended; tunnel closed");
                        return Ok(());
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "session store failed; websocket tunnel closed");
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// The upstream URI for a request to `uri` (path and query as sent).
fn target_uri(upstream: &UpstreamSettings, uri: &Uri) -> Option<Uri> {
    let path = uri.path();
    let rest = if upstream.strip_prefix {
        let trimmed = upstream.prefix.trim_end_matches('/');
        let rest = path.strip_prefix(trimmed)?;
        if rest.is_empty() { "/" } else { rest }
    } else {
        path
    };
    let mut path_and_query = format!("{}{rest}", upstream.base_path);
    if let Some(query) = uri.query() {
        path_and_query.push('?');
        path_and_query.push_str(query);
    }
    Uri::builder()
        .scheme("http")
        .authority(upstream.authority.clone())
        .path_and_query(path_and_query)
        .build()
        .ok()
}

/// Why an upgrade request is refused (for the debug log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct UpgradeRefused(&'static str);

/// The only protocol a client may switch to through the proxy (an allow-list): anything
/// else (`h2c`, a made-up protocol, several values) would hand the upstream a connection the
/// proxy can no longer read, past its per-request checks.
const WEBSOCKET: &str = "websocket";

/// The protocol of an HTTP/1.1 `Upgrade` request: `Ok(Some(websocket))` for a websocket
/// handshake (`GET`, `Connection: upgrade`, exactly one `Upgrade: websocket`, any case),
/// `Ok(None)` for a request that asks for no upgrade at all, and an error for every other
/// upgrade (answered 400, never forwarded).
fn upgrade_protocol(
    method: &http::Method,
    version: Version,
    headers: &HeaderMap,
) -> Result<Option<HeaderValue>, UpgradeRefused> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"upgrade"));
    let mut values = headers.get_all(header::UPGRADE).iter();
    let Some(first) = values.next() else {
        return if asks {
            Err(UpgradeRefused("connection: upgrade without upgrade"))
        } else {
            Ok(None)
        };
    };
    if values.next().is_some() {
        return Err(UpgradeRefused("several upgrade headers"));
    }
    if !asks {
        // An `Upgrade` that `Connection` does not name is hop-by-hop noise; it is removed
        // with the other hop-by-hop headers unless it names something else than websocket.
        return if first
            .as_bytes()
            .trim_ascii()
            .eq_ignore_ascii_case(WEBSOCKET.as_bytes())
        {
            Ok(None)
        } else {
            Err(UpgradeRefused("upgrade to another protocol"))
        };
    }
    if !first
        .as_bytes()
        .trim_ascii()
        .eq_ignore_ascii_case(WEBSOCKET.as_bytes())
    {
        return Err(UpgradeRefused("upgrade to another protocol"));
    }
    if version != Version::HTTP_11 {
        return Err(UpgradeRefused("upgrade outside HTTP/1.1"));
    }
    if method != http::Method::GET {
        return Err(UpgradeRefused("websocket handshake that is not a GET"));
    }
    Ok(Some(HeaderValue::from_static(WEBSOCKET)))
}

/// Removes the hop-by-hop headers, including those named by `Connection`.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Removes the cookie `name` (the proxy's session) from the `Cookie` headers.
fn remove_cookie(headers: &mut HeaderMap, name: &str) {
    if !headers.contains_key(header::COOKIE) {
        return;
    }
    let mut kept: Vec<Vec<u8>> = Vec::new();
    for value in headers.get_all(header::COOKIE) {
        for pair in value.as_bytes().split(|b| *b == b';') {
            let pair = pair.trim_ascii();
            if pair.is_empty() {
                continue;
            }
            let cookie_name = pair
                .split(|b| *b == b'=')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            if cookie_name != name.as_bytes() {
                kept.push(pair.to_vec());
            }
        }
    }
    headers.remove(header::COOKIE);
    if kept.is_empty() {
        return;
    }
    if let Ok(value) = HeaderValue::from_bytes(&kept.join(&b"; "[..])) {
        headers.insert(header::COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(prefix: &str, base: &str, strip: bool) -> UpstreamSettings {
        UpstreamSettings {
            name: prefix.to_owned(),
            prefix: prefix.to_owned(),
            authority: "127.0.0.1:8080".parse().unwrap(),
            base_path: base.to_owned(),
            strip_prefix: strip,
        }
    }

    #[test]
    fn builds_target_uris() {
        let uri: Uri = "/grafana/d/x?from=1".parse().unwrap();
        let up = upstream("/grafana/", "", true);
        assert_eq!(
            target_uri(&up, &uri).unwrap(),
            "http://127.0.0.1:8080/d/x?from=1"
        );
        let up = upstream("/grafana", "/base", true);
        assert_eq!(
            target_uri(&up, &uri).unwrap(),
            "http://127.0.0.1:8080/base/d/x?from=1"
        );
        let up = upstream("/grafana", "/base", false);
        assert_eq!(
            target_uri(&up, &uri).unwrap(),
            "http://127.0.0.1:8080/base/grafana/d/x?from=1"
        );
        let uri: Uri = "/grafana".parse().unwrap();
        let up = upstream("/grafana", "", true);
        assert_eq!(target_uri(&up, &uri).unwrap(), "http://127.0.0.1:8080/");
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
    }

    #[test]
    fn only_websocket_upgrades_are_recognised() {
        let get = http::Method::GET;
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        assert_eq!(
            upgrade_protocol(&get, Version::HTTP_11, &h)
                .unwrap()
                .unwrap(),
            "websocket"
        );
        assert!(upgrade_protocol(&get, Version::HTTP_10, &h).is_err());
        assert!(upgrade_protocol(&http::Method::POST, Version::HTTP_11, &h).is_err());
        h.append(header::UPGRADE, HeaderValue::from_static("h2c"));
        assert!(upgrade_protocol(&get, Version::HTTP_11, &h).is_err());
        for other in ["h2c", "websocket, h2c", "TLS/1.0", "websocketx", ""] {
            h.insert(header::UPGRADE, HeaderValue::from_static(other));
            assert!(
                upgrade_protocol(&get, Version::HTTP_11, &h).is_err(),
                "{other}"
            );
        }
        h.remove(header::UPGRADE);
        assert!(upgrade_protocol(&get, Version::HTTP_11, &h).is_err());
        // No Connection: upgrade: an h2c Upgrade header is refused too, websocket is dropped.
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        assert!(upgrade_protocol(&get, Version::HTTP_11, &h).is_err());
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert_eq!(upgrade_protocol(&get, Version::HTTP_11, &h), Ok(None));
        assert_eq!(
            upgrade_protocol(&get, Version::HTTP_11, &HeaderMap::new()),
            Ok(None)
        );
    }

    #[test]
    fn the_session_cookie_stays_here() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; oidc-proxy=secret; b=2"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("oidc-proxy=again"));
        remove_cookie(&mut h, "oidc-proxy");
        assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(h[header::COOKIE], "a=1; b=2");
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("oidc-proxy=only"));
        remove_cookie(&mut h, "oidc-proxy");
        assert!(!h.contains_key(header::COOKIE));
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("oidc-proxy-x=1; xoidc-proxy=2"),
        );
        remove_cookie(&mut h, "oidc-proxy");
        assert_eq!(h[header::COOKIE], "oidc-proxy-x=1; xoidc-proxy=2");
    }
}
