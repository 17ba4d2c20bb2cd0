//! A scripted browser over plain HTTP: `reqwest` with redirects disabled, one cookie jar per
//! host, and just enough HTML to fill in and submit forms.
//!
//! Every hop is explicit: a test sends a request, looks at the [`Page`] (status, headers,
//! `Set-Cookie`, body) and decides what to follow. Cookies are kept per host name, not per
//! origin: like a browser, the jar ignores ports, so the app (`127.0.0.1`) and the provider
//! (`localhost`) have separate jars only because their host names differ. The jar ignores
//! `Path`, `Domain`, `Secure` and `SameSite` (it sends every cookie of a host to every path of
//! that host); cookies are removed by `Max-Age=0` or an `Expires` in 1970, the way both servers
//! clear them.

use std::collections::BTreeMap;
use std::fmt;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};

/// What a browser sends as `Accept` on a top-level navigation.
pub const NAVIGATION_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// The longest chain of redirects [`UserAgent::follow_within`] follows.
const MAX_REDIRECTS: usize = 20;

/// A scripted user agent with a cookie jar per host.
#[derive(Debug, Clone)]
pub struct UserAgent {
    http: reqwest::Client,
    jars: BTreeMap<String, BTreeMap<String, String>>,
}

impl Default for UserAgent {
    fn default() -> Self {
        Self::new()
    }
}

impl UserAgent {
    /// An agent with empty jars; requests time out after 10 s.
    pub fn new() -> Self {
        Self {
            http: crate::http_client(),
            jars: BTreeMap::new(),
        }
    }

