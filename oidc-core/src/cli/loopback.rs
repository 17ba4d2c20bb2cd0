//! The loopback redirect of a native app (RFC 8252 §7.3): a one-shot HTTP listener on
//! `127.0.0.1` that receives the authorization response.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::error::CliError;
use super::open::{OpenUrl, PrintUrl};
use crate::error::FlowError;
use crate::flow::{AuthorizationResponse, AuthorizeOptions, OidcClient, TokenSet};

/// The path of the redirect URI.
pub const CALLBACK_PATH: &str = "/callback";
/// The largest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// Connections read at once; more wait in the listen queue.
const MAX_CONNECTIONS: usize = 8;

const DONE_PAGE: &str = "<!doctype html><meta charset=utf-8><title>Logged in</title>\
<p>You are logged in. You can close this window and go back to the terminal.";
const FAILED_PAGE: &str = "<!doctype html><meta charset=utf-8><title>Login failed</title>\
<p>The login failed. Go back to the terminal for the details.";

/// A login in the user's browser that returns to a loopback listener.
///
/// [`run`](Self::run) binds `127.0.0.1` on an ephemeral port, starts the authorization code
/// flow with PKCE with the redirect URI `http://127.0.0.1:{port}/callback`, shows the login
/// URL ([`OpenUrl`]; by default printed), and answers the browser's return:
///
/// - only `GET /callback` ends the login: its `state` (and RFC 9207 `iss`) must match the
///   login's, exactly as in the web flow, before the code is exchanged; a callback that does
///   not match ends the login with [`FlowError::Unbound`] and nothing is sent to the token
///   endpoint. The browser gets a small fixed HTML page (no error text from the request);
/// - any other path gets 404, another method 405, and a `Host` other than
///   `127.0.0.1:{port}` 400 (DNS rebinding); the listener keeps waiting;
/// - each connection must send its request head within the read timeout (default 10 s, at
///   most 8 KiB); the whole login within the total timeout (default 5 minutes), else
///   [`CliError::Timeout`];
/// - the listener is closed when `run` returns.
///
/// Register the redirect URI `http://127.0.0.1/callback` at the provider with any port
/// allowed (RFC 8252 §7.3; a native client in Keycloak and `oidc-provider`).
///
/// See the [module docs](crate::cli) for an example.
#[derive(Clone)]
pub struct LoopbackLogin {
    client: OidcClient,
    options: AuthorizeOptions,
    opener: Arc<dyn OpenUrl>,
    timeout: Duration,
    read_timeout: Duration,
}

impl std::fmt::Debug for LoopbackLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopbackLogin")
            .field("client", &self.client)
            .field("timeout", &self.timeout)
            .field("read_timeout", &self.read_timeout)
            .finish_non_exhaustive()
    }
}

/// One request head, as far as the listener needs it.
#[derive(Debug)]
struct Head {
    method: String,
    path: String,
    query: String,
    host: Option<String>,
}

impl LoopbackLogin {
    /// A loopback login with `client`, whose redirect URI is replaced by the loopback one for
    /// each run.
    ///
    /// Defaults: no extra authorization options, the URL printed ([`PrintUrl`]), a total
    /// timeout of 5 minutes and a read timeout of 10 s.
    pub fn new(client: OidcClient) -> Self {
        Self {
            client,
            options: AuthorizeOptions::new(),
            opener: Arc::new(PrintUrl),
            timeout: Duration::from_secs(5 * 60),
            read_timeout: Duration::from_secs(10),
        }
    }

    /// Replaces how the login URL reaches the user. The default is [`PrintUrl`].
    #[must_use]
    pub fn with_opener(mut self, opener: impl OpenUrl + 'static) -> Self {
        self.opener = Arc::new(opener);
        self
    }

    /// Sets the authorization request options (`login_hint`, `prompt`…). The default is
    /// none.
    #[must_use]
    pub fn with_options(mut self, options: AuthorizeOptions) -> Self {
        self.options = options;
        self
    }

