//! Linking OIDC identities to the app's own (local) accounts in the login hook, black-box:
//! by verified e-mail at the first login, by (issuer, subject) afterwards. The hook is the one
//! documented on `oidc_tower::login::OnLogin`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod login_common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use oidc_tower::login::{LoginInfo, LoginRefused};
use serde_json::{Value, json};

use login_common::{App, Builder, Jar};

/// The app's own accounts.
#[derive(Default)]
struct Accounts {
    /// Local account id by normalized, verified e-mail address.
    by_email: HashMap<String, String>,
    /// Local account id by OIDC identity: (issuer, subject).
    by_identity: HashMap<(String, String), String>,
    next_id: u64,
    /// Every login the hook saw: (subject, verified e-mail, the account chosen).
    seen: Vec<(String, Option<String>, String)>,
}

impl Accounts {
    /// Accounts that exist before OIDC is used (a password login).
    fn with_local(users: &[(&str, &str)]) -> Self {
        let mut accounts = Self::default();
        for (id, email) in users {
            accounts
                .by_email
                .insert(email.to_ascii_lowercase(), (*id).to_owned());
        }
        accounts
    }

    fn link(&mut self, login: &LoginInfo) -> String {
        let identity = (login.issuer().to_owned(), login.subject().to_owned());
        let id = if let Some(id) = self.by_identity.get(&identity) {
            id.clone()
        } else {
            let email = login.verified_email().map(str::to_ascii_lowercase);
            let existing = email.as_ref().and_then(|e| self.by_email.get(e)).cloned();
            let id = existing.unwrap_or_else(|| {
                self.next_id += 1;
                let id = format!("new-{}", self.next_id);
                if let Some(email) = email {
                    self.by_email.insert(email, id.clone());
                }
                id
            });
            self.by_identity.insert(identity, id.clone());
            id
        };
        self.seen.push((
            login.subject().to_owned(),
            login.verified_email().map(str::to_owned),
            id.clone(),
        ));
        id
    }
}

/// An app whose login hook links with `accounts`.
async fn app(accounts: &Arc<Mutex<Accounts>>) -> App {
    let accounts = accounts.clone();
    Builder::new()
        .layer(move |l| {
            l.with_login_hook(move |login: LoginInfo| {
                let linked = match accounts.lock() {
                    Ok(mut accounts) => Ok(Some(accounts.link(&login))),
                    Err(_) => Err(LoginRefused::new("accounts are unavailable")),
                };
                async move { linked }
            })
        })
        .start()
        .await
}

/// Logs `user` in (the provider's e-mail for it is `<user>@example.test`, verified, unless
/// the ID token is mutated) and returns `/me`.
async fn login_as(app: &App, user: &str) -> (Jar, Value) {
    app.op.set_auto_login(Some(user));
    let jar = app.login().await;
    let me = app.me(&jar).await;
    assert_eq!(me.status, 200, "{}", me.body);
    let me = me.json();
    assert_eq!(me["sub"], user);
    assert_eq!(me["iss"], app.op.issuer());
    (jar, me)
}

/// The provider's ID tokens say this about the e-mail from now on.
fn id_token_email(app: &App, email: &str, verified: Value) {
    app.op.clear_mutations();
    let email = email.to_owned();
    app.op.mutate_id_token(move |claims, _| {
        claims.insert("email".into(), Value::from(email.as_str()));
        claims.insert("email_verified".into(), verified.clone());
    });
}

#[tokio::test]
async fn verified_email_links_to_the_existing_local_account() {
    let accounts = Arc::new(Mutex::new(Accounts::with_local(&[
        ("local-alice", "Alice@Example.test"),
        ("local-bob", "bob@example.test"),
    ])));
    let app = app(&accounts).await;

    let (_, me) = login_as(&app, "alice").await;
    assert_eq!(me["local_user"], "local-alice");
    assert_eq!(me["email"], "alice@example.test");
    assert_eq!(me["claims"]["email_verified"], true);

    let issuer = app.op.issuer();
    let linked = accounts.lock().unwrap().by_identity.clone();
    assert_eq!(
        linked,
        HashMap::from([((issuer, "alice".to_owned()), "local-alice".to_owned())])
    );
}

