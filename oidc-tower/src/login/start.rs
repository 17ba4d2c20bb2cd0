//! Starting a login: `/auth/login`, `/auth/login/{provider}` and the redirect of an
//! unauthenticated navigation (a transaction stored in the session, then 303 to the provider).

use http::{HeaderValue, Response, header};
use oidc_core::flow::AuthorizeOptions;
use tower_sessions::Session;

use super::layer::LoginConfig;
use super::pages::{flow_error_page, login_page, see_other, session_error_page};
use super::providers::{LoginProvider, ProviderLink};

/// `return_to`, `login_hint` and `prompt` of `/auth/login`.
pub(super) fn options_from_query(query: &str) -> AuthorizeOptions {
    let mut options = AuthorizeOptions::new().with_return_to("/");
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*name {
            "return_to" => options = options.with_return_to(&*value),
            "login_hint" if value.len() <= 256 => {
                options = options.with_login_hint(value.into_owned())
            }
            "prompt" if matches!(&*value, "login" | "consent" | "select_account" | "none") => {
                options = options.with_prompt(value.into_owned());
            }
            _ => {}
        }
    }
    options
}

/// The page listing the providers, each link keeping `return_to` and `login_hint`.
pub(super) fn provider_choice<B: From<String>>(config: &LoginConfig, query: &str) -> Response<B> {
    let kept: String = {
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if matches!(&*name, "return_to" | "login_hint" | "prompt") {
                out.append_pair(&name, &value);
            }
        }
        out.finish()
    };
    let links: Vec<ProviderLink> = config
        .providers
        .iter()
        .map(|p| {
            let mut href = format!("{}/{}", login_link(config), p.name);
            if !kept.is_empty() {
                href.push('?');
                href.push_str(&kept);
            }
            ProviderLink {
                name: p.name.clone(),
                display_name: p.display_name.clone(),
                href,
            }
        })
        .collect();
    let html = match &config.login_page {
        Some(page) => page(&links),
        None => login_page(&links),
    };
    let mut res = Response::new(B::from(html));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    super::pages::no_store(res.headers_mut());
    res
}

/// Stores a new transaction and redirects to the provider.
pub(super) async fn start_login<B: Default + From<String>>(
    config: &LoginConfig,
    provider: &LoginProvider,
    session: &Session,
    options: AuthorizeOptions,
) -> Response<B> {
    let (url, tx) = match provider.client.authorize(&options).await {
        Ok(started) => started,
        Err(e) => return flow_error_page(&e, &login_link(config)),
    };
    match config.sessions.begin(session, tx, config.now()).await {
        Ok(()) => see_other(&url),
        Err(e) => session_error_page(&e, &login_link(config)),
    }
}

pub(super) fn login_link(config: &LoginConfig) -> String {
    format!("{}{}", config.base_path, config.login_path)
}
