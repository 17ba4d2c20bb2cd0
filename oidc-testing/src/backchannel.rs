//! OpenID Connect Back-Channel Logout 1.0: minting logout tokens and
//! delivering them to the clients' `backchannel_logout_uri`, with a
//! recording of every delivery.
//!
//! Deliveries are plain HTTP/1.1 `POST`s written on a tokio `TcpStream`
//! (the crate has no HTTP client): `http` URIs only, `Connection: close`,
//! bounded in time and size.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::TcpStream;
use url::Url;

use crate::keys::SigningAlg;
use crate::knobs::BackchannelDelivery;
use crate::provider::TestProvider;
use crate::state::{ProviderState, Recipient};
use crate::token::{TokenBuilder, unverified_claims};

/// The `events` member that makes a JWT a back-channel logout token.
pub(crate) const BACKCHANNEL_LOGOUT_EVENT: &str =
    "http://schemas.openid.net/event/backchannel-logout";
/// The lifetime (`exp` − `iat`) of the logout tokens the provider mints.
const LOGOUT_TOKEN_LIFETIME_SECS: i64 = 120;
/// How long one delivery may take, connection to end of response.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest response (head and body) read from a client.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A logout token builder for `client_id` (see
/// [`TestProvider::logout_token`]).
pub(crate) fn logout_token_builder(
    provider: &Arc<ProviderState>,
    client_id: &str,
    alg: SigningAlg,
    sub: Option<&str>,
    sid: Option<&str>,
) -> TokenBuilder {
    let mut builder = TokenBuilder::new(Arc::clone(provider))
        .alg(alg)
        .header("typ", "logout+jwt")
        .without_claim("scope")
        .without_claim("client_id")
        .without_claim("sub")
        .audience(client_id)
        .claim("events", json!({ BACKCHANNEL_LOGOUT_EVENT: {} }))
        .expires_in(LOGOUT_TOKEN_LIFETIME_SECS);
    if let Some(sub) = sub {
        builder = builder.claim("sub", sub);
    }
    if let Some(sid) = sid {
        builder = builder.claim("sid", sid);
    }
    builder
}

/// POSTs `logout_token` to `uri` and records the delivery.
pub(crate) async fn deliver(
    provider: &Arc<ProviderState>,
    client_id: &str,
    uri: &str,
    logout_token: String,
) -> BackchannelDelivery {
    let claims = unverified_claims(&logout_token).unwrap_or_default();
    let claim = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    let mut delivery = BackchannelDelivery {
        client_id: client_id.to_owned(),
        uri: uri.to_owned(),
        sub: claim("sub"),
        sid: claim("sid"),
        ..BackchannelDelivery::default()
    };
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("logout_token", &logout_token)
        .finish();
    delivery.logout_token = logout_token;
    match tokio::time::timeout(DELIVERY_TIMEOUT, post_form(uri, &body)).await {
        Ok(Ok(response)) => {
            delivery.status = Some(response.status);
            delivery.headers = response.headers;
            delivery.body = response.body;
        }
        Ok(Err(error)) => delivery.error = Some(error),
        Err(_) => {
            delivery.error = Some(format!("no answer within {} s", DELIVERY_TIMEOUT.as_secs()));
        }
    }
    provider
        .auth()
        .backchannel_deliveries
        .push(delivery.clone());
    delivery
}

/// Mints a logout token for each recipient and delivers them in order.
pub(crate) async fn notify(
    provider: &Arc<ProviderState>,
    recipients: Vec<Recipient>,
    sub: &str,
    sid: &str,
) {
    for recipient in recipients {
        let token = logout_token_builder(
            provider,
            &recipient.client_id,
            recipient.alg,
            Some(sub),
            Some(sid),
        )
        .sign();
        deliver(provider, &recipient.client_id, &recipient.uri, token).await;
    }
}

// ---------------------------------------------------------------------------
// A minimal HTTP/1.1 client

/// What a client answered.
#[derive(Debug)]
struct HttpAnswer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