    /// Sets how long the whole login may take. The default value is 5 minutes.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how long a connection may take to send its request head. The default value is
    /// 10 s.
    #[must_use]
    pub fn with_read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// Runs the login; see the [type docs](Self).
    ///
    /// # Errors
    ///
    /// [`CliError::Flow`] for a callback that does not match or a failed exchange,
    /// [`CliError::Timeout`], [`CliError::Io`] when no loopback port can be bound,
    /// [`CliError::Browser`] when the opener fails.
    pub async fn run(&self) -> Result<TokenSet, CliError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|source| CliError::Io {
                what: "binding the loopback listener",
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| CliError::Io {
            what: "binding the loopback listener",
            source,
        })?;
        let client = self
            .client
            .with_redirect_uri(format!("http://{addr}{CALLBACK_PATH}"))?;
        let (url, tx) = client.authorize(&self.options).await?;
        self.opener.open(&url).map_err(CliError::Browser)?;
        let deadline = Instant::now() + self.timeout;
        let host = addr.to_string();
        let mut reading: JoinSet<(TcpStream, Option<Head>)> = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept(), if reading.len() < MAX_CONNECTIONS => {
                    let Ok((stream, peer)) = accepted else { continue };
                    if !peer.ip().is_loopback() {
                        continue;
                    }
                    let read_timeout = self.read_timeout;
                    reading.spawn(async move {
                        let mut stream = stream;
                        let head = tokio::time::timeout(read_timeout, read_head(&mut stream))
                            .await
                            .ok()
                            .flatten();
                        (stream, head)
                    });
                }
                Some(Ok((mut stream, head))) = reading.join_next() => {
                    let Some(head) = head else {
                        respond(&mut stream, "400 Bad Request", "bad request").await;
                        continue;
                    };
                    if head.host.as_deref() != Some(host.as_str()) {
                        respond(&mut stream, "400 Bad Request", "bad request").await;
                        continue;
                    }
                    if head.path != CALLBACK_PATH {
                        respond(&mut stream, "404 Not Found", "not found").await;
                        continue;
                    }
                    if head.method != "GET" {
                        respond(&mut stream, "405 Method Not Allowed", "method not allowed").await;
                        continue;
                    }
                    let result = match AuthorizationResponse::from_query(&head.query) {
                        Ok(response) => client.complete(&tx, response).await,
                        Err(e) => Err(e),
                    };
                    let (status, page) = match &result {
                        Ok(_) => ("200 OK", DONE_PAGE),
                        Err(FlowError::Unbound(_)) => ("400 Bad Request", FAILED_PAGE),
                        Err(_) => ("401 Unauthorized", FAILED_PAGE),
                    };
                    respond_html(&mut stream, status, page).await;
                    return result.map_err(CliError::Flow);
                }
                () = tokio::time::sleep_until(deadline) => return Err(CliError::Timeout),
            }
        }
    }
}

/// Reads a request head (up to the blank line, at most [`MAX_HEAD`] bytes) and parses what
/// the listener needs; `None` for anything malformed.
async fn read_head(stream: &mut TcpStream) -> Option<Head> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() >= MAX_HEAD {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(chunk.get(..n)?);
    }
    parse_head(&buf)
}

fn parse_head(buf: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(buf).ok()?;
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?;
    if !request_line.next()?.starts_with("HTTP/1.") || request_line.next().is_some() {
        return None;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut host = None;
    for line in lines.take_while(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        if name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return None;
            }
            host = Some(value.trim().to_owned());
        }
    }
    Some(Head {
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        host,
    })
}

async fn respond(stream: &mut TcpStream, status: &str, text: &str) {
    write_response(stream, status, "text/plain; charset=utf-8", text).await;
}

async fn respond_html(stream: &mut TcpStream, status: &str, page: &str) {
    write_response(stream, status, "text/html; charset=utf-8", page).await;
}

async fn write_response(stream: &mut TcpStream, status: &str, content_type: &str, body: &str) {
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         cache-control: no-store\r\nreferrer-policy: no-referrer\r\n\
         x-content-type-options: nosniff\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    // The browser may be gone; the login's outcome does not depend on it.
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_head_reads_method_path_query_and_host() {
        let head = parse_head(
            b"GET /callback?code=a&state=b HTTP/1.1\r\nHost: 127.0.0.1:9\r\nAccept: */*\r\n\r\n",
        )
        .unwrap();
        assert_eq!(head.method, "GET");
        assert_eq!(head.path, "/callback");
        assert_eq!(head.query, "code=a&state=b");
        assert_eq!(head.host.as_deref(), Some("127.0.0.1:9"));
    }

    #[test]
    fn parse_head_refuses_malformed_heads() {
        for bad in [
            &b"GET /callback\r\n\r\n"[..],
            b"GET /callback HTTP/1.1 extra\r\n\r\n",
            b"GET /callback SPDY/3\r\n\r\n",
            b"GET /callback HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET /callback HTTP/1.1\r\nno colon\r\n\r\n",
            b"\xff\xfe HTTP/1.1\r\n\r\n",
        ] {
            assert!(parse_head(bad).is_none(), "{bad:?}");
        }
    }
}