    /// Sends a request with the cookies of the URL's host, stores the cookies of the answer,
    /// and returns it.
    ///
    /// # Panics
    ///
    /// If the URL is invalid or the request fails (timeout included).
    pub async fn send(
        &mut self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        form: Option<&[(String, String)]>,
    ) -> Page {
        let url = Url::parse(url).unwrap_or_else(|e| panic!("bad url {url:?}: {e}"));
        let host = url.host_str().unwrap_or_default().to_owned();
        let mut req = self.http.request(method.clone(), url.clone());
        if let Some(cookie) = self.cookie_header(&host) {
            req = req.header("cookie", cookie);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(form) = form {
            req = req.form(form);
        }
        let res = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = res.status();
        let headers = res.headers().clone();
        let body = res
            .text()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: reading the body: {e}"));
        let page = Page {
            method,
            url,
            status,
            headers,
            body,
        };
        for cookie in page.set_cookies() {
            let jar = self.jars.entry(host.clone()).or_default();
            if cookie.is_removal() {
                jar.remove(&cookie.name);
            } else {
                jar.insert(cookie.name.clone(), cookie.value.clone());
            }
        }
        page
    }

    /// `GET url` with these headers.
    pub async fn get(&mut self, url: &str, headers: &[(&str, &str)]) -> Page {
        self.send(Method::GET, url, headers, None).await
    }

    /// `GET url` as a top-level browser navigation (`Accept: text/html…`).
    pub async fn navigate(&mut self, url: &str) -> Page {
        self.get(url, &[("accept", NAVIGATION_ACCEPT)]).await
    }

    /// `POST url` with an `application/x-www-form-urlencoded` body and these headers.
    pub async fn post_form(
        &mut self,
        url: &str,
        fields: &[(String, String)],
        headers: &[(&str, &str)],
    ) -> Page {
        self.send(Method::POST, url, headers, Some(fields)).await
    }

    /// Submits `form` as a browser does: to its action, with its fields, an `Origin` header
    /// naming the origin of the page it came from, and `Accept: text/html…`.
    pub async fn submit(&mut self, form: &Form) -> Page {
        let headers = [
            ("origin", form.origin.as_str()),
            ("accept", NAVIGATION_ACCEPT),
        ];
        if form.method.eq_ignore_ascii_case("post") {
            self.post_form(form.action.as_str(), &form.fields, &headers)
                .await
        } else {
            let mut url = form.action.clone();
            url.query_pairs_mut().clear().extend_pairs(&form.fields);
            self.get(url.as_str(), &headers[1..]).await
        }
    }

    /// Navigates to the `Location` of `page`.
    ///
    /// # Panics
    ///
    /// If `page` is not a redirect with a `Location`.
    pub async fn follow(&mut self, page: &Page) -> Page {
        let next = page
            .location()
            .unwrap_or_else(|| panic!("expected a redirect, got {page}"));
        self.navigate(next.as_str()).await
    }

    /// Follows the redirects of `page` as long as they point to `host`, and returns the last
    /// page fetched: one that is not a redirect, or one that redirects to another host (not
    /// followed). Returns `page` itself when it does not redirect to `host`.
    ///
    /// # Panics
    ///
    /// After 20 redirects.
    pub async fn follow_within(&mut self, page: Page, host: &str) -> Page {
        let mut page = page;
        for _ in 0..MAX_REDIRECTS {
            match page.location() {
                Some(next) if next.host_str() == Some(host) => {
                    page = self.navigate(next.as_str()).await;
                }
                _ => return page,
            }
        }
        panic!("more than {MAX_REDIRECTS} redirects within {host}; last: {page}");
    }

    /// Drives the provider (`op_host`) from the authorization request `authorize` to its
    /// redirect to `app_host`: the login form (`account`, any password) and the consent form
    /// (which has no password field) when it shows them. Returns the callback URL (not
    /// requested) and the prompts shown (`login`, `consent`).
    ///
    /// # Panics
    ///
    /// On any other page or prompt, a form submission not answered 303, or no redirect to
    /// `app_host` after four pages.
    pub async fn log_in_through_op(
        &mut self,
        authorize: &Url,
        op_host: &str,
        app_host: &str,
        account: &str,
    ) -> (Url, Vec<String>) {
        let page = self.navigate(authorize.as_str()).await;
        let mut page = self.follow_within(page, op_host).await;
        let mut prompts = Vec::new();
        for _ in 0..4 {
            if page.status == 303
                && let Some(next) = page.location()
                && next.host_str() == Some(app_host)
            {
                return (next, prompts);
            }
            assert_eq!(page.status, 200, "{account}: provider interaction: {page}");
            assert!(
                page.url.path().starts_with("/interaction/"),
                "{account}: provider interaction: {page}"
            );
            let mut form = page.form_with_action_ending(page.url.path());
            assert_eq!(form.method, "post", "{account}: {page}");
            let prompt = form.get("prompt").unwrap_or_default().to_owned();
            match prompt.as_str() {
                "login" => {
                    form.set("login", account).set("password", "any password");
                }
                "consent" => {
                    assert!(
                        form.get("password").is_none(),
                        "{account}: no password on the consent form: {page}"
                    );
                }
                other => panic!("{account}: unexpected prompt {other:?}: {page}"),
            }
            prompts.push(prompt);
            let submitted = self.submit(&form).await;
            assert_eq!(
                submitted.status, 303,
                "{account}: submitting the {prompts:?} form: {submitted}"
            );
            page = self.follow_within(submitted, op_host).await;
        }
        panic!(
            "{account}: the provider did not redirect back to {app_host} after {prompts:?}: {page}"
        );
    }

    /// The value of the cookie `name` held for `host`.
    pub fn cookie(&self, host: &str, name: &str) -> Option<&str> {
        self.jars.get(host)?.get(name).map(String::as_str)
    }

    /// Sets (or replaces) a cookie for `host`, as a hostile page or a test would.
    pub fn set_cookie(&mut self, host: &str, name: &str, value: &str) {
        self.jars
            .entry(host.to_owned())
            .or_default()
            .insert(name.to_owned(), value.to_owned());
    }

    /// Removes a cookie of `host`.
    pub fn remove_cookie(&mut self, host: &str, name: &str) {
        if let Some(jar) = self.jars.get_mut(host) {
            jar.remove(name);
        }
    }

    /// All cookies held for `host`, by name.
    pub fn cookies(&self, host: &str) -> BTreeMap<String, String> {
        self.jars.get(host).cloned().unwrap_or_default()
    }

    fn cookie_header(&self, host: &str) -> Option<String> {
        let jar = self.jars.get(host).filter(|jar| !jar.is_empty())?;
        Some(
            jar.iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }
}

/// A response, with the request that produced it.
#[derive(Debug, Clone)]
pub struct Page {
    /// The request method.
    pub method: Method,
    /// The request URL.
    pub url: Url,
    /// The response status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The response body.
    pub body: String,
}

impl Page {
    /// The value of the header `name`, when present once and UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut values = self.headers.get_all(name).iter();
        let first = values.next()?;
        assert!(values.next().is_none(), "header {name} repeated in {self}");
        first.to_str().ok()
    }

    /// The `Location` header, resolved against the request URL.
    pub fn location(&self) -> Option<Url> {
        let location = self.header("location")?;
        Some(
            self.url
                .join(location)
                .unwrap_or_else(|e| panic!("bad Location {location:?}: {e}")),
        )
    }

    /// The `Location` header exactly as sent (possibly relative).
    pub fn raw_location(&self) -> Option<&str> {
        self.header("location")
    }

    /// The `Set-Cookie` headers, parsed.
    pub fn set_cookies(&self) -> Vec<SetCookie> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(SetCookie::parse)
            .collect()
    }

