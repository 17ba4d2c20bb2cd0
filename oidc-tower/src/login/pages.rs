//! The few HTML pages the login layer answers with itself, and the one place where the
//! errors of a login ([`FlowError`] of the provider, [`SessionError`] of the sessions) become
//! pages.

use http::{HeaderValue, Response, StatusCode, header};
use oidc_core::error::{FlowError, FlowErrorKind};

use super::sessions::SessionError;

/// The page for a failed session operation; `again` is the link to start a login again.
///
/// The store and the registry failing is a 503 (fail closed); a sign-in response that does
/// not belong to a pending login of this browser, or came too late, a 400 with the link; a
/// provider session logged out while its login finished, a 401.
pub(crate) fn session_error_page<B: From<String>>(
    error: &SessionError,
    again: &str,
) -> Response<B> {
    match error {
        SessionError::UnknownTransaction => unbound(
            "This sign-in response does not belong to a sign-in started in this browser, or that sign-in has expired.",
            again,
        ),
        SessionError::ExpiredTransaction => {
            unbound("This sign-in took too long. Please start again.", again)
        }
        SessionError::ProviderSessionEnded => {
            crate::metrics::event("oidc_logins_total", "outcome", "refused");
            tracing::info!(target: "oidc::rejection", "the provider session ended during the login");
            error_page(
                StatusCode::UNAUTHORIZED,
                "You were signed out at the identity provider. Please sign in again.",
                Some(again),
            )
        }
        SessionError::Provider(e) => flow_error_page(e, again),
        error => {
            tracing::error!(%error, "session handling failed");
            store_unavailable()
        }
    }
}

/// 400 for a sign-in response this browser cannot use, with the link to start again.
pub(crate) fn unbound<B: From<String>>(message: &str, again: &str) -> Response<B> {
    tracing::info!(target: "oidc::rejection", message, "callback refused");
    error_page(StatusCode::BAD_REQUEST, message, Some(again))
}

/// The page for a provider that refused (401), failed (502) or was silent (504).
pub(crate) fn flow_error_page<B: From<String>>(error: &FlowError, again: &str) -> Response<B> {
    match error.kind() {
        FlowErrorKind::Unbound => {
            tracing::info!(target: "oidc::rejection", %error, "callback not bound to this browser");
            error_page(
                StatusCode::BAD_REQUEST,
                "This sign-in response does not belong to a sign-in started in this browser, or that sign-in has expired.",
                Some(again),
            )
        }
        FlowErrorKind::Rejected => {
            tracing::info!(target: "oidc::rejection", %error, "authentication failed");
            error_page(StatusCode::UNAUTHORIZED, "Sign-in failed.", Some(again))
        }
        FlowErrorKind::Misconfigured => {
            tracing::error!(target: "oidc::rejection", %error, "login misconfigured");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The server is misconfigured.",
                None,
            )
        }
        FlowErrorKind::Timeout => {
            tracing::error!(target: "oidc::rejection", %error, "identity provider timed out");
            error_page(
                StatusCode::GATEWAY_TIMEOUT,
                "The identity provider did not answer in time.",
                Some(again),
            )
        }
        _ => {
            tracing::error!(target: "oidc::rejection", %error, "identity provider failed");
            error_page(
                StatusCode::BAD_GATEWAY,
                "The identity provider could not be reached or answered incorrectly.",
                Some(again),
            )
        }
    }
}

/// A login that failed after the token request: counted, then the error page.
pub(crate) fn login_failed<B: From<String>>(error: &FlowError, again: &str) -> Response<B> {
    let outcome = if error.kind() == FlowErrorKind::Rejected {
        "refused"
    } else {
        "failed"
    };
    crate::metrics::event("oidc_logins_total", "outcome", outcome);
    flow_error_page(error, again)
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// A small error page: the status, an escaped message and a link to start again.
pub(crate) fn error_page<B: From<String>>(
    status: StatusCode,
    message: &str,
    again: Option<&str>,
) -> Response<B> {
    let link = again.map_or_else(String::new, |href| {
        format!("<p><a href=\"{}\">Sign in again</a></p>", escape(href))
    });
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{code}</title></head>\
         <body><h1>{code} {reason}</h1><p>{message}</p>{link}</body></html>",
        code = status.as_u16(),
        reason = escape(status.canonical_reason().unwrap_or("")),
        message = escape(message),
    );
    let mut res = Response::new(B::from(body));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    no_store(h);
    res
}

/// The default page listing the providers (several configured).
pub(crate) fn login_page(links: &[super::providers::ProviderLink]) -> String {
    let items: String = links
        .iter()
        .map(|l| {
            format!(
                "<li><a href=\"{}\">{}</a></li>",
                escape(&l.href),
                escape(&l.display_name)
            )
        })
        .collect();
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign in</title></head>\
         <body><h1>Sign in</h1><ul>{items}</ul></body></html>"
    )
}

/// `Cache-Control: no-store` and `Referrer-Policy: no-referrer` (CB-12).
pub(crate) fn no_store(h: &mut http::HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
}

/// A bare 303 with no body.
pub(crate) fn see_other<B: Default>(location: &str) -> Response<B> {
    let mut res = Response::new(B::default());
    *res.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    no_store(res.headers_mut());
    res
}

/// An empty response with a status.
pub(crate) fn status<B: Default>(status: StatusCode) -> Response<B> {
    let mut res = Response::new(B::default());
    *res.status_mut() = status;
    no_store(res.headers_mut());
    res
}

/// The page for a session store that failed: 503, try again.
pub(crate) fn store_unavailable<B: From<String>>() -> Response<B> {
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "The session store is unavailable. Please try again shortly.",
        None,
    )
}

/// The page for a request whose session handle is missing: the layer puts the session
/// manager around its logic itself, so this is an internal error (a service between the two
/// that dropped the request's extensions).
pub(crate) fn missing_session_layer<B: From<String>>() -> Response<B> {
    tracing::error!(
        target: "oidc::rejection",
        "no session handle in the request's extensions (internal error of the login layer)"
    );
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "The server is misconfigured.",
        None,
    )
}

/// 405 with the allowed methods.
pub(crate) fn method_not_allowed<B: Default>(allow: &'static str) -> Response<B> {
    let mut res = status(StatusCode::METHOD_NOT_ALLOWED);
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cb_04_error_text_is_escaped() {
        let res: Response<String> = error_page(
            StatusCode::UNAUTHORIZED,
            "<script>alert(1)</script>",
            Some("/a\"b"),
        );
        let body = res.body();
        assert!(!body.contains("<script>"));
        assert!(body.contains("&lt;script&gt;"));
        assert!(body.contains("href=\"/a&quot;b\""));
    }
}
