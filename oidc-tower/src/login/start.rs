//! Starting a login: `/auth/login`, `/auth/login/{provider}` and the redirect of an
//! unauthenticated navigation (a transaction stored in the session, then 303 to the provider).

use http::{HeaderValue, Response, header};
use oidc_core::flow::{AuthorizeOptions, Transaction};
use tower_sessions::cookie::time;
use tower_sessions::{Expiry, Session};

use super::callback::flow_error_page;
use super::layer::LoginConfig;
use super::pages::{login_page, see_other, store_unavailable};
use super::providers::{LoginProvider, ProviderLink};
use super::session::{LOGIN_KEY, TX_KEY, prune};

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
        Err(e) => return flow_error_page(config, &e),
    };
    let now = config.now();
    let mut txs: Vec<Transaction> = match session.get(TX_KEY).await {
        Ok(txs) => txs.unwrap_or_default(),
        Err(e) => {
            tracing::error!(error = %e, "session store failed");
            return store_unavailable();
        }
    };
    txs.push(tx);
    prune(
        &mut txs,
        now,
        config.transaction_lifetime,
        config.max_transactions,
    );
    if let Err(e) = session.insert(TX_KEY, &txs).await {
        tracing::error!(error = %e, "session store failed");
        return store_unavailable();
    }
    // A session that holds only pending logins lives as long as they do, not the idle timeout:
    // login starts without a cookie cost the store minutes each (DOS-03), and the cookie that
    // carries the state lives at most the transaction lifetime (SES-03). The next request's
    // session layer brings back the idle timeout.
    match session.get_value(LOGIN_KEY).await {
        Ok(Some(_)) => {}
        Ok(None) => session.set_expiry(Some(Expiry::OnInactivity(time::Duration::seconds(
            config.transaction_lifetime,
        )))),
        Err(e) => {
            tracing::error!(error = %e, "session store failed");
            return store_unavailable();
        }
    }
    // Written now: when the store is down, the browser gets the 503 page rather than a
    // redirect to a login whose transaction was never stored (tower-sessions would turn the
    // 303 into a bare 500 when its own save fails).
    if let Err(e) = session.save().await {
        tracing::error!(error = %e, "session store failed");
        return store_unavailable();
    }
    see_other(&url)
}

pub(super) fn login_link(config: &LoginConfig) -> String {
    format!("{}{}", config.base_path, config.login_path)
}
