//! The HTTP client used to talk to the provider.
//!
//! Every request to the provider (discovery, keys, and in later versions the token endpoint)
//! goes through one [`HttpClient`], which can be replaced. The default, [`ReqwestClient`]
//! (feature `reqwest`), uses reqwest with rustls on aws-lc-rs and:
//!
//! - connects within 5 s and finishes within 10 s ([`ReqwestClient::with_timeouts`]);
//! - reads at most 1 MiB of a response body ([`ReqwestClient::with_max_body`]);
//! - never follows redirects: a `3xx` is handed back as it is, and the callers treat any status
//!   other than the expected one as an error (see the SSRF advice in openidconnect's docs).

use async_trait::async_trait;

use crate::error::HttpError;

/// A request to the provider: method, URL, headers and a complete body.
pub type HttpRequest = http::Request<Vec<u8>>;
/// A response from the provider with its complete body.
pub type HttpResponse = http::Response<Vec<u8>>;

/// Sends requests to the provider.
///
/// Implementations must enforce their own timeouts and body limits and must not follow
/// redirects: whatever they return is trusted to be the provider's direct answer.
///
/// # Examples
///
/// A client that answers from memory (useful in tests):
///
/// ```
/// use oidc_core::http::{HttpClient, HttpRequest, HttpResponse};
/// use oidc_core::error::HttpError;
///
/// #[derive(Debug)]
/// struct Canned;
///
/// #[async_trait::async_trait]
/// impl HttpClient for Canned {
///     async fn execute(&self, _request: HttpRequest) -> Result<HttpResponse, HttpError> {
///         Ok(http::Response::new(br#"{"keys":[]}"#.to_vec()))
///     }
/// }
/// ```
#[async_trait]
pub trait HttpClient: std::fmt::Debug + Send + Sync + 'static {
    /// Sends the request and returns the provider's answer, whatever its status.
    ///
    /// # Errors
    ///
    /// Returns an [`HttpError`] when no complete answer was received in time or the body
    /// exceeded the client's limit.
    async fn execute(&self, request: HttpRequest) -> Result<HttpResponse, HttpError>;
}

#[cfg(feature = "reqwest")]
pub use self::reqwest_client::ReqwestClient;

#[cfg(feature = "reqwest")]
mod reqwest_client {
    use std::time::Duration;

    use async_trait::async_trait;

    use super::{HttpClient, HttpRequest, HttpResponse};
    use crate::error::{ConfigError, HttpError};

    /// The default [`HttpClient`]: reqwest with rustls, bounded in time and size, no redirects.
    ///
    /// See the [module docs](crate::http) for the defaults.
    #[derive(Debug, Clone)]
    pub struct ReqwestClient {
        client: reqwest::Client,
        max_body: usize,
    }

    impl ReqwestClient {
        /// Builds a client with a 5 s connect timeout, a 10 s total timeout and a 1 MiB body cap.
        ///
        /// # Errors
        ///
        /// Returns [`ConfigError::HttpClient`] when the TLS backend cannot be initialised.
        pub fn new() -> Result<Self, ConfigError> {
            Self::with_timeouts(Duration::from_secs(5), Duration::from_secs(10))
        }

        /// Builds a client with the given connect and total timeouts (1 MiB body cap).
        ///
        /// # Errors
        ///
        /// Returns [`ConfigError::HttpClient`] when the TLS backend cannot be initialised.
        pub fn with_timeouts(connect: Duration, total: Duration) -> Result<Self, ConfigError> {
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(connect)
                .timeout(total)
                .user_agent(concat!("oidc-core/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| ConfigError::HttpClient(std::sync::Arc::new(e)))?;
            Ok(Self {
                client,
                max_body: 1024 * 1024,
            })
        }

        /// Sets the largest response body read, in bytes. The default value is 1 MiB.
        #[must_use]
        pub fn with_max_body(mut self, bytes: usize) -> Self {
            self.max_body = bytes;
            self
        }
    }

    fn map_err(e: reqwest::Error) -> HttpError {
        if e.is_timeout() {
            HttpError::Timeout
        } else if e.is_connect() {
            HttpError::Connect(std::sync::Arc::new(e))
        } else {
            HttpError::Other(std::sync::Arc::new(e))
        }
    }

    #[async_trait]
    impl HttpClient for ReqwestClient {
        async fn execute(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
            let request = reqwest::Request::try_from(request)
                .map_err(|e| HttpError::Other(std::sync::Arc::new(e)))?;
            let mut response = self.client.execute(request).await.map_err(map_err)?;
            if response
                .content_length()
                .is_some_and(|len| len > self.max_body as u64)
            {
                return Err(HttpError::BodyTooLarge {
                    limit: self.max_body,
                });
            }
            let mut builder = http::Response::builder().status(response.status());
            if let Some(headers) = builder.headers_mut() {
                *headers = std::mem::take(response.headers_mut());
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(map_err)? {
                if body.len() + chunk.len() > self.max_body {
                    return Err(HttpError::BodyTooLarge {
                        limit: self.max_body,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            builder
                .body(body)
                .map_err(|e| HttpError::Other(std::sync::Arc::new(e)))
        }
    }
}
