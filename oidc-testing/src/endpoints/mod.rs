//! The provider's HTTP endpoints, one file each: the handler, the request
//! and response types it alone uses, and the [`TestProvider`](crate::TestProvider)
//! knobs and recordings that change or observe it.
//!
//! Every endpoint reads and writes the state of `state.rs`; a helper used by
//! several endpoints lives in `reply.rs` (responses) or `cookie.rs` (the
//! provider session cookie). A new endpoint is a new file plus a route in
//! [`router`].

mod authorize;
mod cookie;
pub(crate) mod device;
mod discovery;
mod end_session;
pub(crate) mod introspection;
mod jwks;
mod reply;
pub(crate) mod revocation;
mod token;
mod userinfo;

use axum::Router;
use axum::routing::{get, post};

use crate::state::ServerState;

use self::authorize::{AUTHORIZE_PATH, LOGIN_PATH};
use self::device::DEVICE_AUTHORIZATION_PATH;
use self::discovery::{OAUTH_METADATA_PATH, OPENID_CONFIGURATION_PATH};
use self::end_session::END_SESSION_PATH;
use self::introspection::INTROSPECTION_PATH;
use self::jwks::JWKS_PATH;
use self::revocation::REVOCATION_PATH;
use self::token::TOKEN_PATH;
use self::userinfo::USERINFO_PATH;

/// The provider's routes over `state`.
pub(crate) fn router(state: ServerState) -> Router {
    Router::new()
        .route(
            OPENID_CONFIGURATION_PATH,
            get(discovery::openid_configuration),
        )
        .route(OAUTH_METADATA_PATH, get(discovery::oauth_metadata))
        .route(JWKS_PATH, get(jwks::jwks))
        .route(
            AUTHORIZE_PATH,
            get(authorize::authorize_get).post(authorize::authorize_post),
        )
        .route(LOGIN_PATH, post(authorize::login))
        .route(TOKEN_PATH, post(token::token))
        .route(INTROSPECTION_PATH, post(introspection::introspect))
        .route(
            DEVICE_AUTHORIZATION_PATH,
            post(device::device_authorization),
        )
        .route(REVOCATION_PATH, post(revocation::revoke))
        .route(
            USERINFO_PATH,
            get(userinfo::userinfo).post(userinfo::userinfo),
        )
        .route(
            END_SESSION_PATH,
            get(end_session::end_session_get).post(end_session::end_session_post),
        )
        .with_state(state)
}
