//! Configuration from the environment or a TOML (or any serde) table: the issuer, the client
//! id, its secret (inline or from a file), scopes, the API audience and the redirect URI, so
//! that a Flask/Authlib-style setup is a few lines.
//!
//! | key in a table | environment (prefix `OIDC_`) | meaning |
//! |---|---|---|
//! | `issuer` | `OIDC_ISSUER` | the provider's issuer URL (required); discovery finds the rest |
//! | `client_id` | `OIDC_CLIENT_ID` | this app's client id (needed for login, service tokens, and as the default audience) |
//! | `client_secret` | `OIDC_CLIENT_SECRET` | the client secret; unset: a public client (PKCE only) |
//! | `client_secret_file` | `OIDC_CLIENT_SECRET_FILE` | a file holding the secret (Docker/Kubernetes secrets); one trailing newline is dropped |
//! | `scopes` | `OIDC_SCOPES` | scopes requested at login: a list, or one space-separated string; default `openid profile email` |
//! | `audience` | `OIDC_AUDIENCE` | the `aud` an API accepts in bearer tokens; default the client id |
//! | `redirect_uri` | `OIDC_REDIRECT_URI` | the login callback URL (needed for login) |
//!
//! The environment names are the quickstart's; another prefix is
//! [`OidcSettings::from_env_prefixed`] (`"CORP_"` reads `CORP_ISSUER`…).
//!
//! # Decisions
//!
//! - **Mistakes stop the start, with the key named.** A key set to an empty value, a table
//!   key that is not in the list above (a typo such as `client_secert`), both `client_secret`
//!   and `client_secret_file`, a secret file that cannot be read, is empty or is larger than
//!   64 KiB, and a scope list without `openid` or with a scope that is not an RFC 6749 scope
//!   token are [`ConfigError::Setting`] errors that name the key as the user wrote it
//!   (`OIDC_CLIENT_SECRET_FILE` from the environment, `client_secret_file` from a table).
//! - **The secret file is read when the settings are loaded**, not on each use: a missing or
//!   unreadable file is found at startup. Its mode is not checked (container runtimes mount
//!   secrets 0444); keep it out of reach of other users.
//! - **Secrets never reach `Debug` or an error.** `Debug` shows `client_secret: "…"` when one
//!   is set; errors name the key, never the value. (A TOML parser's own syntax and
//!   unknown-key errors may quote the offending line: keep secrets in `client_secret_file`.)
//! - **Requirements are checked where they apply**: [`client`](OidcSettings::client) needs a
//!   client id and a redirect URI, [`service_client`](OidcSettings::service_client) a client id
//!   and a secret, [`access_token_verifier`](OidcSettings::access_token_verifier) an audience
//!   or a client id. An API-only service configures only `issuer` and `audience`.
//! - URLs are checked by the builders they go to ([`Provider::builder`],
//!   [`OidcClient::new`]): `https`, or `http` on a loopback host.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use oidc_core::settings::OidcSettings;
//!
//! // From the environment: `OidcSettings::from_env()?`. Here from a TOML table, which any
//! // serde format can give (`toml::from_str`); `from_vars` takes any list of variables.
//! let settings = OidcSettings::from_vars(
//!     "OIDC_",
//!     [
//!         ("OIDC_ISSUER", "https://id.example.com"),
//!         ("OIDC_CLIENT_ID", "my-app"),
//!         ("OIDC_CLIENT_SECRET", "s3cret"),
//!         ("OIDC_REDIRECT_URI", "https://app.example.com/auth/callback"),
//!     ],
//! )?;
//! let provider = settings.provider()?;
//! let client = settings.client(provider.clone())?; // browser login
//! let verifier = settings.access_token_verifier(provider)?; // bearer tokens, `aud` = my-app
//! assert_eq!(client.client_id(), "my-app");
//! assert!(!format!("{settings:?}").contains("s3cret"));
//! # Ok(())
//! # }
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::ConfigError;
use crate::flow::{OidcClient, Secret, ServiceClient};
use crate::provider::Provider;
use crate::verify::AccessTokenVerifier;

/// What a login client lacks without the key.
const NEEDED_FOR_LOGIN: &str = "is required for login";
/// What a service client lacks without the key.
const NEEDED_FOR_SERVICE: &str = "is required for service tokens";
/// The largest secret file read.
const MAX_SECRET_FILE: u64 = 64 * 1024;
/// The scopes requested when none are configured.
const DEFAULT_SCOPES: [&str; 3] = ["openid", "profile", "email"];

/// The settings of one provider and client, from the environment
/// ([`from_env`](Self::from_env)) or a deserialized table (`toml::from_str::<OidcSettings>`).
/// See the [module docs](self) for the keys and the checks.
#[derive(Clone, Deserialize)]
#[serde(try_from = "Table")]
pub struct OidcSettings {
    issuer: String,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    scopes: Vec<String>,
    audience: Option<String>,
    redirect_uri: Option<String>,
    /// How the keys are named in errors.
    naming: Naming,
}

