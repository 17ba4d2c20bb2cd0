//! ID token validation at the login callback, black-box: an axum app behind `LoginLayer` and a
//! hostile `oidc-testing` provider. Tests are named after the IDT cases of `SECURITY-CASES.md`.
//!
//! Every rejection asserts the conventions: **401**, no redirect, no session cookie, the
//! pre-login cookie not authenticated, and the transaction consumed (a replay answers 400 with
//! no token request).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod login_common;

use oidc_testing::{IdTokenSigning, SigningAlg, TestProvider};
use serde_json::{Map, Value, json};

use login_common::{App, Builder, CLIENT_ID, USER, jwt_claims, now, param};

type Setup = Box<dyn FnOnce(&TestProvider) + Send>;

/// Edits the claims of every ID token.
fn claims(f: impl Fn(&mut Map<String, Value>) + Send + Sync + 'static) -> Setup {
    Box::new(move |op: &TestProvider| op.mutate_id_token(move |c, _| f(c)))
}

/// Edits the JOSE header of every ID token.
fn header(f: impl Fn(&mut Map<String, Value>) + Send + Sync + 'static) -> Setup {
    Box::new(move |op: &TestProvider| op.mutate_id_token(move |_, h| f(h)))
}

fn signing(how: IdTokenSigning) -> Setup {
    Box::new(move |op: &TestProvider| op.sign_id_token_with(how))
}

fn set(name: &'static str, value: Value) -> Setup {
    claims(move |c| {
        c.insert(name.to_owned(), value.clone());
    })
}

fn remove(name: &'static str) -> Setup {
    claims(move |c| {
        c.remove(name);
    })
}

/// Each case on a fresh provider and app (ID tokens of `alg`): the login fails with 401.
async fn each_rejected(alg: SigningAlg, cases: Vec<(&str, Setup)>) {
    for (what, setup) in cases {
        let app = Builder::new()
            .registration(move |r| r.with_id_token_alg(alg))
            .start()
            .await;
        setup(&app.op);
        app.expect_failed_login(what, 401).await;
        assert_eq!(
            app.token_request_count(),
            1,
            "{what}: the code was redeemed once"
        );
    }
}

/// Each case on a fresh provider and app: the login succeeds.
async fn each_accepted(cases: Vec<(&str, Setup)>) {
    for (what, setup) in cases {
        let app = App::start().await;
        setup(&app.op);
        let (jar, res) = app.login_to(Some("/app")).await;
        assert_eq!(res.location(), Some("/app"), "{what}");
        app.assert_logged_in(&jar).await;
    }
}

/// Logs out with `jar` and returns the `id_token_hint` sent to the provider (the raw ID token
/// the session kept).
async fn id_token_of_session(app: &App, jar: &login_common::Jar) -> String {
    let mut jar = jar.clone();
    let res = app.logout(&mut jar).await;
    assert_eq!(res.status, 303);
    param(res.location().unwrap(), "id_token_hint").unwrap()
}