/// POSTs a form body to an `http` URI and reads the answer.
async fn post_form(uri: &str, body: &str) -> Result<HttpAnswer, String> {
    let url = Url::parse(uri).map_err(|e| format!("invalid uri: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!(
            "only http URIs can be delivered to, not {}",
            url.scheme()
        ));
    }
    let host = url.host_str().ok_or("the uri has no host")?;
    let port = url.port_or_known_default().unwrap_or(80);
    let authority = format!("{host}:{port}");
    let mut target = url.path().to_owned();
    if let Some(query) = url.query() {
        target.push('?');
        target.push_str(query);
    }
    let request = format!(
        "POST {target} HTTP/1.1\r\nHost: {authority}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nAccept: */*\r\nConnection: close\r\n\
         User-Agent: oidc-testing\r\n\r\n{body}",
        body.len()
    );
    let stream = TcpStream::connect(authority.as_str())
        .await
        .map_err(|e| format!("connection failed: {e}"))?;
    write_all(&stream, request.as_bytes())
        .await
        .map_err(|e| format!("sending failed: {e}"))?;
    let raw = read_to_end(&stream)
        .await
        .map_err(|e| format!("reading the answer failed: {e}"))?;
    parse_answer(&raw).ok_or_else(|| "the answer is not an HTTP/1.x response".to_owned())
}

async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => bytes = bytes.get(written..).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads until the peer closes (the request said `Connection: close`), at
/// most [`MAX_RESPONSE_BYTES`].
async fn read_to_end(stream: &TcpStream) -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut chunk = [0_u8; 4096];
    while data.len() < MAX_RESPONSE_BYTES {
        stream.readable().await?;
        match stream.try_read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => data.extend_from_slice(chunk.get(..read).unwrap_or_default()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    data.truncate(MAX_RESPONSE_BYTES);
    Ok(data)
}

/// Splits a raw HTTP/1.x response into status, headers and body.
fn parse_answer(raw: &[u8]) -> Option<HttpAnswer> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(raw.get(..end)?).ok()?;
    let rest = raw.get(end + 4..).unwrap_or_default();
    let mut lines = head.split("\r\n");
    let mut status_line = lines.next()?.splitn(3, ' ');
    if !status_line.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = status_line.next()?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(name, value)| {
        name == "transfer-encoding" && value.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        let length = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .and_then(|(_, value)| value.parse::<usize>().ok())
            .unwrap_or(rest.len());
        rest.get(..length.min(rest.len()))
            .unwrap_or_default()
            .to_vec()
    };
    Some(HttpAnswer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Decodes a chunked body, as far as it is well formed.
fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(rest.get(..line_end).unwrap_or_default())
            .ok()
            .and_then(|line| line.split(';').next())
            .and_then(|size| usize::from_str_radix(size.trim(), 16).ok());
        let Some(size) = size.filter(|size| *size > 0) else {
            break;
        };
        let start = line_end + 2;
        let Some(data) = rest.get(start..start.saturating_add(size)) else {
            body.extend_from_slice(rest.get(start..).unwrap_or_default());
            break;
        };
        body.extend_from_slice(data);
        rest = rest
            .get(start.saturating_add(size).saturating_add(2)..)
            .unwrap_or_default();
    }
    body
}

// ---------------------------------------------------------------------------
// Public API

impl TestProvider {
    /// Starts building a back-channel logout token for `client_id`, as the
    /// provider would send it: header `{"alg": <the client's ID token
    /// algorithm, RS256 if the client is not registered>, "typ":
    /// "logout+jwt", "kid": <its current kid>}`, claims `iss`, `aud` =
    /// `client_id`, `iat` now, `exp` now + 120 s, a unique `jti`, `events` =
    /// `{"http://schemas.openid.net/event/backchannel-logout": {}}`, and
    /// `sub` and `sid` when given.
    ///
    /// Edit it with the [`TokenBuilder`] methods for hostile variants (BCL-02
    /// to BCL-06): `alg: none`, another algorithm, a tampered signature, an
    /// unknown `kid`, a wrong `iss` or `aud`, no or other `events`, a
    /// `nonce`, `typ` `at+jwt`, neither `sub` nor `sid`...
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use oidc_testing::TestProvider;
    ///
    /// let provider = TestProvider::start().await;
    /// let builder = provider.logout_token("app", Some("alice"), Some("sid-1"));
    /// assert_eq!(builder.claims_json()["aud"], "app");
    /// assert_eq!(builder.header_json()["typ"], "logout+jwt");
    /// let with_nonce = builder.claim("nonce", "n-1").sign();
    /// # let _ = with_nonce;
    /// # }
    /// ```
    pub fn logout_token(
        &self,
        client_id: &str,
        sub: Option<&str>,
        sid: Option<&str>,
    ) -> TokenBuilder {
        let alg = self
            .state()
            .auth()
            .client(client_id)
            .map_or(SigningAlg::RS256, |client| client.id_token_alg);
        logout_token_builder(self.state(), client_id, alg, sub, sid)
    }

