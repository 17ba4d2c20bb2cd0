//! Request parameters: `application/x-www-form-urlencoded` decoding, with
//! order and duplicates kept.
/// Decodes `application/x-www-form-urlencoded` bytes, keeping order and
/// duplicates.
pub(crate) fn parse_params(bytes: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

/// The name of the first parameter that occurs more than once.
pub(crate) fn first_duplicate(params: &[(String, String)]) -> Option<&str> {
    params.iter().enumerate().find_map(|(index, (name, _))| {
        params
            .iter()
            .skip(index + 1)
            .any(|(other, _)| other == name)
            .then_some(name.as_str())
    })
}

/// The value of a parameter that must occur at most once: `Err` when it
/// occurs more often.
pub(crate) fn single<'a>(
    params: &'a [(String, String)],
    name: &str,
) -> Result<Option<&'a str>, ()> {
    let mut values = params.iter().filter(|(key, _)| key == name);
    let first = values.next().map(|(_, value)| value.as_str());
    match values.next() {
        Some(_) => Err(()),
        None => Ok(first),
    }
}

/// Percent-decodes one `application/x-www-form-urlencoded` component
/// (`+` is a space).
pub(crate) fn form_decode(component: &str) -> String {
    let mut out = Vec::with_capacity(component.len());
    let mut bytes = component.bytes();
    while let Some(byte) = bytes.next() {
        match byte {
            b'+' => out.push(b' '),
            b'%' => {
                let mut lookahead = bytes.clone();
                let high = lookahead.next().and_then(|b| (b as char).to_digit(16));
                let low = lookahead.next().and_then(|b| (b as char).to_digit(16));
                match (high, low) {
                    (Some(high), Some(low)) => {
                        out.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                        bytes = lookahead;
                    }
                    _ => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first value of `name` in a list of decoded parameters; a helper for
/// [`TestProvider::authorization_requests`](crate::TestProvider::authorization_requests)
/// and [`TestProvider::end_session_requests`](crate::TestProvider::end_session_requests).
///
/// ```
/// let params = vec![("state".to_owned(), "abc".to_owned())];
/// assert_eq!(oidc_testing::find_param(&params, "state"), Some("abc"));
/// assert_eq!(oidc_testing::find_param(&params, "nonce"), None);
/// ```
pub fn find_param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn form_decoding_of_basic_credentials() {
        assert_eq!(form_decode("a%3Ab+c%25"), "a:b c%");
        assert_eq!(form_decode("100%"), "100%");
        assert_eq!(form_decode("%zz"), "%zz");
    }

    #[test]
    fn duplicates_and_single() {
        let params = parse_params(b"a=1&b=2&a=3");
        assert_eq!(first_duplicate(&params), Some("a"));
        assert!(single(&params, "a").is_err());
        assert_eq!(single(&params, "b"), Ok(Some("2")));
        assert_eq!(single(&params, "c"), Ok(None));
    }
}
