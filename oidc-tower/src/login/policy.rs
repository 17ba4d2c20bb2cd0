//! Navigation or API: how an unauthenticated request is answered.

use http::{Method, header, request::Parts};

/// What to do with a request that needs a login and has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unauthenticated {
    /// 303 to the provider, with a new login transaction (top-level browser navigation).
    Redirect,
    /// 401, no redirect and no transaction stored (XHR, JSON, non-GET).
    Reject,
}

/// The default decision (SES-07): a top-level browser navigation is redirected, anything else
/// is rejected.
///
/// A navigation is a `GET` or `HEAD` that is not marked as XHR (`X-Requested-With`) and that
/// either says `Sec-Fetch-Mode: navigate` or, for clients that send no `Sec-Fetch-Mode`,
/// accepts `text/html`. A request with `Sec-Fetch-Mode` other than `navigate` (fetch, cors,
/// no-cors) is never a navigation.
pub fn default_policy(parts: &Parts) -> Unauthenticated {
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return Unauthenticated::Reject;
    }
    if parts.headers.contains_key("x-requested-with") {
        return Unauthenticated::Reject;
    }
    // When present, Sec-Fetch-Mode decides alone (a value that is not ASCII is not `navigate`).
    let navigate = match parts.headers.get("sec-fetch-mode") {
        Some(mode) => mode.as_bytes().eq_ignore_ascii_case(b"navigate"),
        None => parts
            .headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|m| m.trim().starts_with("text/html"))),
    };
    if navigate {
        Unauthenticated::Redirect
    } else {
        Unauthenticated::Reject
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn parts(method: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder().method(method).uri("/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn ses_07_navigation_table() {
        use Unauthenticated::*;
        let cases = [
            (
                "GET",
                vec![("accept", "text/html,application/xhtml+xml")],
                Redirect,
            ),
            ("GET", vec![("sec-fetch-mode", "navigate")], Redirect),
            ("HEAD", vec![("accept", "text/html")], Redirect),
            ("GET", vec![("accept", "application/json")], Reject),
            ("GET", vec![], Reject),
            ("GET", vec![("accept", "*/*")], Reject),
            (
                "GET",
                vec![("accept", "text/html"), ("sec-fetch-mode", "cors")],
                Reject,
            ),
            (
                "GET",
                vec![
                    ("accept", "text/html"),
                    ("x-requested-with", "XMLHttpRequest"),
                ],
                Reject,
            ),
            (
                "POST",
                vec![("accept", "text/html"), ("sec-fetch-mode", "navigate")],
                Reject,
            ),
            ("DELETE", vec![("accept", "text/html")], Reject),
        ];
        for (method, headers, want) in cases {
            assert_eq!(
                default_policy(&parts(method, &headers)),
                want,
                "{method} {headers:?}"
            );
        }
    }
}
