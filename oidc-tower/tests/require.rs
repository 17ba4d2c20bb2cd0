//! HTTP-level answers of `RequireLayer` behind `BearerAuthLayer`, black-box, against an
//! in-process OpenID Provider. Tests are named after the case ids of `SECURITY-CASES.md`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::convert::Infallible;

use http::{Request, Response, StatusCode, header};
use oidc_core::Identity;
use oidc_testing::{TestProvider, TokenBuilder};
use oidc_tower::{AuthError, AuthErrorKind, BearerAuthLayer, RequireLayer};
use serde_json::json;
use tower::{Layer as _, Service, ServiceBuilder, ServiceExt as _};

use common::{
    Calls, INVALID_TOKEN, assert_authenticated, assert_rejected, bearer, echo, request, send,
    verifier,
};

/// `Bearer realm="api", error="insufficient_scope"` plus the scope attribute (if any) and the
/// description.
fn insufficient(scope: Option<&str>, description: &str) -> String {
    let scope = scope
        .map(|s| format!(r#", scope="{s}""#))
        .unwrap_or_default();
    format!(
        r#"Bearer realm="api", error="insufficient_scope"{scope}, error_description="{description}""#
    )
}

const SCOPE_MISSING: &str = "a required scope is missing";
const NO_ACCEPTED_SCOPE: &str = "none of the accepted scopes was granted";
const ROLE_MISSING: &str = "a required role is missing";
const NO_ACCEPTED_ROLE: &str = "none of the accepted roles was granted";

fn kind(res: &Response<String>) -> AuthErrorKind {
    res.extensions().get::<AuthError>().unwrap().kind()
}

/// The echo service behind a default `BearerAuthLayer` for `tp` and then `require`.
fn protected(
    tp: &TestProvider,
    require: RequireLayer,
    calls: &Calls,
) -> impl Service<Request<String>, Response = Response<String>, Error = Infallible> + Clone {
    ServiceBuilder::new()
        .layer(BearerAuthLayer::new(verifier(tp)))
        .layer(require)
        .service(echo(calls))
}

/// The echo service behind `BearerAuthLayer` with `allow_anonymous(true)` and then
/// `RequireLayer::scopes(["api:read"])`.
fn anonymous_then_required(
    tp: &TestProvider,
    calls: &Calls,
) -> impl Service<Request<String>, Response = Response<String>, Error = Infallible> + Clone {
    ServiceBuilder::new()
        .layer(BearerAuthLayer::new(verifier(tp)).allow_anonymous(true))
        .layer(RequireLayer::scopes(["api:read"]))
        .service(echo(calls))
}

#[tokio::test]
async fn at_10_missing_scope_403_insufficient_scope() {
    let tp = TestProvider::start().await;
    let calls = Calls::default();
    let svc = protected(&tp, RequireLayer::scopes(["api:write"]), &calls);

    // The default token has "openid api:read".
    let res = send(&svc, bearer(&tp.token().sign())).await;
    assert_rejected(
        &res,
        StatusCode::FORBIDDEN,
        Some(
            r#"Bearer realm="api", error="insufficient_scope", scope="api:write", error_description="a required scope is missing""#,
        ),
    );
    let error = res.extensions().get::<AuthError>().unwrap();
    assert_eq!(error.kind(), AuthErrorKind::InsufficientScope);
    assert_eq!(error.required_scopes(), ["api:write".to_owned()]);
    assert!(res.extensions().get::<Identity>().is_none());
    assert_eq!(calls.get(), 0);

    let token = tp.token().scope("openid api:read api:write").sign();
    let res = send(&svc, bearer(&token)).await;
    assert_authenticated(&res, "with api:write");
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn at_10_authentication_is_checked_before_requirements() {
    let tp = TestProvider::start().await;
    let calls = Calls::default();
    let svc = protected(&tp, RequireLayer::scopes(["api:write"]), &calls);

    // A forged token that claims the scope is still only an invalid token.
    let forged = tp.token().scope("api:write").sign_with_foreign_key();
    let res = send(&svc, bearer(&forged)).await;
    assert_rejected(&res, StatusCode::UNAUTHORIZED, Some(INVALID_TOKEN));

    let res = send(&svc, request(&[])).await;
    assert_rejected(
        &res,
        StatusCode::UNAUTHORIZED,
        Some(r#"Bearer realm="api""#),
    );
    assert_eq!(calls.get(), 0);
}

type Edit = fn(TokenBuilder) -> TokenBuilder;

#[tokio::test]
async fn at_10_requirements_table() {
    let tp = TestProvider::start().await;

    let default: Edit = |t| t;
    let read_write: Edit = |t| t.scope("openid api:read api:write");
    let roles_admin: Edit = |t| t.claim("roles", json!(["admin", "editor"]));
    let groups_admin: Edit = |t| t.claim("groups", json!(["admin"]));
    let realm_admin: Edit = |t| t.claim("realm_access", json!({"roles": ["admin"]}));
    let admin_and_ops: Edit = |t| {
        t.claim("roles", json!(["admin"]))
            .claim("groups", json!(["ops"]))
    };
    let groups_owner: Edit = |t| t.claim("groups", json!(["owner"]));
    let roles_viewer: Edit = |t| t.claim("roles", json!(["viewer"]));
    let roles_string: Edit = |t| t.claim("roles", "admin");
    let scope_admin: Edit = |t| t.scope("openid admin");
    let admin_read_write: Edit = |t| {
        t.scope("api:read api:write")
            .claim("roles", json!(["admin"]))
    };
    let scp_array: Edit = |t| t.without_claim("scope").claim("scp", json!(["api:write"]));

    let cases: Vec<(&str, RequireLayer, Edit, Option<String>)> = vec![
        // scopes: all of
        (
            "scopes ok",
            RequireLayer::scopes(["api:read"]),
            default,
            None,
        ),
        (
            "scopes several ok",
            RequireLayer::scopes(["api:read", "api:write"]),
            read_write,
            None,
        ),
        (
            "scopes one missing",
            RequireLayer::scopes(["api:read", "api:write"]),
            default,
            Some(insufficient(Some("api:read api:write"), SCOPE_MISSING)),
        ),
        (
            "scopes are case sensitive",
            RequireLayer::scopes(["API:READ"]),
            default,
            Some(insufficient(Some("API:READ"), SCOPE_MISSING)),
        ),
        (
            "scopes match whole values",
            RequireLayer::scopes(["api"]),
            default,
            Some(insufficient(Some("api"), SCOPE_MISSING)),
        ),
        (
            "roles are not scopes",
            RequireLayer::scopes(["admin"]),
            roles_admin,
            Some(insufficient(Some("admin"), SCOPE_MISSING)),
        ),
        (
            "scp array is read",
            RequireLayer::scopes(["api:write"]),
            scp_array,
            None,
        ),
        // any_scope
        (
            "any_scope ok",
            RequireLayer::any_scope(["api:write", "api:read"]),
            default,
            None,
        ),
        (
            "any_scope none",
            RequireLayer::any_scope(["api:write", "api:admin"]),
            default,
            Some(insufficient(Some("api:write api:admin"), NO_ACCEPTED_SCOPE)),
        ),
        // roles: all of, from roles, groups and realm_access.roles
        (
            "roles from roles",
            RequireLayer::roles(["admin"]),
            roles_admin,
            None,
        ),
        (
            "roles from groups",
            RequireLayer::roles(["admin"]),
            groups_admin,
            None,
        ),
        (
            "roles from realm_access.roles",
            RequireLayer::roles(["admin"]),
            realm_admin,
            None,
        ),
        (
            "roles across claims",
            RequireLayer::roles(["admin", "ops"]),
            admin_and_ops,
            None,
        ),
        (
            "roles one missing",
            RequireLayer::roles(["admin", "ops"]),
            roles_admin,
            Some(insufficient(None, ROLE_MISSING)),
        ),
        (
            "roles none",
            RequireLayer::roles(["admin"]),
            default,
            Some(insufficient(None, ROLE_MISSING)),
        ),
        (
            "roles as a string are not read",
            RequireLayer::roles(["admin"]),
            roles_string,
            Some(insufficient(None, ROLE_MISSING)),
        ),
        (
            "scopes are not roles",
            RequireLayer::roles(["admin"]),
            scope_admin,
            Some(insufficient(None, ROLE_MISSING)),
        ),
        // any_role
        (
            "any_role ok",
            RequireLayer::any_role(["admin", "owner"]),
            groups_owner,
            None,
        ),
        (
            "any_role none",
            RequireLayer::any_role(["admin", "owner"]),
            roles_viewer,
            Some(insufficient(None, NO_ACCEPTED_ROLE)),
        ),
        // combinations
        (
            "any_role and_scopes, scope missing",
            RequireLayer::any_role(["admin", "owner"]).and_scopes(["api:write"]),
            roles_admin,
            Some(insufficient(Some("api:write"), SCOPE_MISSING)),
        ),
        (
            "any_role and_scopes, role missing",
            RequireLayer::any_role(["admin", "owner"]).and_scopes(["api:write"]),
            read_write,
            Some(insufficient(Some("api:write"), NO_ACCEPTED_ROLE)),
        ),
        (
            "any_role and_scopes ok",
            RequireLayer::any_role(["admin", "owner"]).and_scopes(["api:write"]),
            admin_read_write,
            None,
        ),
        (
            "scopes and_roles, role missing",
            RequireLayer::scopes(["api:read"]).and_roles(["admin"]),
            default,
            Some(insufficient(Some("api:read"), ROLE_MISSING)),
        ),
        (
            "scopes and_roles ok",
            RequireLayer::scopes(["api:read"]).and_roles(["admin"]),
            admin_read_write,
            None,
        ),
        (
            "and_scopes accumulates",
            RequireLayer::scopes(["api:read"]).and_scopes(["api:write"]),
            default,
            Some(insufficient(Some("api:read api:write"), SCOPE_MISSING)),
        ),
        (
            "and_roles accumulates",
            RequireLayer::roles(["admin"]).and_roles(["ops"]),
            roles_admin,
            Some(insufficient(None, ROLE_MISSING)),
        ),
        (
            "and_roles accumulates ok",
            RequireLayer::roles(["admin"]).and_roles(["ops"]),
            admin_and_ops,
            None,
        ),
    ];

    for (name, layer, edit, want) in cases {
        let calls = Calls::default();
        let svc = protected(&tp, layer, &calls);
        let res = send(&svc, bearer(&edit(tp.token()).sign())).await;
        match want {
            None => {
                assert_eq!(res.status(), StatusCode::OK, "{name}");
                assert!(
                    res.headers().get(header::WWW_AUTHENTICATE).is_none(),
                    "{name}"
                );
                assert_eq!(calls.get(), 1, "{name}");
            }
            Some(challenge) => {
                assert_eq!(res.status(), StatusCode::FORBIDDEN, "{name}");
                assert_eq!(
                    res.headers()[header::WWW_AUTHENTICATE].to_str().unwrap(),
                    challenge,
                    "{name}"
                );
                assert_rejected(&res, StatusCode::FORBIDDEN, Some(&challenge));
                assert_eq!(kind(&res), AuthErrorKind::InsufficientScope, "{name}");
                assert_eq!(calls.get(), 0, "{name}");
            }
        }
    }
}

#[tokio::test]
async fn at_10_with_realm_and_custom_rejection() {
    let tp = TestProvider::start().await;
    let calls = Calls::default();
    let token = tp.token().sign();

    let require = RequireLayer::scopes(["api:write"]).with_realm("orders");
    let svc = protected(&tp, require, &calls);
    let res = svc.oneshot(bearer(&token)).await.unwrap();
    assert_rejected(
        &res,
        StatusCode::FORBIDDEN,
        Some(
            r#"Bearer realm="orders", error="insufficient_scope", scope="api:write", error_description="a required scope is missing""#,
        ),
    );

    let svc = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(verifier(&tp)))
        .layer(
            RequireLayer::scopes(["api:write"]).with_rejection(|e: &AuthError| {
                let mut res = Response::new(format!("missing {}", e.required_scopes().join(",")));
                *res.status_mut() = e.status();
                res
            }),
        )
        .service(echo(&calls));
    let res = svc.oneshot(bearer(&token)).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.body(), "missing api:write");
    assert!(res.headers().get(header::WWW_AUTHENTICATE).is_none());
    assert_eq!(calls.get(), 0);
}

#[tokio::test]
async fn at_10_without_bearer_layer_500_and_inner_not_called() {
    let tp = TestProvider::start().await;
    let calls = Calls::default();
    let layers = [
        RequireLayer::scopes(["api:read"]),
        RequireLayer::any_scope(["api:read"]),
        RequireLayer::roles(["admin"]),
        RequireLayer::any_role(["admin"]),
    ];
    for layer in layers {
        let svc = layer.layer(echo(&calls));
        // Even with a perfectly valid token: nothing verified it, so nothing is let through.
        for req in [request(&[]), bearer(&tp.token().sign())] {
            let res = send(&svc, req).await;
            assert_rejected(&res, StatusCode::INTERNAL_SERVER_ERROR, None);
            let error = res.extensions().get::<AuthError>().unwrap();
            assert_eq!(error.kind(), AuthErrorKind::MissingLayer);
            assert!(error.to_string().contains("BearerAuthLayer"));
        }
    }
    assert_eq!(calls.get(), 0);
    assert_eq!(tp.jwks_fetch_count(), 0);
}

#[tokio::test]
async fn at_10_layer_order_matters_require_outside_bearer_is_500() {
    // `ServiceBuilder` applies layers top-down: here `RequireLayer` sees the request before
    // the bearer layer and so fails closed.
    let tp = TestProvider::start().await;
    let calls = Calls::default();
    let svc = ServiceBuilder::new()
        .layer(RequireLayer::scopes(["api:read"]))
        .layer(BearerAuthLayer::new(verifier(&tp)))
        .service(echo(&calls));
    let res = svc.oneshot(bearer(&tp.token().sign())).await.unwrap();
    assert_rejected(&res, StatusCode::INTERNAL_SERVER_ERROR, None);
    assert_eq!(calls.get(), 0);
}

#[tokio::test]
async fn at_02_anonymous_request_to_a_required_route_fails_closed() {
    // `allow_anonymous(true)` in front, a requirement behind: a request without credentials
    // must never reach the inner service.
    let tp = TestProvider::start().await;
    let calls = Calls::default();
    let svc = anonymous_then_required(&tp, &calls);
    let res = send(&svc, request(&[])).await;
    assert!(!res.status().is_success(), "{}", res.status());
    assert_eq!(calls.get(), 0);

    let res = svc.oneshot(bearer(&tp.token().sign())).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn at_02_anonymous_request_to_a_required_route_401() {
    let tp = TestProvider::start().await;
    let calls = Calls::default();
    let svc = anonymous_then_required(&tp, &calls);
    let res = svc.oneshot(request(&[])).await.unwrap();
    assert_rejected(
        &res,
        StatusCode::UNAUTHORIZED,
        Some(r#"Bearer realm="api""#),
    );
    assert_eq!(calls.get(), 0);
}

#[tokio::test]
async fn at_10_403_names_the_realm_of_the_authenticating_layer() {
    // The bearer layer's realm, not a default of the requirement layer: the 403 names the
    // same realm as the 401s of the layer that authenticated the request.
    let tp = TestProvider::start().await;
    let calls = Calls::default();
    let svc = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(verifier(&tp)).with_realm("orders"))
        .layer(RequireLayer::scopes(["api:write"]))
        .service(echo(&calls));
    let token = tp.token().sign();
    // Twice: the second request is answered from the token cache.
    for _ in 0..2 {
        let res = send(&svc, bearer(&token)).await;
        assert_rejected(
            &res,
            StatusCode::FORBIDDEN,
            Some(
                r#"Bearer realm="orders", error="insufficient_scope", scope="api:write", error_description="a required scope is missing""#,
            ),
        );
    }
    assert_eq!(calls.get(), 0);

    // A realm set on the requirement layer itself still wins.
    let svc = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(verifier(&tp)).with_realm("orders"))
        .layer(RequireLayer::scopes(["api:write"]).with_realm("admin"))
        .service(echo(&calls));
    let res = send(&svc, bearer(&token)).await;
    assert_rejected(
        &res,
        StatusCode::FORBIDDEN,
        Some(
            r#"Bearer realm="admin", error="insufficient_scope", scope="api:write", error_description="a required scope is missing""#,
        ),
    );
    assert_eq!(calls.get(), 0);
}