    /// Sends a logout token for `sub` and/or `sid` (as
    /// [`logout_token`](TestProvider::logout_token) builds it) to the
    /// registered `backchannel_logout_uri` of `client_id`, now, and returns
    /// the delivery (also recorded in
    /// [`backchannel_deliveries`](TestProvider::backchannel_deliveries)).
    /// Ends no provider session.
    ///
    /// # Panics
    ///
    /// Panics when `client_id` is not registered or has no back-channel
    /// logout URI.
    pub async fn send_backchannel_logout(
        &self,
        client_id: &str,
        sub: Option<&str>,
        sid: Option<&str>,
    ) -> BackchannelDelivery {
        let token = self.logout_token(client_id, sub, sid).sign();
        self.deliver_logout_token(client_id, &token).await
    }

    /// POSTs `logout_token` exactly as given (any string: a hostile token,
    /// an ID token, garbage) as the form parameter `logout_token` to the
    /// registered `backchannel_logout_uri` of `client_id`, and returns the
    /// delivery (also recorded). For the client under test's rejection
    /// cases (BCL-02 to BCL-06).
    ///
    /// # Panics
    ///
    /// Panics when `client_id` is not registered or has no back-channel
    /// logout URI.
    #[allow(
        clippy::panic,
        reason = "test support code: a client without a back-channel URI is a mistake in the test"
    )]
    pub async fn deliver_logout_token(
        &self,
        client_id: &str,
        logout_token: &str,
    ) -> BackchannelDelivery {
        let uri = self
            .state()
            .auth()
            .client(client_id)
            .and_then(|client| client.backchannel_logout_uri.clone());
        let Some(uri) = uri else {
            panic!(
                "oidc-testing: the client {client_id:?} is not registered with a backchannel_logout_uri"
            );
        };
        deliver(self.state(), client_id, &uri, logout_token.to_owned()).await
    }

    /// Every back-channel logout delivery so far, in order: those of the
    /// end-session endpoint and those asked for with
    /// [`send_backchannel_logout`](TestProvider::send_backchannel_logout) or
    /// [`deliver_logout_token`](TestProvider::deliver_logout_token).
    pub fn backchannel_deliveries(&self) -> Vec<BackchannelDelivery> {
        self.state().auth().backchannel_deliveries.clone()
    }

    /// The session ids (`sid`, as in the ID tokens) of the current provider
    /// sessions of the user `sub`, in no particular order.
    pub fn session_ids(&self, sub: &str) -> Vec<String> {
        self.state().auth().session_ids(sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_answers() {
        let answer = parse_answer(
            b"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\ncontent-length: 2\r\n\r\nokEXTRA",
        )
        .unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.headers,
            vec![
                ("cache-control".to_owned(), "no-store".to_owned()),
                ("content-length".to_owned(), "2".to_owned())
            ]
        );
        assert_eq!(answer.body, "ok");

        let chunked = parse_answer(
            b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            (chunked.status, chunked.body.as_str()),
            (400, "hello world")
        );

        let no_length = parse_answer(b"HTTP/1.0 204 No Content\r\n\r\n").unwrap();
        assert_eq!((no_length.status, no_length.body.as_str()), (204, ""));

        for bad in [
            &b"HTTP/1.1 200 OK\r\n"[..],
            b"SSH-2.0\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"",
        ] {
            assert!(parse_answer(bad).is_none(), "{bad:?}");
        }
    }
}
