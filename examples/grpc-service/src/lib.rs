//! A tonic gRPC service behind `BearerAuthLayer`, with a scope per method; and the same layer
//! in front of a plain hyper service.
//!
//! - [`grpc_app`]: the `orders.Orders` service (methods `List` and `Cancel`). Every call needs
//!   a valid bearer token; `List` needs the scope `api:read`, `Cancel` needs
//!   `api:write`. Each method is a route of its own with its [`RequireLayer`]; a method
//!   without a route (one added to the service later, or a probe) answers `UNIMPLEMENTED`, so
//!   no method is reachable without the scope written next to it (an allow-list).
//!   Refusals are gRPC statuses ([`GrpcRejection`]): `UNAUTHENTICATED` (16) for a missing or
//!   invalid token, `PERMISSION_DENIED` (7) for a missing scope, with the RFC 6750
//!   `www-authenticate` challenge in the response metadata.
//! - [`hyper_app`]: a hyper `service_fn` (no framework) behind the same layer, answering
//!   with the caller's `sub`; refusals are the usual 401/403 with `WWW-Authenticate`.
//!
//! The handlers read the verified caller from the request extensions
//! ([`oidc_core::Identity`]); tonic hands them over in `Request::extensions`.

use std::convert::Infallible;

pub mod serve;

use http::{HeaderValue, Request, Response, header};
use oidc_core::{AccessTokenVerifier, Identity};
use oidc_tower::{BearerAuthLayer, GrpcRejection, RequireLayer};
use tower::Layer;

/// The generated client and server of `orders.Orders` (see `build.rs`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/orders.Orders.rs"));
}

/// `orders.ListRequest`: no fields.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListRequest {}

/// `orders.ListReply`: the caller and their orders.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListReply {
    /// The caller's `sub`.
    #[prost(string, tag = "1")]
    pub subject: String,
    /// The order ids.
    #[prost(string, repeated, tag = "2")]
    pub orders: Vec<String>,
}

/// `orders.CancelRequest`: the order to cancel.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CancelRequest {
    /// The order id.
    #[prost(string, tag = "1")]
    pub id: String,
}

/// `orders.CancelReply`: who cancelled what.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CancelReply {
    /// The order id.
    #[prost(string, tag = "1")]
    pub id: String,
    /// The caller's `sub`.
    #[prost(string, tag = "2")]
    pub cancelled_by: String,
}

/// The orders service: answers with the verified caller's `sub`.
#[derive(Debug, Clone, Default)]
pub struct OrdersService;

fn caller<T>(request: &tonic::Request<T>) -> Result<String, tonic::Status> {
    request
        .extensions()
        .get::<Identity>()
        .map(|id| id.subject().to_owned())
        // Unreachable behind the layer; refuse rather than serve anonymously.
        .ok_or_else(|| tonic::Status::unauthenticated("no verified caller"))
}

#[tonic::async_trait]
impl proto::orders_server::Orders for OrdersService {
    async fn list(
        &self,
        request: tonic::Request<ListRequest>,
    ) -> Result<tonic::Response<ListReply>, tonic::Status> {
        let subject = caller(&request)?;
        Ok(tonic::Response::new(ListReply {
            orders: vec![format!("{subject}-1"), format!("{subject}-2")],
            subject,
        }))
    }

    async fn cancel(
        &self,
        request: tonic::Request<CancelRequest>,
    ) -> Result<tonic::Response<CancelReply>, tonic::Status> {
        let cancelled_by = caller(&request)?;
        Ok(tonic::Response::new(CancelReply {
            id: request.into_inner().id,
            cancelled_by,
        }))
    }
}

/// The scope each method requires: the allow-list of reachable methods.
pub const METHOD_SCOPES: [(&str, &str); 2] = [
    ("/orders.Orders/List", "api:read"),
    ("/orders.Orders/Cancel", "api:write"),
];

/// The gRPC service behind `BearerAuthLayer`, a [`RequireLayer`] per method (see
/// [`METHOD_SCOPES`]). Serve it with tonic's server: `Routes::from(grpc_app(verifier))`.
pub fn grpc_app(verifier: AccessTokenVerifier) -> axum::Router {
    let orders = proto::orders_server::OrdersServer::new(OrdersService);
    let mut router = axum::Router::new();
    for (path, scope) in METHOD_SCOPES {
        let require = RequireLayer::scopes([scope]).with_rejection(GrpcRejection);
        router = router.route_service(path, require.layer(orders.clone()));
    }
    router
        .fallback(|| async { unimplemented_status() })
        .layer(BearerAuthLayer::new(verifier).with_rejection(GrpcRejection))
}

/// A trailers-only `UNIMPLEMENTED` answer.
fn unimplemented_status() -> Response<axum::body::Body> {
    let mut res = Response::new(axum::body::Body::empty());
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from_static("12"));
    headers.insert("grpc-message", HeaderValue::from_static("unknown method"));
    res
}

/// A plain hyper-style service (a `tower::service_fn`) behind `BearerAuthLayer` and the scope
/// `api:read`:
/// `GET` anything answers `hello {sub}`. Serve it with hyper through
/// `hyper_util::service::TowerToHyperService`.
pub fn hyper_app(
    verifier: AccessTokenVerifier,
) -> impl tower::Service<
    Request<hyper::body::Incoming>,
    Response = Response<String>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    let hello = tower::service_fn(|req: Request<hyper::body::Incoming>| async move {
        let who = req
            .extensions()
            .get::<Identity>()
            .map_or("nobody", |id| id.subject())
            .to_owned();
        Ok::<_, Infallible>(Response::new(format!("hello {who}")))
    });
    BearerAuthLayer::new(verifier).layer(RequireLayer::scopes(["api:read"]).layer(hello))
}