impl std::fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "…"))
            .field("scopes", &self.scopes)
            .field("audience", &self.audience)
            .field("redirect_uri", &self.redirect_uri)
            .finish()
    }
}

/// Where the settings came from, to name a key as the user wrote it.
#[derive(Debug, Clone)]
enum Naming {
    Table,
    Env(String),
}

impl Naming {
    fn key(&self, table_key: &str) -> String {
        match self {
            Self::Table => table_key.to_owned(),
            Self::Env(prefix) => format!("{prefix}{}", table_key.to_ascii_uppercase()),
        }
    }

    fn error(&self, table_key: &str, problem: &'static str) -> ConfigError {
        ConfigError::Setting {
            key: self.key(table_key),
            problem,
        }
    }
}

/// The keys as given, before the checks.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    issuer: Option<String>,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    client_secret_file: Option<PathBuf>,
    scopes: Option<ScopeList>,
    audience: Option<String>,
    redirect_uri: Option<String>,
}

/// `scopes = ["openid", "email"]` or `scopes = "openid email"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum ScopeList {
    List(Vec<String>),
    Words(String),
}

impl TryFrom<Table> for OidcSettings {
    type Error = ConfigError;

    fn try_from(table: Table) -> Result<Self, ConfigError> {
        Self::check(table, Naming::Table)
    }
}

