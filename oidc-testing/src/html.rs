//! The provider's few HTML pages: minimal, self-contained (no external
//! resources, no script) and escaping everything they echo.

use std::fmt::Write as _;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;\
padding:0 1rem;color:#222}label{display:block;margin:.5rem 0 .25rem}\
input[type=text]{width:100%;padding:.4rem;box-sizing:border-box}\
button{margin-top:1rem;padding:.5rem 1.5rem}.note{color:#777;font-size:.85rem}\
.error{color:#a00}code{word-break:break-all}";

/// A complete page with the security headers every page gets.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} · oidc-testing</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>{title}</h1>\n{body}\n<p class=\"note\">oidc-testing: an in-process OpenID \
         Provider for tests. Its keys are public: never trust it outside tests.</p>\n\
         </body>\n</html>\n",
        title = escape(title),
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// The login form. `request` are the authorization request's parameters,
/// carried as hidden fields to `POST /login`.
pub(crate) fn login_form(
    issuer: &str,
    client_id: &str,
    request: &[(String, String)],
    username: &str,
    message: Option<&str>,
) -> Response {
    let mut body = format!(
        "<p>Test provider <code>{}</code> asks you to sign in for the client \
         <code>{}</code>. Any username works; there is no password.</p>\n",
        escape(issuer),
        escape(client_id),
    );
    if let Some(message) = message {
        let _ = writeln!(body, "<p class=\"error\">{}</p>", escape(message));
    }
    body.push_str("<form method=\"post\" action=\"/login\">\n");
    let _ = writeln!(
        body,
        "<label for=\"username\">Username</label>\n\
         <input type=\"text\" id=\"username\" name=\"username\" value=\"{}\" \
         autocomplete=\"username\" required autofocus>",
        escape(username),
    );
    for (name, value) in request {
        let _ = writeln!(
            body,
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            escape(name),
            escape(value),
        );
    }
    body.push_str("<button type=\"submit\" id=\"sign-in\">Sign in</button>\n</form>");
    page(StatusCode::OK, "Sign in", &body)
}

/// An error page (for requests that cannot be answered with a redirect).
pub(crate) fn error_page(status: StatusCode, error: &str, description: &str) -> Response {
    let body = format!(
        "<p class=\"error\"><code>{}</code></p>\n<p>{}</p>",
        escape(error),
        escape(description),
    );
    page(status, "Request rejected", &body)
}

/// The page shown after a logout without `post_logout_redirect_uri`.
pub(crate) fn logged_out_page() -> Response {
    page(
        StatusCode::OK,
        "You are logged out",
        "<p>Your session at the test provider has ended.</p>",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<script>alert('x&y')</script>\""),
            "&lt;script&gt;alert(&#39;x&amp;y&#39;)&lt;/script&gt;&quot;"
        );
    }
}