    /// The `Set-Cookie` of cookie `name`, if exactly one.
    ///
    /// # Panics
    ///
    /// If the page sets `name` several times.
    pub fn set_cookie(&self, name: &str) -> Option<SetCookie> {
        let mut all: Vec<SetCookie> = self
            .set_cookies()
            .into_iter()
            .filter(|c| c.name == name)
            .collect();
        assert!(all.len() <= 1, "{name} set {} times in {self}", all.len());
        all.pop()
    }

    /// The forms of the page.
    pub fn forms(&self) -> Vec<Form> {
        parse_forms(&self.body, &self.url)
    }

    /// The only form of the page whose action path ends with `suffix`.
    ///
    /// # Panics
    ///
    /// If there is no such form, or several.
    pub fn form_with_action_ending(&self, suffix: &str) -> Form {
        let mut forms: Vec<Form> = self
            .forms()
            .into_iter()
            .filter(|f| f.action.path().ends_with(suffix))
            .collect();
        assert_eq!(
            forms.len(),
            1,
            "expected one form whose action ends with {suffix:?} in {self}"
        );
        forms.pop().expect("one form")
    }
}

/// The request line, status, headers and the start of the body, for assertion messages.
impl fmt::Display for Page {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} {} -> {}", self.method, self.url, self.status)?;
        for (name, value) in &self.headers {
            writeln!(f, "  {name}: {}", value.to_str().unwrap_or("<binary>"))?;
        }
        let body: String = self.body.chars().take(2000).collect();
        write!(f, "  body: {body}")
    }
}

/// One `Set-Cookie` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetCookie {
    /// The cookie name.
    pub name: String,
    /// The cookie value.
    pub value: String,
    /// The attributes in order, names lowercased, values as sent (`None` for flags).
    pub attributes: Vec<(String, Option<String>)>,
    /// The header as received.
    pub raw: String,
}

impl SetCookie {
    /// Parses `name=value; Attr=x; Flag`.
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.split(';');
        let (name, value) = parts.next()?.split_once('=')?;
        let attributes = parts
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| match a.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim().to_owned())),
                None => (a.to_ascii_lowercase(), None),
            })
            .collect();
        Some(Self {
            name: name.trim().to_owned(),
            value: value.trim().to_owned(),
            attributes,
            raw: header.to_owned(),
        })
    }

    /// Whether the attribute `name` (case-insensitive) is present.
    pub fn has(&self, name: &str) -> bool {
        self.attributes
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    }

    /// The value of the attribute `name` (case-insensitive), if present with a value.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_deref())
    }

    /// Whether this header deletes the cookie (`Max-Age=0` or an `Expires` in 1970).
    pub fn is_removal(&self) -> bool {
        self.attr("max-age")
            .is_some_and(|v| v.parse::<i64>().is_ok_and(|age| age <= 0))
            || self.attr("expires").is_some_and(|v| v.contains("1970"))
    }
}

/// An HTML form, ready to submit with [`UserAgent::submit`].
#[derive(Debug, Clone)]
pub struct Form {
    /// The `id` attribute.
    pub id: Option<String>,
    /// The action, resolved against the page URL.
    pub action: Url,
    /// `get` or `post` (lowercase; default `get`).
    pub method: String,
    /// The named `<input>`s in document order, with their `value` (empty when absent).
    pub fields: Vec<(String, String)>,
    /// The origin of the page (what a browser sends as `Origin` on submission).
    pub origin: String,
}

