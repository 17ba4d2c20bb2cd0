//! `oidc_core::settings::OidcSettings`: loaded from variables and from a TOML table, every
//! mistake refused with the key named and no secret shown, and the built client, verifier and
//! service client working against the in-process provider.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{REDIRECT_URI, authorize_at_provider, callback_query};
use oidc_core::error::ConfigError;
use oidc_core::flow::{AuthorizationResponse, ServiceTokenRequest};
use oidc_core::settings::OidcSettings;
use oidc_testing::{ClientRegistration, TestProvider};

const SECRET: &str = "very-secret-value";

fn vars(pairs: &[(&str, &str)]) -> Result<OidcSettings, ConfigError> {
    OidcSettings::from_vars("OIDC_", pairs.iter().copied())
}

/// The key and the problem of a `ConfigError::Setting`.
fn setting_error(result: Result<OidcSettings, ConfigError>) -> (String, &'static str) {
    match result {
        Err(ConfigError::Setting { key, problem }) => (key, problem),
        other => panic!("expected a setting error, got {other:?}"),
    }
}

fn secret_file(contents: &[u8]) -> (tempdir::Dir, String) {
    let dir = tempdir::Dir::new();
    let path = dir.path().join("client_secret");
    std::fs::write(&path, contents).unwrap();
    let path = path.to_str().unwrap().to_owned();
    (dir, path)
}

/// A directory of its own under the system temp dir, removed on drop.
mod tempdir {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub(super) struct Dir(PathBuf);

    impl Dir {
        pub(super) fn new() -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "oidc-settings-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::SeqCst)
            ));
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }

        pub(super) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[test]
fn variables_give_every_setting_and_the_defaults() {
    let s = vars(&[
        ("OIDC_ISSUER", "https://id.example.com"),
        ("OIDC_CLIENT_ID", "my-app"),
        ("OIDC_CLIENT_SECRET", SECRET),
        ("OIDC_REDIRECT_URI", "https://app.example.com/cb"),
        ("OTHER_ISSUER", "https://ignored.example.com"),
        ("OIDC_STRICT_AT_JWT", "true"),
    ])
    .unwrap();
    assert_eq!(s.issuer(), "https://id.example.com");
    assert_eq!(s.client_id(), Some("my-app"));
    assert_eq!(s.client_secret().unwrap().secret(), SECRET);
    assert_eq!(s.scopes(), ["openid", "profile", "email"]);
    assert_eq!(
        s.audience(),
        Some("my-app"),
        "the audience defaults to the client id"
    );
    assert_eq!(s.redirect_uri(), Some("https://app.example.com/cb"));

    let s = vars(&[
        ("OIDC_ISSUER", "https://id.example.com"),
        ("OIDC_AUDIENCE", "https://api.example.com"),
        ("OIDC_SCOPES", "openid  orders:read\temail"),
    ])
    .unwrap();
    assert_eq!(s.audience(), Some("https://api.example.com"));
    assert_eq!(s.scopes(), ["openid", "orders:read", "email"]);
    assert_eq!(s.client_id(), None);
}

#[test]
fn another_prefix_reads_its_own_variables_only() {
    let s = OidcSettings::from_vars(
        "CORP_",
        [
            ("CORP_ISSUER", "https://corp.example.com"),
            ("OIDC_ISSUER", "https://other.example.com"),
            ("CORP_CLIENT_ID", "corp-app"),
        ],
    )
    .unwrap();
    assert_eq!(s.issuer(), "https://corp.example.com");
    assert_eq!(s.client_id(), Some("corp-app"));
    let (key, _) = setting_error(OidcSettings::from_vars(
        "CORP_",
        [("OIDC_ISSUER", "https://other.example.com")],
    ));
    assert_eq!(key, "CORP_ISSUER");
}

#[test]
fn missing_issuer_is_refused_naming_the_variable() {
    let (key, problem) = setting_error(vars(&[("OIDC_CLIENT_ID", "my-app")]));
    assert_eq!(key, "OIDC_ISSUER");
    assert!(problem.contains("required"), "{problem}");
}

#[test]
fn empty_values_are_refused_not_taken_as_unset() {
    for name in [
        "OIDC_ISSUER",
        "OIDC_CLIENT_ID",
        "OIDC_CLIENT_SECRET",
        "OIDC_AUDIENCE",
        "OIDC_REDIRECT_URI",
    ] {
        let mut pairs = vec![("OIDC_ISSUER", "https://id.example.com")];
        pairs.retain(|(n, _)| *n != name);
        pairs.push((name, if name == "OIDC_ISSUER" { "  " } else { "" }));
        let (key, problem) = setting_error(vars(&pairs));
        assert_eq!(key, name);
        assert!(problem.contains("empty"), "{name}: {problem}");
    }
}

