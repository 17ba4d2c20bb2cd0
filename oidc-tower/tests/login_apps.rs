//! Apps sharing one session store never accept each other's sessions (issue 11, item 9): a
//! session records the app's namespace (by default its client id) and the client id it was made
//! for, store keys are namespaced per app, and a layer treats another app's session as no
//! session at all, without using, changing or ending it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod login_common;

use std::collections::HashMap;
use std::str::FromStr as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use login_common::{App, Builder, Jar, USER};
use oidc_testing::TestProvider;
use oidc_tower::login::registry::RegistryError;
use oidc_tower::login::{MemoryRegistry, SessionRegistry};
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};

/// One store and one registry, shared by every app given a clone (as one Redis server), whose
/// records can be listed.
#[derive(Debug, Clone, Default)]
struct Shared {
    sessions: Arc<Mutex<HashMap<Id, Record>>>,
    registry: MemoryRegistry,
}

impl Shared {
    /// Every record: store key → (data, expiry).
    fn records(&self) -> HashMap<Id, (serde_json::Value, i128)> {
        self.sessions
            .lock()
            .unwrap()
            .iter()
            .map(|(id, r)| {
                (
                    *id,
                    (
                        serde_json::to_value(&r.data).unwrap(),
                        r.expiry_date.unix_timestamp_nanos(),
                    ),
                )
            })
            .collect()
    }
}

#[async_trait]
impl SessionStore for Shared {
    async fn create(&self, record: &mut Record) -> tower_sessions::session_store::Result<()> {
        let mut sessions = self.sessions.lock().unwrap();
        while sessions.contains_key(&record.id) {
            record.id = Id::default();
        }
        sessions.insert(record.id, record.clone());
        Ok(())
    }
    async fn save(&self, record: &Record) -> tower_sessions::session_store::Result<()> {
        self.sessions
            .lock()
            .unwrap()
            .insert(record.id, record.clone());
        Ok(())
    }
    async fn load(&self, id: &Id) -> tower_sessions::session_store::Result<Option<Record>> {
        Ok(self.sessions.lock().unwrap().get(id).cloned())
    }
    async fn delete(&self, id: &Id) -> tower_sessions::session_store::Result<()> {
        self.sessions.lock().unwrap().remove(id);
        Ok(())
    }
}

#[async_trait]
impl SessionRegistry for Shared {
    async fn insert(&self, key: &str, ttl: Duration) -> Result<bool, RegistryError> {
        self.registry.insert(key, ttl).await
    }
    async fn contains(&self, key: &str) -> Result<bool, RegistryError> {
        self.registry.contains(key).await
    }
    async fn remove(&self, key: &str) -> Result<(), RegistryError> {
        self.registry.remove(key).await
    }
    async fn add_member(
        &self,
        set: &str,
        member: &str,
        ttl: Duration,
    ) -> Result<(), RegistryError> {
        self.registry.add_member(set, member, ttl).await
    }
    async fn take_members(&self, set: &str) -> Result<Vec<String>, RegistryError> {
        self.registry.take_members(set).await
    }
}

/// Two apps with their own client ids on one provider and one shared store; `edit` is applied
/// to both layers.
async fn two_apps(
    edit: impl Fn(oidc_tower::login::LoginLayer) -> oidc_tower::login::LoginLayer
    + Clone
    + Send
    + 'static,
) -> (Shared, App, App) {
    let op = TestProvider::start().await;
    let shared = Shared::default();
    let a = Builder::new()
        .op(&op)
        .client_id("app-a")
        .registration(|r| r.with_backchannel_logout_uri("http://127.0.0.1:9/unused"))
        .layer(edit.clone())
        .shared_store(shared.clone())
        .start()
        .await;
    let b = Builder::new()
        .op(&op)
        .client_id("app-b")
        .layer(edit)
        .shared_store(shared.clone())
        .start()
        .await;
    (shared, a, b)
}

/// `jar`'s session cookie, sent to `app` (a cookie of another app on the same host reaches it:
/// cookies do not tell ports apart).
async fn with_cookie_of(app: &App, jar: &Jar, path: &str) -> login_common::Resp {
    let mut copy = jar.clone();
    app.api(path, &mut copy).await
}