impl Form {
    /// Sets the field `name` (replacing its value, or adding it).
    pub fn set(&mut self, name: &str, value: &str) -> &mut Self {
        match self.fields.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value.to_owned(),
            None => self.fields.push((name.to_owned(), value.to_owned())),
        }
        self
    }

    /// The value of the field `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn parse_forms(html: &str, base: &Url) -> Vec<Form> {
    let lower = html.to_ascii_lowercase();
    let mut forms = Vec::new();
    let mut from = 0;
    while let Some(start) = find_tag(&lower, "form", from) {
        let Some(tag_end) = lower[start..].find('>').map(|i| start + i) else {
            break;
        };
        let attrs = attributes(&html[start + "<form".len()..tag_end]);
        let end = lower[tag_end..]
            .find("</form")
            .map_or(html.len(), |i| tag_end + i);
        let content = &html[tag_end + 1..end];
        let content_lower = &lower[tag_end + 1..end];
        let action = attr(&attrs, "action").unwrap_or_default();
        let action = base
            .join(action)
            .unwrap_or_else(|e| panic!("bad form action {action:?}: {e}"));
        let mut fields = Vec::new();
        let mut at = 0;
        while let Some(input) = find_tag(content_lower, "input", at) {
            let Some(input_end) = content_lower[input..].find('>').map(|i| input + i) else {
                break;
            };
            let input_attrs = attributes(&content[input + "<input".len()..input_end]);
            if let Some(name) = attr(&input_attrs, "name") {
                let value = attr(&input_attrs, "value").unwrap_or_default();
                fields.push((name.to_owned(), value.to_owned()));
            }
            at = input_end;
        }
        forms.push(Form {
            id: attr(&attrs, "id").map(str::to_owned),
            action,
            method: attr(&attrs, "method").unwrap_or("get").to_ascii_lowercase(),
            fields,
            origin: base.origin().ascii_serialization(),
        });
        from = end;
    }
    forms
}

/// The index of the next `<name` tag (followed by whitespace, `/` or `>`) at or after `from`.
fn find_tag(lower: &str, name: &str, from: usize) -> Option<usize> {
    let open = format!("<{name}");
    let mut at = from;
    while let Some(i) = lower.get(at..)?.find(&open) {
        let start = at + i;
        let next = lower[start + open.len()..].chars().next();
        if next.is_some_and(|c| c.is_ascii_whitespace() || c == '>' || c == '/') {
            return Some(start);
        }
        at = start + open.len();
    }
    None
}

fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Parses the attributes of a start tag (the text between the tag name and `>`); names are
/// lowercased, values entity-decoded.
fn attributes(tag: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = tag;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '/');
        if rest.is_empty() {
            return out;
        }
        let name_end = rest
            .find(|c: char| c.is_ascii_whitespace() || c == '=' || c == '/')
            .unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        rest = rest[name_end..].trim_start();
        let value = if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (value, remaining) = match after.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let inner = &after[1..];
                    let end = inner.find(q).unwrap_or(inner.len());
                    (&inner[..end], inner.get(end + 1..).unwrap_or(""))
                }
                _ => {
                    let end = after
                        .find(|c: char| c.is_ascii_whitespace())
                        .unwrap_or(after.len());
                    (&after[..end], &after[end..])
                }
            };
            rest = remaining;
            decode_entities(value)
        } else {
            String::new()
        };
        out.push((name, value));
    }
}

/// The query parameters of `url`; panics on a repeated one.
pub fn query(url: &Url) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    for (k, v) in url.query_pairs() {
        let previous = params.insert(k.to_string(), v.to_string());
        assert!(previous.is_none(), "parameter {k} repeated in {url}");
    }
    params
}

/// Asserts that `page` is a 200 JSON answer and returns the body.
pub fn json_body(page: &Page) -> serde_json::Value {
    assert_eq!(page.status, 200, "{page}");
    assert!(
        page.header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{page}"
    );
    serde_json::from_str(&page.body).unwrap_or_else(|e| panic!("not JSON ({e}): {page}"))
}

/// Decodes the character references HTML attribute values commonly use.
pub fn decode_entities(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&#x2F;", "/")
        .replace("&#x2f;", "/")
        .replace("&#47;", "/")
        .replace("&amp;", "&")
}

