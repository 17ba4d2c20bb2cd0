//! Request paths and the route rules matched against them.
//!
//! A route rule (`routes.skip_auth`, `routes.api`, `routes.bearer`) names one exact path,
//! unless it ends with `/`: `GET=/favicon.ico` covers `/favicon.ico` and nothing else (not
//! `/favicon.ico/x`, not `/favicon.ico;x`), `/static/` covers `/static/` and everything
//! below it. An upstream's `prefix` is a prefix at a segment boundary: `/api` routes `/api`
//! and `/api/x` but not `/apix`. A request path must match a rule or a prefix both as sent
//! (percent-encoded) and decoded, so that an encoded character cannot make the proxy and the
//! upstream disagree on the route (`/favicon%2eico` is not `/favicon.ico` for a rule).
//!
//! Paths an upstream could resolve to somewhere else than they look are refused with 400
//! before any rule is consulted: dot segments (`/a/../b`, also encoded as `%2e%2e` or with
//! `%2f` slashes, and `..;` as Tomcat reads it), backslashes, control characters and broken
//! percent-encoding. Browsers never send such paths.

use std::fmt;

use http::Method;

/// Why a request path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Not starting with `/`.
    NotAbsolute,
    /// `%` not followed by two hex digits.
    BadEncoding,
    /// A `.` or `..` segment.
    DotSegment,
    /// A backslash (some servers read it as `/`).
    Backslash,
    /// A control character or NUL.
    Control,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotAbsolute => "the path must start with /",
            Self::BadEncoding => "the path has broken percent-encoding",
            Self::DotSegment => "the path has a . or .. segment",
            Self::Backslash => "the path has a backslash",
            Self::Control => "the path has a control character",
        })
    }
}

/// A request path checked by [`RequestPath::parse`].
#[derive(Debug, Clone)]
pub struct RequestPath<'a> {
    raw: &'a str,
    decoded: Vec<u8>,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn percent_decode(raw: &str) -> Result<Vec<u8>, PathError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut iter = bytes.iter().copied();
    while let Some(b) = iter.next() {
        if b == b'%' {
            let high = iter.next().and_then(hex).ok_or(PathError::BadEncoding)?;
            let low = iter.next().and_then(hex).ok_or(PathError::BadEncoding)?;
            out.push(high * 16 + low);
        } else {
            out.push(b);
        }
    }
    Ok(out)
}

/// Whether `path` has a segment that is `.` or `..`, also with `;parameters` after it.
fn has_dot_segment(path: &[u8]) -> bool {
    path.split(|b| *b == b'/').any(|segment| {
        let name = segment.split(|b| *b == b';').next().unwrap_or_default();
        name == b"." || name == b".."
    })
}

impl<'a> RequestPath<'a> {
    /// Checks `raw` (the path of a request, as sent).
    ///
    /// # Errors
    ///
    /// [`PathError`] for a path an upstream could read differently than the proxy.
    pub fn parse(raw: &'a str) -> Result<Self, PathError> {
        if !raw.starts_with('/') {
            return Err(PathError::NotAbsolute);
        }
        let decoded = percent_decode(raw)?;
        if decoded.iter().any(|b| *b < 0x20 || *b == 0x7f) {
            return Err(PathError::Control);
        }
        if decoded.contains(&b'\\') {
            return Err(PathError::Backslash);
        }
        if has_dot_segment(raw.as_bytes()) || has_dot_segment(&decoded) {
            return Err(PathError::DotSegment);
        }
        Ok(Self { raw, decoded })
    }

    /// The path as sent.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// Whether the path is exactly `path`, both as sent and decoded.
    pub fn is(&self, path: &str) -> bool {
        self.raw == path && self.decoded == path.as_bytes()
    }

    /// Whether the path lies under `prefix`, both as sent and decoded.
    pub fn under(&self, prefix: &str) -> bool {
        prefix_matches(prefix, self.raw.as_bytes()) && prefix_matches(prefix, &self.decoded)
    }
}

/// Whether `path` lies under `prefix` (at a segment boundary unless `prefix` ends with `/`).
pub fn prefix_matches(prefix: &str, path: &[u8]) -> bool {
    let prefix = prefix.as_bytes();
    match path.strip_prefix(prefix) {
        None => false,
        Some(rest) => prefix.ends_with(b"/") || rest.is_empty() || rest.starts_with(b"/"),
    }
}

/// Checks a configured path prefix.
///
/// # Errors
///
/// A message saying what is wrong with it.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    if !prefix.starts_with('/') {
        return Err(format!("{prefix:?} must start with /"));
    }
    if prefix
        .bytes()
        .any(|b| b <= b' ' || b == 0x7f || matches!(b, b'?' | b'#' | b'%' | b'\\'))
    {
        return Err(format!(
            "{prefix:?} must be a plain path (no spaces, ?, #, % or backslash)"
        ));
    }
    if has_dot_segment(prefix.as_bytes()) {
        return Err(format!("{prefix:?} must not have . or .. segments"));
    }
    Ok(())
}

/// One route rule: an exact path, or a prefix when it ends with `/`, optionally for one
/// method only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRule {
    method: Option<Method>,
    path: String,
}