impl OidcSettings {
    /// The settings from the environment variables `OIDC_ISSUER`, `OIDC_CLIENT_ID`,
    /// `OIDC_CLIENT_SECRET` or `OIDC_CLIENT_SECRET_FILE`, `OIDC_SCOPES`, `OIDC_AUDIENCE` and
    /// `OIDC_REDIRECT_URI`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Setting`] naming the variable: `OIDC_ISSUER` unset, a variable empty or
    /// not UTF-8, and the other mistakes of the [module docs](self#decisions).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_prefixed("OIDC_")
    }

    /// [`from_env`](Self::from_env) with another prefix: `"CORP_"` reads `CORP_ISSUER`,
    /// `CORP_CLIENT_ID`… (one provider per prefix).
    ///
    /// # Errors
    ///
    /// As [`from_env`](Self::from_env).
    pub fn from_env_prefixed(prefix: &str) -> Result<Self, ConfigError> {
        let naming = Naming::Env(prefix.to_owned());
        let mut vars = Vec::new();
        for key in KEYS {
            let name = naming.key(key);
            match std::env::var(&name) {
                Ok(value) => vars.push((name, value)),
                Err(std::env::VarError::NotPresent) => {}
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(naming.error(key, "is not valid UTF-8"));
                }
            }
        }
        Self::from_vars(prefix, vars)
    }

    /// The settings from `vars` (name, value) with the names of
    /// [`from_env_prefixed`](Self::from_env_prefixed): for a `.env` parser, a secret store or
    /// a test. Names without `prefix`, or not among the keys, are ignored.
    ///
    /// # Errors
    ///
    /// As [`from_env`](Self::from_env).
    pub fn from_vars<I, K, V>(prefix: &str, vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let naming = Naming::Env(prefix.to_owned());
        let mut table = Table::default();
        for (name, value) in vars {
            let Some(key) = name.as_ref().strip_prefix(prefix) else {
                continue;
            };
            let value: String = value.into();
            match key {
                "ISSUER" => table.issuer = Some(value),
                "CLIENT_ID" => table.client_id = Some(value),
                "CLIENT_SECRET" => table.client_secret = Some(Secret::new(value)),
                "CLIENT_SECRET_FILE" => table.client_secret_file = Some(PathBuf::from(value)),
                "SCOPES" => table.scopes = Some(ScopeList::Words(value)),
                "AUDIENCE" => table.audience = Some(value),
                "REDIRECT_URI" => table.redirect_uri = Some(value),
                _ => {}
            }
        }
        Self::check(table, naming)
    }

    fn check(table: Table, naming: Naming) -> Result<Self, ConfigError> {
        let text = |key: &str, value: Option<String>| match value {
            Some(v) if v.trim().is_empty() => Err(naming.error(key, "is set but empty")),
            v => Ok(v),
        };
        let issuer = text("issuer", table.issuer)?
            .ok_or_else(|| naming.error("issuer", "is required: the provider's issuer URL"))?;
        let client_secret = match (table.client_secret, table.client_secret_file) {
            (Some(_), Some(_)) => {
                return Err(naming.error(
                    "client_secret_file",
                    "is set together with the client secret: set one of them",
                ));
            }
            (Some(secret), None) if secret.secret().is_empty() => {
                return Err(naming.error("client_secret", "is set but empty"));
            }
            (Some(secret), None) => Some(secret),
            (None, Some(path)) => Some(read_secret_file(&path, &naming)?),
            (None, None) => None,
        };
        let scopes = match table.scopes {
            None => DEFAULT_SCOPES.map(str::to_owned).to_vec(),
            Some(ScopeList::List(list)) => list,
            Some(ScopeList::Words(words)) => {
                words.split_ascii_whitespace().map(str::to_owned).collect()
            }
        };
        if !scopes.iter().any(|s| s == "openid") {
            return Err(naming.error("scopes", "must include openid"));
        }
        if !scopes.iter().all(|s| is_scope_token(s)) {
            return Err(naming.error(
                "scopes",
                "has a scope that is not a scope token (RFC 6749 §3.3: visible ASCII without '\"' and '\\')",
            ));
        }
        Ok(Self {
            issuer,
            client_id: text("client_id", table.client_id)?,
            client_secret,
            scopes,
            audience: text("audience", table.audience)?,
            redirect_uri: text("redirect_uri", table.redirect_uri)?,
            naming,
        })
    }

    /// The issuer URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The client id, when set.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// The client secret (from the setting or its file), when set. Never log it.
    pub fn client_secret(&self) -> Option<&Secret> {
        self.client_secret.as_ref()
    }

    /// The scopes requested at login (`openid profile email` unless set).
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The audience bearer tokens must carry: the `audience` setting, else the client id.
    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref().or(self.client_id.as_deref())
    }

    /// The login callback URL, when set.
    pub fn redirect_uri(&self) -> Option<&str> {
        self.redirect_uri.as_deref()
    }

    /// The provider of [`issuer`](Self::issuer), with discovery and the default settings of
    /// [`Provider::builder`]; use the builder for more.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] from [`ProviderBuilder::build`](crate::ProviderBuilder::build) (an
    /// issuer that is not an `https` URL, or `http` on a loopback host).
    pub fn provider(&self) -> Result<Provider, ConfigError> {
        Provider::builder(self.issuer.clone()).build()
    }

    /// The browser-login client: the client id, the redirect URI, the scopes, and the secret
    /// when set (a public client with PKCE otherwise).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Setting`] when the client id or the redirect URI is not set;
    /// [`ConfigError`] from [`OidcClient::new`] for a redirect URI it refuses.
    pub fn client(&self, provider: Provider) -> Result<OidcClient, ConfigError> {
        let client_id = self.require(self.client_id.as_deref(), "client_id", NEEDED_FOR_LOGIN)?;
        let redirect = self.require(
            self.redirect_uri.as_deref(),
            "redirect_uri",
            NEEDED_FOR_LOGIN,
        )?;
        let mut client =
            OidcClient::new(provider, client_id, redirect)?.with_scopes(self.scopes.iter());
        if let Some(secret) = &self.client_secret {
            client = client.with_client_secret(secret.secret());
        }
        Ok(client)
    }

    /// The bearer-token verifier for [`audience`](Self::audience).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Setting`] when neither the audience nor the client id is set.
    pub fn access_token_verifier(
        &self,
        provider: Provider,
    ) -> Result<AccessTokenVerifier, ConfigError> {
        let audience = self.require(
            self.audience(),
            "audience",
            "is required for bearer tokens (or the client id)",
        )?;
        Ok(AccessTokenVerifier::new(provider, audience))
    }

    /// The client-credentials client (service tokens) of the client id and secret.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Setting`] when the client id or the secret is not set.
    pub fn service_client(&self, provider: Provider) -> Result<ServiceClient, ConfigError> {
        let client_id = self.require(self.client_id.as_deref(), "client_id", NEEDED_FOR_SERVICE)?;
        let secret = self
            .client_secret
            .as_ref()
            .ok_or_else(|| self.naming.error("client_secret", NEEDED_FOR_SERVICE))?;
        Ok(ServiceClient::new(provider, client_id, secret.secret()))
    }

    fn require<'a>(
        &self,
        value: Option<&'a str>,
        key: &str,
        problem: &'static str,
    ) -> Result<&'a str, ConfigError> {
        value.ok_or_else(|| self.naming.error(key, problem))
    }
}

/// The table keys, in the order of the module docs.
const KEYS: [&str; 7] = [
    "issuer",
    "client_id",
    "client_secret",
    "client_secret_file",
    "scopes",
    "audience",
    "redirect_uri",
];

/// An RFC 6749 §3.3 scope token: `%x21 / %x23-5B / %x5D-7E`, at least one.
fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// The secret in `path`: at most 64 KiB of UTF-8, one trailing newline dropped, not empty.
fn read_secret_file(path: &Path, naming: &Naming) -> Result<Secret, ConfigError> {
    let key = "client_secret_file";
    let file = std::fs::File::open(path).map_err(|_| naming.error(key, "cannot be opened"))?;
    let mut text = String::new();
    file.take(MAX_SECRET_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|_| naming.error(key, "cannot be read as UTF-8 text"))?;
    if text.len() as u64 > MAX_SECRET_FILE {
        return Err(naming.error(key, "is larger than 64 KiB"));
    }
    let secret = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if secret.is_empty() {
        return Err(naming.error(key, "is empty"));
    }
    Ok(Secret::new(secret))
}
