//! `AuthorizationResponse::from_query` on arbitrary strings.
//!
//! Must never panic. Accepted: every parameter it reads (`code`, `state`, `iss`, `error`,
//! `error_description`) appears at most once, no token parameter (`access_token`, `id_token`,
//! `token_type`, `refresh_token`: an implicit or hybrid response) appears, and `state()` is the
//! decoded `state`. Refused: one of them appears twice, or a token parameter appears.

#![no_main]

use libfuzzer_sys::fuzz_target;
use oidc_core::flow::AuthorizationResponse;

const READ: [&str; 5] = ["code", "state", "iss", "error", "error_description"];
const TOKENS: [&str; 4] = ["access_token", "id_token", "token_type", "refresh_token"];

fuzz_target!(|query: &str| {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let count = |name: &str| pairs.iter().filter(|(k, _)| k == name).count();
    let duplicated = READ.iter().any(|name| count(name) > 1);
    let implicit = TOKENS.iter().any(|name| count(name) > 0);
    match AuthorizationResponse::from_query(query) {
        Ok(response) => {
            assert!(
                !duplicated,
                "a duplicated parameter was accepted: {query:?}"
            );
            assert!(!implicit, "a token parameter was accepted: {query:?}");
            let state = pairs
                .iter()
                .find(|(k, _)| k == "state")
                .map(|(_, v)| v.as_str());
            assert_eq!(response.state(), state);
        }
        Err(_) => assert!(
            duplicated || implicit,
            "refused without a duplicated or token parameter: {query:?}"
        ),
    }
});
