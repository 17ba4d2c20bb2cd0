use super::*;

use crate::claims::AdditionalClaims;
use oidc_testing::{SigningAlg, TestProvider};
use serde_json::json;

fn provider() -> Provider {
    Provider::builder("https://id.example.com").build().unwrap()
}

#[test]
fn defaults_match_the_documentation() {
    let v = AccessTokenVerifier::new(provider(), "api://default");
    let c = &*v.inner;
    assert_eq!(c.audiences, ["api://default"]);
    assert_eq!(c.algorithms, [Algorithm::RS256, Algorithm::ES256]);
    assert_eq!(c.leeway, 60);
    assert_eq!(c.max_token_size, 16 * 1024);
    assert!(!c.require_at_jwt);
    assert!(c.require_iat);
    assert!(c.clock.is_none());
    assert!(!v.is_strict());
}

#[test]
fn idt_05_algorithm_list_deduplicated_and_never_empty() {
    let v = AccessTokenVerifier::new(provider(), "api://default")
        .with_algorithms([Algorithm::PS256, Algorithm::RS256, Algorithm::PS256])
        .unwrap();
    assert_eq!(v.inner.algorithms, [Algorithm::PS256, Algorithm::RS256]);
    assert!(matches!(
        v.with_algorithms([]),
        Err(ConfigError::InvalidAlgorithms(_))
    ));
}

#[test]
fn builder_methods_do_not_change_clones() {
    let base = AccessTokenVerifier::new(provider(), "api://default");
    let strict = base
        .clone()
        .require_at_jwt(true)
        .with_leeway(Duration::from_secs(5));
    assert!(strict.is_strict() && strict.inner.leeway == 5);
    assert!(!base.is_strict() && base.inner.leeway == 60);
    let debug = format!("{strict:?}");
    assert!(debug.contains("https://id.example.com") && debug.contains("require_at_jwt: true"));
}

/// Errors name the failed check, never the token's contents (the crate-level promise that
/// they can be logged). `CustomClaims` carries no deserializer error, whose message could quote
/// a claim value.
#[tokio::test]
async fn errors_do_not_echo_token_contents() {
    const MARK: &str = "MARKER7f3a";
    let tp = TestProvider::start().await;
    let v = AccessTokenVerifier::new(
        Provider::builder(tp.issuer()).build().unwrap(),
        "api://default",
    );
    let long_sub = format!("{MARK}{}", "x".repeat(300));
    let tokens = [
        tp.token().claim("iss", MARK).sign(),
        tp.token().audience(MARK).sign(),
        tp.token().claim("sub", long_sub.as_str()).sign(),
        tp.token().claim("exp", MARK).sign(),
        tp.token().header("kid", MARK).sign(),
        tp.token().header("typ", format!("{MARK}+jwt")).sign(),
        tp.token().sign_none(MARK, "c2ln"),
        tp.token().header("crit", json!([MARK])).sign(),
        tp.token().claim("sub", MARK).sign_with_foreign_key(),
        tp.token().alg(SigningAlg::PS256).claim("sub", MARK).sign(),
        format!("{MARK}.{MARK}.{MARK}"),
    ];
    for token in tokens {
        let err = v.verify::<AdditionalClaims>(&token).await.unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(MARK), "{shown}");
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Typed {
        level: u8,
    }
    let token = tp.token().claim("level", MARK).sign();
    let err = v.verify::<Typed>(&token).await.unwrap_err();
    assert!(matches!(err, VerifyError::CustomClaims));
    assert!(!format!("{err} {err:?}").contains(MARK));
    assert!(std::error::Error::source(&err).is_none());
}