impl RouteRule {
    /// Parses `PATH` or `METHOD=PATH` (`GET=/health`). A `PATH` ending with `/` is a prefix
    /// (`/static/`); any other names that one path only.
    ///
    /// # Errors
    ///
    /// A message naming the bad entry.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let entry = entry.trim();
        let (method, path) = match entry.split_once('=') {
            Some((method, path)) => {
                let m = known_method(method.trim()).ok_or_else(|| {
                    format!(
                        "{entry:?}: {method:?} is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
                    )
                })?;
                (Some(m), path.trim())
            }
            None => (None, entry),
        };
        check_prefix(path).map_err(|e| format!("{entry:?}: {e}"))?;
        Ok(Self {
            method,
            path: path.to_owned(),
        })
    }

    /// Whether the rule is a prefix (its path ends with `/`) rather than one exact path.
    pub fn is_prefix(&self) -> bool {
        self.path.ends_with('/')
    }

    /// Whether the rule covers this request: the method (when the rule names one) and the
    /// path, exactly or, for a rule ending with `/`, as a prefix; both as sent and decoded.
    pub fn matches(&self, method: &Method, path: &RequestPath<'_>) -> bool {
        if self.method.as_ref().is_some_and(|m| m != method) {
            return false;
        }
        if self.is_prefix() {
            path.under(&self.path)
        } else {
            path.is(&self.path)
        }
    }
}

/// Whether `method` is one the route rules may name.
fn known_method(method: &str) -> Option<Method> {
    let m = Method::from_bytes(method.as_bytes()).ok()?;
    [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ]
    .contains(&m)
    .then_some(m)
}

/// Whether any of `rules` covers the request.
pub fn any(rules: &[RouteRule], method: &Method, path: &RequestPath<'_>) -> bool {
    rules.iter().any(|rule| rule.matches(method, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_at_segment_boundaries() {
        assert!(prefix_matches("/api", b"/api"));
        assert!(prefix_matches("/api", b"/api/x"));
        assert!(!prefix_matches("/api", b"/apix"));
        assert!(prefix_matches("/api/", b"/api/"));
        assert!(prefix_matches("/api/", b"/api/x"));
        assert!(!prefix_matches("/api/", b"/api"));
        assert!(prefix_matches("/", b"/anything"));
        assert!(!prefix_matches("/api", b"/API"));
    }

    #[test]
    fn tricky_paths_are_refused() {
        for path in [
            "/public/../admin",
            "/public/./x",
            "/public/%2e%2e/admin",
            "/public/%2E./admin",
            "/public/..%2fadmin",
            "/public/..%2Fadmin",
            "/public%2f..%2fadmin",
            "/public/..;/admin",
            "/public/..;jsessionid=x/admin",
            "/..",
            "/.",
        ] {
            assert_eq!(
                RequestPath::parse(path).unwrap_err(),
                PathError::DotSegment,
                "{path}"
            );
        }
        assert_eq!(
            RequestPath::parse("/public/%5c..%5cadmin").unwrap_err(),
            PathError::Backslash
        );
        assert_eq!(
            RequestPath::parse("/public\\x").unwrap_err(),
            PathError::Backslash
        );
        assert_eq!(
            RequestPath::parse("/a%00b").unwrap_err(),
            PathError::Control
        );
        assert_eq!(
            RequestPath::parse("/a%0ab").unwrap_err(),
            PathError::Control
        );
        assert_eq!(
            RequestPath::parse("/a%zz").unwrap_err(),
            PathError::BadEncoding
        );
        assert_eq!(
            RequestPath::parse("/a%2").unwrap_err(),
            PathError::BadEncoding
        );
        assert_eq!(RequestPath::parse("x").unwrap_err(), PathError::NotAbsolute);
        for ok in [
            "/",
            "/a/b",
            "/a..b/c",
            "/.well-known/x",
            "/a/...",
            "/%E2%82%AC",
        ] {
            assert!(RequestPath::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn encoded_paths_must_match_both_ways() {
        let p = RequestPath::parse("/public%2Fx").unwrap();
        assert!(!p.under("/public"));
        let p = RequestPath::parse("/%70ublic/x").unwrap();
        assert!(!p.under("/public"));
        let p = RequestPath::parse("/public/x%20y").unwrap();
        assert!(p.under("/public"));
    }

    #[test]
    fn rules_parse_and_match() {
        let rule = RouteRule::parse("GET=/health").unwrap();
        let path = RequestPath::parse("/health").unwrap();
        assert!(rule.matches(&Method::GET, &path));
        assert!(!rule.matches(&Method::POST, &path));
        let rule = RouteRule::parse("/static/").unwrap();
        assert!(rule.matches(&Method::POST, &RequestPath::parse("/static/a.css").unwrap()));
        assert!(rule.matches(&Method::GET, &RequestPath::parse("/static/").unwrap()));
        assert!(!rule.matches(&Method::GET, &RequestPath::parse("/static").unwrap()));
        assert!(RouteRule::parse("static").is_err());
        assert!(RouteRule::parse("FOO=/x").is_err());
        assert!(RouteRule::parse("/a?b").is_err());
        assert!(RouteRule::parse("/a/../b").is_err());
    }

    #[test]
    fn a_rule_without_trailing_slash_names_one_path() {
        let rule = RouteRule::parse("GET=/favicon.ico").unwrap();
        assert!(!rule.is_prefix());
        let get = |p: &str| rule.matches(&Method::GET, &RequestPath::parse(p).unwrap());
        assert!(get("/favicon.ico"));
        for other in [
            "/favicon.ico/",
            "/favicon.ico/secret",
            "/favicon.ico;x",
            "/favicon.icox",
            "/favicon%2eico",
            "/favicon.ico%2fsecret",
            "/FAVICON.ICO",
        ] {
            assert!(!get(other), "{other}");
        }
        let api = RouteRule::parse("/api").unwrap();
        let any = |p: &str| api.matches(&Method::POST, &RequestPath::parse(p).unwrap());
        assert!(any("/api"));
        assert!(!any("/api/x"));
        assert!(!any("/api/"));
    }
}