/// Asserts that `other` does not accept `jar` (a session of `owner`), in any way a browser
/// or an attacker can present it, and that `owner`'s session is untouched afterwards.
async fn assert_foreign_session_refused(owner: &App, other: &App, jar: &Jar, shared: &Shared) {
    let id = Id::from_str(jar.session().unwrap()).unwrap();
    let records_before = shared.records();
    assert!(!records_before.is_empty());
    assert!(
        !records_before.contains_key(&id),
        "records are not stored under the cookie id (the key is namespaced)"
    );

    // An API request: 401, no redirect; a navigation: sent to log in at `other`.
    let api = with_cookie_of(other, jar, "/me").await;
    assert_eq!(
        api.status, 401,
        "another app's session is no session: {}",
        api.body
    );
    assert!(api.location().is_none());
    let mut nav_jar = jar.clone();
    let nav = other.nav("/app", &mut nav_jar).await;
    assert_eq!(nav.status, 303, "{}", nav.body);
    let to = nav.location().unwrap();
    assert!(
        to.starts_with(&other.op.authorization_endpoint())
            && to.contains(&format!("client_id={}&", other.layer.client().client_id())),
        "sent to log in at the other app's provider as that app: {to}"
    );
    // Logging out at `other` with the cookie does not end `owner`'s session.
    let mut logout_jar = jar.clone();
    let logout = other.logout(&mut logout_jar).await;
    assert!(
        logout.status == 303 || logout.status == 200,
        "{}",
        logout.body
    );

    // A full login at `other` in the same browser (the foreign cookie present) works, gets a
    // fresh session of `other`'s own, and leaves `owner`'s record alone.
    let mut login_jar = jar.clone();
    let authorize = other.begin(&mut login_jar, Some("/me")).await;
    assert_ne!(
        login_jar.session(),
        jar.session(),
        "the login start did not write into the other app's session"
    );
    let callback = other.authorize(&authorize).await;
    let res = other.callback(&callback, &mut login_jar).await;
    assert_eq!(res.status, 303, "{}", res.body);
    let me = other.me(&login_jar).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["sub"], USER);

    // `owner`'s session: still there, unchanged, and still logged in at `owner`.
    let records_after = shared.records();
    for (key, before) in &records_before {
        assert_eq!(
            records_after.get(key),
            Some(before),
            "every record that was there before is still there, unchanged"
        );
    }
    assert!(
        records_after.len() > records_before.len(),
        "the login at the other app made its own"
    );
    owner.assert_logged_in(jar).await;
}

#[tokio::test]
async fn apps_sharing_a_store_never_accept_each_others_sessions() {
    let (shared, a, b) = two_apps(|l| l).await;
    let jar_a = a.login().await;
    a.assert_logged_in(&jar_a).await;
    assert_foreign_session_refused(&a, &b, &jar_a, &shared).await;
    // And the other way round.
    let jar_b = b.login().await;
    assert_foreign_session_refused(&b, &a, &jar_b, &shared).await;
}

#[tokio::test]
async fn same_namespace_and_another_client_id_is_still_no_session() {
    // A misconfiguration (two apps given one namespace): the client id recorded in the login
    // still tells them apart.
    let (shared, a, b) = two_apps(|l| l.with_store_namespace("shared")).await;
    let jar_a = a.login().await;
    assert_foreign_session_refused(&a, &b, &jar_a, &shared).await;
}

#[tokio::test]
async fn the_empty_namespace_still_tells_apps_apart_by_client_id() {
    let (shared, a, b) = two_apps(|l| l.with_store_namespace("")).await;
    let jar_a = a.login().await;
    let id = Id::from_str(jar_a.session().unwrap()).unwrap();
    assert!(
        shared.records().contains_key(&id),
        "the empty namespace keys records by cookie id, as before namespaces"
    );
    let api = with_cookie_of(&b, &jar_a, "/me").await;
    assert_eq!(api.status, 401, "{}", api.body);
    a.assert_logged_in(&jar_a).await;
}

#[tokio::test]
async fn back_channel_logout_at_one_app_leaves_the_other_apps_sessions() {
    let (_shared, a, b) = two_apps(|l| l).await;
    let jar_a = a.login().await;
    let jar_b = b.login().await;
    // The provider logs the user out of app B only (a logout token for B, by `sub`).
    let token = b.op.logout_token("app-b", Some(USER), None).sign();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("logout_token", &token)
        .finish();
    let req = b
        .http
        .post(format!("{}/auth/backchannel-logout", b.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    let res = b.send(req, &mut Jar::default()).await;
    assert_eq!(res.status, 200, "{}", res.body);
    b.assert_not_logged_in(&jar_b).await;
    // B's registry entries are B's: A's session of the same user survives.
    a.assert_logged_in(&jar_a).await;
}

#[tokio::test]
async fn instances_of_one_app_share_sessions_through_the_store() {
    // Two instances of one app (one client id, reached at two URLs) behind the same store: a
    // login on one is valid on the other (the refusals above are not refusing everything).
    let op = TestProvider::start().await;
    let shared = Shared::default();
    let one = Builder::new()
        .op(&op)
        .shared_store(shared.clone())
        .start()
        .await;
    let jar = one.login().await;
    let two = Builder::new()
        .op(&op)
        .shared_store(shared.clone())
        .start()
        .await;
    let me = two.me(&jar).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["sub"], USER);
    // An instance given another namespace (same client id) does not see it.
    let other = Builder::new()
        .op(&op)
        .layer(|l| l.with_store_namespace("another-app"))
        .shared_store(shared)
        .start()
        .await;
    assert_eq!(other.me(&jar).await.status, 401);
    one.assert_logged_in(&jar).await;
}