#[test]
fn secret_and_secret_file_together_are_refused() {
    let (_dir, path) = secret_file(b"from-file\n");
    let (key, problem) = setting_error(vars(&[
        ("OIDC_ISSUER", "https://id.example.com"),
        ("OIDC_CLIENT_SECRET", SECRET),
        ("OIDC_CLIENT_SECRET_FILE", &path),
    ]));
    assert_eq!(key, "OIDC_CLIENT_SECRET_FILE");
    assert!(problem.contains("one of them"), "{problem}");
}

#[test]
fn secret_file_is_read_with_one_trailing_newline_dropped() {
    for (contents, expected) in [
        (&b"from-file\n"[..], "from-file"),
        (b"from-file\r\n", "from-file"),
        (b"from-file", "from-file"),
        (b" padded \n\n", " padded \n"),
    ] {
        let (_dir, path) = secret_file(contents);
        let s = vars(&[
            ("OIDC_ISSUER", "https://id.example.com"),
            ("OIDC_CLIENT_SECRET_FILE", &path),
        ])
        .unwrap();
        assert_eq!(s.client_secret().unwrap().secret(), expected);
    }
}

#[test]
fn unreadable_empty_or_huge_secret_files_are_refused() {
    let dir = tempdir::Dir::new();
    let missing = dir.path().join("nope");
    let (_e, empty) = secret_file(b"\n");
    let (_h, huge) = secret_file(&vec![b'a'; 64 * 1024 + 1]);
    let (_b, binary) = secret_file(&[0xff, 0xfe, 0x00]);
    let (_o, at_limit) = secret_file(&vec![b'a'; 64 * 1024]);
    for (path, problem_part) in [
        (missing.to_str().unwrap(), "opened"),
        (&empty, "empty"),
        (&huge, "64 KiB"),
        (&binary, "UTF-8"),
        (dir.path().to_str().unwrap(), "read"),
    ] {
        let (key, problem) = setting_error(vars(&[
            ("OIDC_ISSUER", "https://id.example.com"),
            ("OIDC_CLIENT_SECRET_FILE", path),
        ]));
        assert_eq!(key, "OIDC_CLIENT_SECRET_FILE");
        assert!(problem.contains(problem_part), "{path}: {problem}");
    }
    let s = vars(&[
        ("OIDC_ISSUER", "https://id.example.com"),
        ("OIDC_CLIENT_SECRET_FILE", &at_limit),
    ])
    .unwrap();
    assert_eq!(s.client_secret().unwrap().secret().len(), 64 * 1024);
}

#[test]
fn scopes_without_openid_or_with_bad_tokens_are_refused() {
    for scopes in [
        "email profile",
        "openid \"quoted\"",
        "openid back\\slash",
        "openid é",
    ] {
        let (key, _) = setting_error(vars(&[
            ("OIDC_ISSUER", "https://id.example.com"),
            ("OIDC_SCOPES", scopes),
        ]));
        assert_eq!(key, "OIDC_SCOPES", "{scopes}");
    }
}

#[test]
fn secrets_appear_in_neither_debug_nor_errors() {
    let s = vars(&[
        ("OIDC_ISSUER", "https://id.example.com"),
        ("OIDC_CLIENT_SECRET", SECRET),
    ])
    .unwrap();
    let debug = format!("{s:?}");
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(debug.contains("client_secret: Some(\"…\")"), "{debug}");
    let err = vars(&[
        ("OIDC_ISSUER", "https://id.example.com"),
        ("OIDC_CLIENT_SECRET", SECRET),
        ("OIDC_CLIENT_SECRET_FILE", "/nonexistent"),
    ])
    .unwrap_err();
    assert!(!format!("{err} {err:?}").contains(SECRET));
    let (_dir, path) = secret_file(format!("{SECRET}\n").as_bytes());
    let err = toml::from_str::<OidcSettings>(&format!(
        "issuer = \"https://id.example.com\"\nclient_secret_file = {path:?}\nscopes = \"email\"\n"
    ))
    .unwrap_err();
    assert!(!err.to_string().contains(SECRET), "{err}");
}

