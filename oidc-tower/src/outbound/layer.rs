//! The layer of outbound service-token calls.

use std::sync::Arc;

use oidc_core::flow::{ServiceClient, ServiceTokenRequest};
use tower_layer::Layer;

use super::service::OutboundAuth;

/// Adds a service token to every request of an HTTP client service, renewing it on a 401 once.
///
/// Holds only its configuration behind an `Arc`: cloning and layering are cheap. See the
/// [module docs](crate::outbound) for an example.
#[derive(Debug, Clone)]
#[must_use]
pub struct OutboundAuthLayer {
    pub(super) config: Arc<Config>,
}

#[derive(Debug)]
pub(super) struct Config {
    pub(super) client: ServiceClient,
    pub(super) request: ServiceTokenRequest,
}

impl OutboundAuthLayer {
    /// A layer that sends tokens of `client` obtained for `request` (scopes, resource,
    /// audience).
    pub fn new(client: ServiceClient, request: ServiceTokenRequest) -> Self {
        Self {
            config: Arc::new(Config { client, request }),
        }
    }

    /// The service client.
    pub fn client(&self) -> &ServiceClient {
        &self.config.client
    }

    /// What the tokens are asked for.
    pub fn token_request(&self) -> &ServiceTokenRequest {
        &self.config.request
    }
}

impl<S> Layer<S> for OutboundAuthLayer {
    type Service = OutboundAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OutboundAuth {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}
