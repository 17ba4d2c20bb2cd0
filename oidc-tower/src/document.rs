//! Serving a public JSON document at a fixed path: the issuer's discovery document and JWKS
//! ([`IssuerDocuments`](crate::issue::IssuerDocuments)) and the protected-resource metadata
//! ([`ProtectedResource`](crate::resource_metadata::ProtectedResource)). `GET` and `HEAD` only.

use http::{HeaderValue, Method, Response, StatusCode, header};

/// An empty answer with `code`.
pub(crate) fn status(code: StatusCode) -> Response<String> {
    let mut res = Response::new(String::new());
    *res.status_mut() = code;
    res
}

/// The answer to `method` on a document's path: 200 with `body()` (empty for `HEAD`),
/// `content_type` and `cache_control`; 405 with `Allow: GET, HEAD` for another method.
pub(crate) fn respond(
    method: &Method,
    content_type: &'static str,
    cache_control: HeaderValue,
    body: impl FnOnce() -> String,
) -> Response<String> {
    if method != Method::GET && method != Method::HEAD {
        let mut res = status(StatusCode::METHOD_NOT_ALLOWED);
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return res;
    }
    let body = if method == Method::HEAD {
        String::new()
    } else {
        body()
    };
    let mut res = Response::new(body);
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, cache_control);
    res
}
