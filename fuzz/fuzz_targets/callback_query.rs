//! `AuthorizationResponse::from_query` on arbitrary strings.
//!
//! Must never panic. Accepted: every parameter it reads (`code`, `state`, `iss`, `error`,
//! `error_description`) appears at most once and `state()` is the decoded `state`. Refused:
//! one of them appears twice.

#![no_main]

use libfuzzer_sys::fuzz_target;
use oidc_core::flow::AuthorizationResponse;

const READ: [&str; 5] = ["code", "state", "iss", "error", "error_description"];

fuzz_target!(|query: &str| {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let count = |name: &str| pairs.iter().filter(|(k, _)| k == name).count();
    let duplicated = READ.iter().any(|name| count(name) > 1);
    match AuthorizationResponse::from_query(query) {
        Ok(response) => {
            assert!(
                !duplicated,
                "a duplicated parameter was accepted: {query:?}"
            );
            let state = pairs
                .iter()
                .find(|(k, _)| k == "state")
                .map(|(_, v)| v.as_str());
            assert_eq!(response.state(), state);
        }
        Err(_) => assert!(
            duplicated,
            "refused without a duplicated parameter: {query:?}"
        ),
    }
});