#[test]
fn toml_table_gives_the_settings_with_table_key_names_in_errors() {
    let (_dir, path) = secret_file(b"from-file\n");
    let s: OidcSettings = toml::from_str(&format!(
        r#"
        issuer = "https://id.example.com"
        client_id = "my-app"
        client_secret_file = {path:?}
        scopes = ["openid", "orders:read"]
        audience = "https://api.example.com"
        redirect_uri = "https://app.example.com/cb"
        "#
    ))
    .unwrap();
    assert_eq!(s.client_secret().unwrap().secret(), "from-file");
    assert_eq!(s.scopes(), ["openid", "orders:read"]);
    assert_eq!(s.audience(), Some("https://api.example.com"));

    let s: OidcSettings =
        toml::from_str("issuer = \"https://id.example.com\"\nscopes = \"openid email\"").unwrap();
    assert_eq!(s.scopes(), ["openid", "email"]);

    let err = toml::from_str::<OidcSettings>("client_id = \"my-app\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("setting issuer: is required"), "{err}");
    let err = toml::from_str::<OidcSettings>("issuer = \"\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("setting issuer: is set but empty"), "{err}");
}

#[test]
fn a_misspelt_table_key_is_refused() {
    let err = toml::from_str::<OidcSettings>(
        "issuer = \"https://id.example.com\"\nclient_secert = \"oops\"",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("unknown field `client_secert`"), "{err}");
}

#[test]
fn builders_name_the_setting_they_lack() {
    let s = vars(&[("OIDC_ISSUER", "https://id.example.com")]).unwrap();
    let provider = s.provider().unwrap();
    let Err(ConfigError::Setting { key, .. }) = s.client(provider.clone()) else {
        panic!("login without a client id");
    };
    assert_eq!(key, "OIDC_CLIENT_ID");
    let Err(ConfigError::Setting { key, .. }) = s.access_token_verifier(provider.clone()) else {
        panic!("bearer without an audience");
    };
    assert_eq!(key, "OIDC_AUDIENCE");

    let s = vars(&[
        ("OIDC_ISSUER", "https://id.example.com"),
        ("OIDC_CLIENT_ID", "my-app"),
    ])
    .unwrap();
    let Err(ConfigError::Setting { key, .. }) = s.client(provider.clone()) else {
        panic!("login without a redirect uri");
    };
    assert_eq!(key, "OIDC_REDIRECT_URI");
    let Err(ConfigError::Setting { key, .. }) = s.service_client(provider.clone()) else {
        panic!("service tokens without a secret");
    };
    assert_eq!(key, "OIDC_CLIENT_SECRET");

    let s = vars(&[
        ("OIDC_ISSUER", "http://id.example.com"),
        ("OIDC_CLIENT_ID", "my-app"),
    ])
    .unwrap();
    assert!(
        matches!(s.provider(), Err(ConfigError::InsecureUrl { .. })),
        "the provider builder still refuses plain http"
    );
}

#[tokio::test]
async fn settings_log_in_verify_tokens_and_get_service_tokens_at_the_provider() {
    let op = TestProvider::start().await;
    op.register_client(
        ClientRegistration::confidential("settings-app", SECRET, REDIRECT_URI)
            .with_access_token_audience("https://api.example.com"),
    );
    op.set_auto_login(Some("user-1"));
    let (_dir, path) = secret_file(format!("{SECRET}\n").as_bytes());
    let issuer = op.issuer();
    let s = vars(&[
        ("OIDC_ISSUER", &issuer),
        ("OIDC_CLIENT_ID", "settings-app"),
        ("OIDC_CLIENT_SECRET_FILE", &path),
        ("OIDC_REDIRECT_URI", REDIRECT_URI),
        ("OIDC_AUDIENCE", "https://api.example.com"),
    ])
    .unwrap();
    let provider = s.provider().unwrap();

    // Login with the secret read from the file (the token request authenticates with it).
    let client = s.client(provider.clone()).unwrap();
    let (tx, res) = authorize_at_provider(&client).await;
    let tokens = client
        .complete(
            &tx,
            AuthorizationResponse::from_query(callback_query(&res)).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(tokens.subject(), "user-1");

    // Bearer tokens for the configured audience pass, others do not.
    let verifier = s.access_token_verifier(provider.clone()).unwrap();
    let claims = verifier
        .verify::<serde_json::Value>(tokens.access_token().secret())
        .await
        .unwrap();
    assert_eq!(claims.subject(), "user-1");
    let other = op.token().audience("https://other.example.com").sign();
    assert!(verifier.verify::<serde_json::Value>(&other).await.is_err());

    // Service tokens with the same client and secret.
    let service = s.service_client(provider).unwrap();
    let token = service.token(&ServiceTokenRequest::new()).await.unwrap();
    assert!(!token.access_token().secret().is_empty());
}
