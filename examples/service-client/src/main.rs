//! Service client: a service that calls another API with its own token (OAuth 2.0 client
//! credentials, a Keycloak service account), through `OutboundAuthLayer` over reqwest.
//!
//! The token is obtained on the first call, cached, renewed before it expires, and renewed
//! once more when the API answers 401; the API sees `Authorization: Bearer <token>`.
//!
//! Run with:
//!
//! ```text
//! OIDC_ISSUER=https://id.example.com/realms/demo OIDC_CLIENT_ID=reports \
//!   OIDC_CLIENT_SECRET=… API_URL=https://api.example.com/orders cargo run -p service-client
//! ```
//!
//! Optional: `OIDC_SCOPES` (space separated), `OIDC_RESOURCE` (RFC 8707 resource indicator),
//! `OIDC_AUTH_METHOD` (`client_secret_basic` or `client_secret_post`; default: from discovery).
//! The same call by hand: get a token with
//! `curl -u "$OIDC_CLIENT_ID:$OIDC_CLIENT_SECRET" -d grant_type=client_credentials <token endpoint>`,
//! then `curl -H "Authorization: Bearer $TOKEN" "$API_URL"`.

use std::error::Error;

use oidc_core::Provider;
use oidc_core::flow::{ClientAuth, ServiceClient, ServiceTokenRequest};
use oidc_tower::OutboundAuthLayer;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// reqwest's client as a tower service of `http` requests (reqwest's own `Service` takes
/// `reqwest::Request`). `Vec<u8>` bodies are `Clone`, which the 401 retry needs.
fn reqwest_service(
    client: reqwest::Client,
) -> impl Service<
    http::Request<Vec<u8>>,
    Response = http::Response<reqwest::Body>,
    Error = reqwest::Error,
    Future = impl Send,
> + Clone {
    service_fn(move |request: http::Request<Vec<u8>>| {
        let client = client.clone();
        async move {
            let request = reqwest::Request::try_from(request)?;
            Ok(http::Response::from(client.execute(request).await?))
        }
    })
}

/// The settings, from the environment.
struct Settings {
    issuer: String,
    client_id: String,
    secret: String,
    api_url: String,
    scopes: Vec<String>,
    resource: Option<String>,
    auth: Option<ClientAuth>,
}

/// Calls `api_url` once with a service token; returns the status and the body.
async fn call(settings: &Settings) -> Result<(u16, String), Box<dyn Error + Send + Sync>> {
    let provider = Provider::builder(settings.issuer.as_str()).build()?;
    let mut client = ServiceClient::new(provider, &settings.client_id, &settings.secret);
    if let Some(auth) = settings.auth {
        client = client.with_auth_method(auth);
    }
    let mut request = ServiceTokenRequest::new().with_scopes(&settings.scopes);
    if let Some(resource) = &settings.resource {
        request = request.with_resource(resource);
    }
    let api = ServiceBuilder::new()
        .layer(OutboundAuthLayer::new(client, request))
        .service(reqwest_service(reqwest::Client::new()));
    let response = api
        .oneshot(http::Request::get(&settings.api_url).body(Vec::new())?)
        .await?;
    let status = response.status().as_u16();
    let body = reqwest::Response::from(response).text().await?;
    Ok((status, body))
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "service_client=debug,oidc_core=debug".into()),
        )
        .init();
    let auth = match std::env::var("OIDC_AUTH_METHOD").ok().as_deref() {
        None => None,
        Some("client_secret_basic") => Some(ClientAuth::ClientSecretBasic),
        Some("client_secret_post") => Some(ClientAuth::ClientSecretPost),
        Some(other) => return Err(format!("unknown OIDC_AUTH_METHOD {other:?}").into()),
    };
    let settings = Settings {
        issuer: env("OIDC_ISSUER")?,
        client_id: env("OIDC_CLIENT_ID")?,
        secret: env("OIDC_CLIENT_SECRET")?,
        api_url: env("API_URL")?,
        scopes: std::env::var("OIDC_SCOPES")
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        resource: std::env::var("OIDC_RESOURCE").ok(),
        auth,
    };
    let (status, body) = call(&settings).await?;
    println!("{status}\n{body}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use oidc_axum::Authenticated;
    use oidc_core::AccessTokenVerifier;
    use oidc_testing::{ClientRegistration, TestProvider};
    use oidc_tower::BearerAuthLayer;

    #[tokio::test]
    async fn calls_a_bearer_protected_api_with_a_service_token() {
        let op = TestProvider::start().await;
        op.register_client(ClientRegistration::confidential(
            "reports",
            "s3cret",
            "http://127.0.0.1/unused",
        ));
        let verifier = AccessTokenVerifier::new(
            Provider::builder(op.issuer()).build().unwrap(),
            "https://api.example.test",
        );
        let app = Router::new()
            .route(
                "/whoami",
                get(|Authenticated(id): Authenticated| async move { id.subject().to_owned() }),
            )
            .layer(BearerAuthLayer::new(verifier));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_url = format!("http://{}/whoami", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let mut settings = Settings {
            issuer: op.issuer(),
            client_id: "reports".to_owned(),
            secret: "s3cret".to_owned(),
            api_url,
            scopes: vec!["api:read".to_owned()],
            resource: Some("https://api.example.test".to_owned()),
            auth: None,
        };
        assert_eq!(call(&settings).await.unwrap(), (200, "reports".to_owned()));
        // A token for another resource is refused by the API (after the one retry).
        settings.resource = Some("https://other.example.test".to_owned());
        assert_eq!(call(&settings).await.unwrap().0, 401);
    }
}