fn jwt_header(token: &str) -> Value {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').next().unwrap())
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

// ---------------------------------------------------------------------------------------------
// IDT-01: positive

#[tokio::test]
async fn idt_01_valid_id_tokens_log_in_with_claims() {
    for (alg, aud_array) in [
        (SigningAlg::RS256, false),
        (SigningAlg::RS256, true),
        (SigningAlg::ES256, false),
        (SigningAlg::ES256, true),
    ] {
        let what = format!("{alg:?}, aud as array: {aud_array}");
        let app = Builder::new()
            .registration(move |r| r.with_id_token_alg(alg))
            .start()
            .await;
        if aud_array {
            app.op.mutate_id_token(|c, _| {
                c.insert("aud".to_owned(), json!([CLIENT_ID]));
            });
        }
        app.op.mutate_id_token(|c, _| {
            c.insert("x_unknown".to_owned(), json!({"nested": [1, 2, 3]}));
            c.insert("locale".to_owned(), json!("fr-FR"));
        });

        let (jar, res) = app.login_to(Some("/app?x=1")).await;
        assert_eq!(res.location(), Some("/app?x=1"), "{what}");
        assert_eq!(res.body, "", "{what}: a bare 303");

        let me = app.assert_logged_in(&jar).await;
        assert_eq!(me["email"], "user-1@example.test", "{what}");
        assert_eq!(me["iss"], app.op.issuer(), "{what}");
        assert_eq!(me["claims"]["name"], USER, "{what}");
        assert_eq!(
            me["claims"]["x_unknown"]["nested"],
            json!([1, 2, 3]),
            "{what}"
        );
        assert_eq!(me["claims"]["locale"], "fr-FR", "{what}");
        assert_eq!(
            app.op.userinfo_request_count(),
            0,
            "{what}: email was in the ID token"
        );

        let mut nav = jar.clone();
        let page = app.nav("/app?x=1", &mut nav).await;
        assert_eq!(page.status, 200, "{what}");
        assert_eq!(page.body, "app");

        let id_token = id_token_of_session(&app, &jar).await;
        assert_eq!(jwt_header(&id_token)["alg"], format!("{alg:?}"), "{what}");
        let aud = &jwt_claims(&id_token)["aud"];
        assert_eq!(aud.is_array(), aud_array, "{what}");
    }
}

// ---------------------------------------------------------------------------------------------
// IDT-02 to IDT-05: signature and algorithm

#[tokio::test]
async fn idt_02_bad_signature_is_rejected() {
    each_rejected(
        SigningAlg::RS256,
        vec![
            ("RS256 tampered", signing(IdTokenSigning::TamperedSignature)),
            ("RS256 foreign key", signing(IdTokenSigning::ForeignKey)),
            (
                "HS256 with a wrong secret",
                signing(IdTokenSigning::Hs256(b"not-the-client-secret".to_vec())),
            ),
        ],
    )
    .await;
    each_rejected(
        SigningAlg::ES256,
        vec![
            ("ES256 tampered", signing(IdTokenSigning::TamperedSignature)),
            ("ES256 foreign key", signing(IdTokenSigning::ForeignKey)),
        ],
    )
    .await;
}

#[tokio::test]
async fn idt_03_alg_none_is_rejected() {
    each_rejected(
        SigningAlg::RS256,
        vec![
            ("none", signing(IdTokenSigning::None("none".to_owned()))),
            ("None", signing(IdTokenSigning::None("None".to_owned()))),
            ("NONE", signing(IdTokenSigning::None("NONE".to_owned()))),
            (
                "none with a signature",
                signing(IdTokenSigning::NoneWithSignature("none".to_owned())),
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn idt_04_hs256_keyed_with_the_rsa_public_key_is_rejected() {
    let pem: Setup = Box::new(|op: &TestProvider| {
        op.sign_id_token_with(IdTokenSigning::Hs256(op.rsa_public_key_pem()));
    });
    let jwk: Setup = Box::new(|op: &TestProvider| {
        let kid = op.kid(SigningAlg::RS256);
        let jwk = op.public_jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid.as_str())
            .unwrap()
            .clone();
        op.sign_id_token_with(IdTokenSigning::Hs256(serde_json::to_vec(&jwk).unwrap()));
    });
    each_rejected(
        SigningAlg::RS256,
        vec![("HMAC key = RSA PEM", pem), ("HMAC key = RSA JWK", jwk)],
    )
    .await;
}

#[tokio::test]
async fn idt_05_algorithm_outside_the_allow_list_is_rejected() {
    // The client accepts RS256 and ES256 (the default; EdDSA too when the provider advertises
    // it, see `login_keys.rs`); the provider signs with another algorithm, or the header's alg
    // differs from the key's.
    for alg in [
        SigningAlg::PS256,
        SigningAlg::RS384,
        SigningAlg::RS512,
        SigningAlg::PS512,
    ] {
        each_rejected(
            alg,
            vec![(
                "signed with an algorithm not allowed",
                Box::new(|_: &TestProvider| {}),
            )],
        )
        .await;
    }
    each_rejected(
        SigningAlg::RS256,
        vec![
            (
                "kid of the PS256 JWK on an RS256 token",
                header(|h| {
                    h.insert("kid".to_owned(), json!("rsa1-PS256"));
                }),
            ),
            (
                "header alg RS512, RS256 signature",
                header(|h| {
                    h.insert("alg".to_owned(), json!("RS512"));
                }),
            ),
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// IDT-06 to IDT-10: claims

#[tokio::test]
async fn idt_06_wrong_issuer_is_rejected() {
    let issuer_variant = |f: fn(&str) -> String| -> Setup {
        Box::new(move |op: &TestProvider| {
            let iss = f(&op.issuer());
            op.mutate_id_token(move |c, _| {
                c.insert("iss".to_owned(), json!(iss));
            });
        })
    };
    each_rejected(
        SigningAlg::RS256,
        vec![
            ("another host", set("iss", json!("https://evil.example"))),
            ("trailing slash", issuer_variant(|i| format!("{i}/"))),
            ("upper case", issuer_variant(|i| i.to_uppercase())),
            ("another port", issuer_variant(|i| format!("{}1", i))),
            ("missing", remove("iss")),
            ("not a string", set("iss", json!(["x"]))),
        ],
    )
    .await;
}

#[tokio::test]
async fn idt_07_wrong_audience_or_azp_is_rejected() {
    each_rejected(
        SigningAlg::RS256,
        vec![
            ("aud missing", remove("aud")),
            ("aud another client", set("aud", json!("other-client"))),
            ("aud [other]", set("aud", json!(["other-client"]))),
            ("aud empty array", set("aud", json!([]))),
            (
                "aud [client, untrusted] without azp",
                set("aud", json!([CLIENT_ID, "untrusted"])),
            ),
            (
                "aud [client, untrusted] with azp = client",
                claims(|c| {
                    c.insert("aud".to_owned(), json!([CLIENT_ID, "untrusted"]));
                    c.insert("azp".to_owned(), json!(CLIENT_ID));
                }),
            ),
            ("azp another client", set("azp", json!("other-client"))),
        ],
    )
    .await;
}

#[tokio::test]
async fn idt_08_bad_times_are_rejected() {
    each_rejected(
        SigningAlg::RS256,
        vec![
            (
                "exp in the past",
                claims(|c| {
                    c.insert("exp".to_owned(), json!(now() - 3600));
                }),
            ),
            ("exp missing", remove("exp")),
            (
                "exp a string",
                claims(|c| {
                    c.insert("exp".to_owned(), json!((now() + 300).to_string()));
                }),
            ),
            (
                "exp a float",
                claims(|c| {
                    c.insert("exp".to_owned(), json!(now() as f64 + 300.5));
                }),
            ),
            ("iat missing", remove("iat")),
            (
                "iat in the future",
                claims(|c| {
                    c.insert("iat".to_owned(), json!(now() + 3600));
                }),
            ),
            (
                "nbf in the future",
                claims(|c| {
                    c.insert("nbf".to_owned(), json!(now() + 3600));
                }),
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn idt_08_times_within_the_leeway_are_accepted() {
    each_accepted(vec![(
        "exp 30 s ago, iat and nbf 30 s ahead",
        claims(|c| {
            c.insert("exp".to_owned(), json!(now() - 30));
            c.insert("iat".to_owned(), json!(now() + 30));
            c.insert("nbf".to_owned(), json!(now() + 30));
        }),
    )])
    .await;
}

#[tokio::test]
async fn idt_09_bad_subject_is_rejected() {
    each_rejected(
        SigningAlg::RS256,
        vec![
            ("sub missing", remove("sub")),
            ("sub empty", set("sub", json!(""))),
            ("sub a number", set("sub", json!(42))),
            ("sub 256 characters", set("sub", json!("a".repeat(256)))),
        ],
    )
    .await;
}

#[tokio::test]
async fn idt_09_subject_of_255_characters_is_accepted() {
    let app = App::start().await;
    let long = "b".repeat(255);
    let sub = long.clone();
    app.op.mutate_id_token(move |c, _| {
        c.insert("sub".to_owned(), json!(sub));
    });
    let (jar, _) = app.login_to(None).await;
    let me = app.me(&jar).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["sub"], long);
}

#[tokio::test]
async fn idt_10_wrong_or_missing_nonce_is_rejected() {
    let other: Setup = Box::new(|op: &TestProvider| {
        op.set_nonce_override(Some("nonce-of-another-transaction".to_owned()));
    });
    each_rejected(
        SigningAlg::RS256,
        vec![
            ("nonce of another transaction", other),
            ("nonce missing", remove("nonce")),
            ("nonce not a string", set("nonce", json!(12345))),
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// IDT-12, IDT-15, IDT-16

#[tokio::test]
async fn idt_12_other_token_types_are_rejected() {
    each_rejected(
        SigningAlg::RS256,
        vec![
            (
                "typ at+jwt",
                header(|h| {
                    h.insert("typ".to_owned(), json!("at+jwt"));
                }),
            ),
            (
                "typ logout+jwt",
                header(|h| {
                    h.insert("typ".to_owned(), json!("logout+jwt"));
                }),
            ),
            (
                "typ application/at+jwt",
                header(|h| {
                    h.insert("typ".to_owned(), json!("application/at+jwt"));
                }),
            ),
            (
                "a logout token (events claim)",
                set(
                    "events",
                    json!({"http://schemas.openid.net/event/backchannel-logout": {}}),
                ),
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn idt_12_typ_absent_is_accepted() {
    each_accepted(vec![(
        "no typ",
        header(|h| {
            h.remove("typ");
        }),
    )])
    .await;
}

#[tokio::test]
async fn idt_15_missing_id_token_or_wrong_at_hash_is_rejected() {
    let no_id_token: Setup = Box::new(|op: &TestProvider| {
        op.mutate_token_response(|body| {
            body.remove("id_token");
        });
    });
    each_rejected(
        SigningAlg::RS256,
        vec![
            ("no id_token", no_id_token),
            (
                "wrong at_hash",
                set("at_hash", json!("AAAAAAAAAAAAAAAAAAAAAA")),
            ),
            ("at_hash not a string", set("at_hash", json!(7))),
        ],
    )
    .await;
}

#[tokio::test]
async fn idt_15_missing_at_hash_is_accepted() {
    each_accepted(vec![(
        "no at_hash (optional in the code flow)",
        remove("at_hash"),
    )])
    .await;
}

#[tokio::test]
async fn idt_16_userinfo_subject_mismatch_is_rejected() {
    let app = App::start().await;
    // Without `email` in the ID token the layer fetches UserInfo.
    app.op.mutate_id_token(|c, _| {
        c.remove("email");
    });
    app.op.mutate_userinfo(|c| {
        c.insert("sub".to_owned(), json!("someone-else"));
    });
    app.expect_failed_login("userinfo sub differs", 401).await;
    assert_eq!(app.op.userinfo_request_count(), 1);
}

#[tokio::test]
async fn idt_16_userinfo_fills_missing_claims_when_its_subject_matches() {
    let app = App::start().await;
    app.op.mutate_id_token(|c, _| {
        c.remove("email");
    });
    let (jar, _) = app.login_to(None).await;
    assert_eq!(app.op.userinfo_request_count(), 1);
    let me = app.assert_logged_in(&jar).await;
    assert_eq!(me["email"], "user-1@example.test", "email from UserInfo");
}