/// The user's side of the device flow (RFC 8628) at the real OP on `host`: opens the complete
/// verification URI `uri`, confirms `user_code` (or aborts), logs in as `account` and
/// consents. Returns the last page's body.
///
/// # Panics
///
/// On an unexpected page or prompt, or when the login does not finish in four pages.
pub async fn approve_device_at_op(
    host: &str,
    uri: &str,
    user_code: &str,
    account: &str,
    abort: bool,
) -> String {
    let mut agent = UserAgent::new();
    // The code input form, filled in from the complete URI.
    let page = agent.navigate(uri).await;
    let page = agent.follow_within(page, host).await;
    assert_eq!(page.status, 200, "code input page: {page}");
    let input = page.form_with_action_ending("/device");
    assert_eq!(input.get("user_code"), Some(user_code));
    let submitted = agent.submit(&input).await;
    // The confirmation page shows the code the CLI printed.
    let page = agent.follow_within(submitted, host).await;
    assert_eq!(page.status, 200, "confirmation page: {page}");
    assert!(page.body.contains(user_code), "{page}");
    let mut confirm = page.form_with_action_ending("/device");
    assert_eq!(confirm.get("confirm"), Some("yes"), "{page}");
    if abort {
        confirm.set("abort", "yes");
    }
    let submitted = agent.submit(&confirm).await;
    let mut page = agent.follow_within(submitted, host).await;
    for _ in 0..4 {
        if page.status == 200 && !page.url.path().starts_with("/interaction/") {
            return page.body;
        }
        assert_eq!(page.status, 200, "{account}: device interaction: {page}");
        let mut form = page.form_with_action_ending(page.url.path());
        match form.get("prompt").unwrap_or_default() {
            "login" => {
                form.set("login", account).set("password", "any password");
            }
            "consent" => {}
            other => panic!("{account}: unexpected prompt {other:?}: {page}"),
        }
        let submitted = agent.submit(&form).await;
        page = agent.follow_within(submitted, host).await;
    }
    panic!("{account}: the device login did not finish: {page}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms_and_inputs() {
        let html = r#"<p>x</p><FORM autocomplete="off" action="/interaction/abc" method="post">
          <input type="hidden" name="prompt" value="login"/>
          <input required type="text" name="login" placeholder="Enter any login" autofocus="on">
          <input required type=password name='password'>
          <button type="submit">Sign-in</button></form>
          <form id="op.logoutForm" method="post" action="http://op/session/end/confirm?a=1&amp;b=2"><input type="hidden" name="xsrf" value="x&quot;y"/></form>"#;
        let base = Url::parse("http://localhost:4000/interaction/abc").unwrap();
        let forms = parse_forms(html, &base);
        assert_eq!(forms.len(), 2);
        assert_eq!(
            forms[0].action.as_str(),
            "http://localhost:4000/interaction/abc"
        );
        assert_eq!(forms[0].method, "post");
        assert_eq!(
            forms[0].fields,
            vec![
                ("prompt".to_owned(), "login".to_owned()),
                ("login".to_owned(), String::new()),
                ("password".to_owned(), String::new()),
            ]
        );
        assert_eq!(forms[0].origin, "http://localhost:4000");
        assert_eq!(forms[1].id.as_deref(), Some("op.logoutForm"));
        assert_eq!(
            forms[1].action.as_str(),
            "http://op/session/end/confirm?a=1&b=2"
        );
        assert_eq!(forms[1].get("xsrf"), Some("x\"y"));
    }

    #[test]
    fn parses_set_cookie() {
        let c = SetCookie::parse("oidc-session=abc; HttpOnly; SameSite=Lax; Path=/; Max-Age=1800")
            .unwrap();
        assert_eq!((c.name.as_str(), c.value.as_str()), ("oidc-session", "abc"));
        assert!(c.has("httponly"));
        assert_eq!(c.attr("samesite"), Some("Lax"));
        assert_eq!(c.attr("path"), Some("/"));
        assert!(!c.has("domain"));
        assert!(!c.is_removal());
        let gone = SetCookie::parse(
            "_interaction_resume=; path=/auth/x; expires=Thu, 01 Jan 1970 00:00:00 GMT; httponly",
        )
        .unwrap();
        assert!(gone.is_removal());
        assert!(SetCookie::parse("a=; Max-Age=0").unwrap().is_removal());
    }
}