#[tokio::test]
async fn second_login_of_the_subject_gets_the_same_account_whatever_the_email() {
    let accounts = Arc::new(Mutex::new(Accounts::with_local(&[
        ("local-alice", "alice@example.test"),
        ("local-carol", "carol@example.test"),
    ])));
    let app = app(&accounts).await;
    let (first, me) = login_as(&app, "alice").await;
    assert_eq!(me["local_user"], "local-alice");

    // The provider now gives alice carol's (verified) address: the link is by (iss, sub).
    id_token_email(&app, "carol@example.test", json!(true));
    let (second, me) = login_as(&app, "alice").await;
    assert_eq!(me["email"], "carol@example.test");
    assert_eq!(me["local_user"], "local-alice");
    assert_ne!(first.session(), second.session(), "two sessions");
    // The first session is still alice's too.
    assert_eq!(app.me(&first).await.json()["local_user"], "local-alice");

    // Without `email_verified` at all, still the same account.
    app.op.clear_mutations();
    app.op.mutate_id_token(|claims, _| {
        claims.insert("email".into(), json!("alice@example.test"));
        claims.remove("email_verified");
    });
    let (_, me) = login_as(&app, "alice").await;
    assert_eq!(me["local_user"], "local-alice");

    let accounts = accounts.lock().unwrap();
    assert_eq!(accounts.by_identity.len(), 1);
    assert!(accounts.seen.iter().all(|(_, _, id)| id == "local-alice"));
}

#[tokio::test]
async fn unverified_email_is_not_linked() {
    let accounts = Arc::new(Mutex::new(Accounts::with_local(&[(
        "local-alice",
        "alice@example.test",
    )])));
    let app = app(&accounts).await;

    // mallory's provider account claims alice's address without having verified it: a new
    // local account, not alice's. `"true"` as a string is not the boolean.
    for (user, verified) in [
        ("mallory", json!(false)),
        ("mallet", json!("true")),
        ("mal", json!(1)),
        ("eve", Value::Null),
    ] {
        id_token_email(&app, "alice@example.test", verified);
        let (_, me) = login_as(&app, user).await;
        assert_eq!(me["email"], "alice@example.test");
        let local = me["local_user"].as_str().unwrap().to_owned();
        assert!(local.starts_with("new-"), "{user}: {local}");
    }
    {
        let accounts = accounts.lock().unwrap();
        assert_eq!(accounts.by_identity.len(), 4);
        // The unverified address was not recorded for the new accounts.
        assert_eq!(accounts.by_email.len(), 1);
        assert_eq!(accounts.by_email["alice@example.test"], "local-alice");
        assert!(accounts.seen.iter().all(|(_, email, _)| email.is_none()));
    }

    // mallory's address is verified later: mallory keeps its own account (no late linking).
    id_token_email(&app, "alice@example.test", json!(true));
    let (_, me) = login_as(&app, "mallory").await;
    assert_eq!(me["local_user"], "new-1");

    // Alice herself, verified, gets her account.
    app.op.clear_mutations();
    let (_, me) = login_as(&app, "alice").await;
    assert_eq!(me["local_user"], "local-alice");
}

#[tokio::test]
async fn new_identity_with_a_verified_unknown_email_gets_a_new_account() {
    let accounts = Arc::new(Mutex::new(Accounts::with_local(&[(
        "local-alice",
        "alice@example.test",
    )])));
    let app = app(&accounts).await;
    let (_, dave) = login_as(&app, "dave").await;
    assert_eq!(dave["local_user"], "new-1");
    // The verified address is recorded for the new account; the same subject comes back to it.
    assert_eq!(
        accounts.lock().unwrap().by_email["dave@example.test"],
        "new-1"
    );
    let (_, again) = login_as(&app, "dave").await;
    assert_eq!(again["local_user"], "new-1");
}

/// What the hook saw: `email()`, `email_verified()`, `verified_email()`.
type EmailSeen = (Option<String>, bool, Option<String>);

#[tokio::test]
async fn login_info_email_accessors() {
    let seen: Arc<Mutex<Vec<EmailSeen>>> = Arc::default();
    let record = seen.clone();
    let app = Builder::new()
        .layer(move |l| {
            l.with_login_hook(move |login: LoginInfo| {
                record.lock().unwrap().push((
                    login.email().map(str::to_owned),
                    login.email_verified(),
                    login.verified_email().map(str::to_owned),
                ));
                async { Ok(None) }
            })
        })
        .start()
        .await;
    login_as(&app, "alice").await;
    id_token_email(&app, "x@example.test", json!(false));
    let (_, me) = login_as(&app, "alice").await;
    assert!(me["local_user"].is_null());
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (
                Some("alice@example.test".to_owned()),
                true,
                Some("alice@example.test".to_owned())
            ),
            (Some("x@example.test".to_owned()), false, None),
        ]
    );
}
