//! `[[provider]]`: the OpenID Providers users sign in with.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Deserialize;

use super::{
    BACKCHANNEL_LOGOUT_PATH, CALLBACK_PATH, ConfigError, EndpointSettings, LOGIN_PATH,
    SIGN_OUT_PATH, SecretString, USERINFO_PATH, err, valid_segment,
};
use crate::routes::check_prefix;

/// One `[[provider]]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Name (URL segment of `/oauth2/start/{name}`).
    pub name: Option<String>,
    /// Name shown on the login page.
    pub display_name: Option<String>,
    /// Issuer URL (discovery finds the rest).
    pub issuer: Option<String>,
    /// Client id registered at the provider.
    pub client_id: Option<String>,
    /// Client secret (unset: a public client with PKCE).
    pub client_secret: Option<SecretString>,
    /// File holding the client secret.
    pub client_secret_file: Option<PathBuf>,
    /// Scopes requested at login.
    pub scopes: Option<Vec<String>>,
    /// Callback path under the public URL.
    pub redirect_path: Option<String>,
    /// The `aud` accepted in bearer tokens (default: the client id).
    pub audience: Option<String>,
    /// Whether this provider's access tokens are accepted on bearer routes.
    pub accept_bearer: Option<bool>,
    /// Accept only bearer tokens with the RFC 9068 header `typ: at+jwt` (default: true when
    /// the audience is a client id, false for an audience of its own).
    pub require_at_jwt: Option<bool>,
    /// Allow `http` provider URLs on non-loopback hosts.
    pub insecure_allow_http: Option<bool>,
}

/// Checks every provider, and that their names and callbacks are their own.
pub(super) fn validate_all(
    configs: &[ProviderConfig],
    origin: &str,
    endpoints: &EndpointSettings,
) -> Result<Vec<ProviderSettings>, ConfigError> {
    if configs.is_empty() {
        return err(
            "no provider: add a [[provider]] table with issuer and client_id \
             (or set AUTH_PROXY_ISSUER and AUTH_PROXY_CLIENT_ID)",
        );
    }
    let several = configs.len() > 1;
    let mut providers = Vec::new();
    let mut names = BTreeSet::new();
    for (i, p) in configs.iter().enumerate() {
        let settings = p.validate(i, several, origin)?;
        if !names.insert(settings.name.clone()) {
            return err(format!(
                "provider {:?}: two providers have this name; give each its own `name`",
                settings.name
            ));
        }
        providers.push(settings);
    }
    require_at_jwt(configs, &mut providers)?;
    let mut callbacks = BTreeSet::new();
    for p in &providers {
        if !callbacks.insert((p.issuer.clone(), p.redirect_path.clone())) {
            return err(format!(
                "provider {:?}: another provider with the same issuer uses the redirect_path \
                 {:?}; give each its own",
                p.name, p.redirect_path
            ));
        }
        let taken = crate::routes::prefix_matches(LOGIN_PATH, p.redirect_path.as_bytes())
            || [SIGN_OUT_PATH, BACKCHANNEL_LOGOUT_PATH, USERINFO_PATH]
                .contains(&p.redirect_path.as_str());
        if taken {
            return err(format!(
                "provider {:?}: redirect_path {:?} is one of the proxy's own routes",
                p.name, p.redirect_path
            ));
        }
        for endpoint in endpoints.paths() {
            if p.redirect_path == endpoint {
                return err(format!(
                    "provider {:?}: redirect_path {:?} collides with a built-in endpoint",
                    p.name, p.redirect_path
                ));
            }
        }
    }
    Ok(providers)
}

/// Resolves `require_at_jwt` of each provider. An ID token has `aud` = the client id and may
/// have `typ: JWT`: when a provider's bearer audience is a client id at that issuer (the
/// default audience is its own), only `typ: at+jwt` tells an access token from an ID token,
/// so the check is on and may not be turned off. With an audience of its own (an API
/// identifier that no client has), it is off unless set: Keycloak, Entra ID and Auth0 send
/// `typ: JWT`, and the verifier still refuses tokens with `nonce`, `at_hash` or `c_hash`.
fn require_at_jwt(
    configs: &[ProviderConfig],
    providers: &mut [ProviderSettings],
) -> Result<(), ConfigError> {
    let client_ids: BTreeSet<(String, String)> = providers
        .iter()
        .map(|p| (p.issuer.clone(), p.client_id.clone()))
        .collect();
    for (config, p) in configs.iter().zip(providers.iter_mut()) {
        let audience_is_a_client = client_ids.contains(&(p.issuer.clone(), p.audience.clone()));
        p.require_at_jwt = match (config.require_at_jwt, audience_is_a_client) {
            (Some(false), true) if p.accept_bearer => {
                return err(format!(
                    "provider {:?}: require_at_jwt = false needs an audience of its own: the \
                     audience {:?} is a client id, and an ID token issued to that client \
                     would pass as an access token; set `audience` to the `aud` your provider \
                     puts in access tokens for this API",
                    p.name, p.audience
                ));
            }
            (Some(set), _) => set,
            (None, is_client) => is_client,
        };
    }
    Ok(())
}

/// The provider's `name`; unset: `default` for the first provider, `provider<N>` for the
/// others (N counting from 1).
pub(super) fn provider_name(p: &ProviderConfig, index: usize) -> String {
    match &p.name {
        Some(name) => name.clone(),
        None if index == 0 => "default".to_owned(),
        None => format!("provider{}", index + 1),
    }
}

impl ProviderConfig {
    /// Checks one provider (the `index`th, of `several` or one) with its defaults, for the
    /// proxy at `origin`; `require_at_jwt` is resolved later, by [`require_at_jwt`].
    fn validate(
        &self,
        index: usize,
        several: bool,
        origin: &str,
    ) -> Result<ProviderSettings, ConfigError> {
        let name = provider_name(self, index);
        let at = |what: &str| format!("provider {name:?}: {what}");
        if !valid_segment(&name) {
            return err(at(
                "name must be 1 to 64 letters, digits, '-', '_' or '.' (it appears in /oauth2/start/{name})",
            ));
        }
        let Some(issuer) = self.issuer.clone().filter(|s| !s.is_empty()) else {
            return err(at("issuer is required (or AUTH_PROXY_ISSUER)"));
        };
        let Some(client_id) = self.client_id.clone().filter(|s| !s.is_empty()) else {
            return err(at("client_id is required (or AUTH_PROXY_CLIENT_ID)"));
        };
        let client_secret = match (&self.client_secret, &self.client_secret_file) {
            (Some(_), Some(_)) => {
                return err(at("set client_secret or client_secret_file, not both"));
            }
            (Some(secret), None) if secret.expose().is_empty() => {
                return err(at("client_secret is empty"));
            }
            (Some(secret), None) => Some(secret.clone()),
            (None, Some(file)) => {
                let text = std::fs::read_to_string(file).map_err(|e| {
                    ConfigError::new(at(&format!(
                        "cannot read client_secret_file {}: {e}",
                        file.display()
                    )))
                })?;
                let secret = text.trim_end_matches(['\r', '\n']).to_owned();
                if secret.is_empty() {
                    return err(at(&format!(
                        "client_secret_file {} is empty",
                        file.display()
                    )));
                }
                Some(SecretString::new(secret))
            }
            (None, None) => None,
        };
        let scopes = self
            .scopes
            .clone()
            .unwrap_or_else(|| ["openid", "profile", "email"].map(str::to_owned).to_vec());
        if !scopes.iter().any(|s| s == "openid") {
            return err(at("scopes must include openid"));
        }
        if let Some(bad) = scopes
            .iter()
            .find(|s| s.is_empty() || s.bytes().any(|b| b <= b' ' || b == b'"' || b == b'\\'))
        {
            return err(at(&format!("scope {bad:?} is not a valid scope token")));
        }
        let redirect_path = match &self.redirect_path {
            Some(path) => path.clone(),
            None if several => format!("{CALLBACK_PATH}/{name}"),
            None => CALLBACK_PATH.to_owned(),
        };
        check_prefix(&redirect_path)
            .map_err(|e| ConfigError::new(at(&format!("redirect_path: {e}"))))?;
        let audience = self.audience.clone().unwrap_or_else(|| client_id.clone());
        Ok(ProviderSettings {
            display_name: self.display_name.clone().unwrap_or_else(|| {
                url::Url::parse(&issuer)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or_else(|| name.clone())
            }),
            redirect_uri: format!("{origin}{redirect_path}"),
            name,
            issuer,
            client_id,
            client_secret,
            scopes,
            redirect_path,
            audience,
            accept_bearer: self.accept_bearer.unwrap_or(true),
            // Resolved once every provider is known (see `require_at_jwt`).
            require_at_jwt: true,
            insecure_allow_http: self.insecure_allow_http.unwrap_or(false),
        })
    }
}

/// A checked provider.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// Name.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// Issuer.
    pub issuer: String,
    /// Client id.
    pub client_id: String,
    /// Client secret (`None`: public client).
    pub client_secret: Option<SecretString>,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Callback path.
    pub redirect_path: String,
    /// `public_url` + `redirect_path`.
    pub redirect_uri: String,
    /// Bearer audience.
    pub audience: String,
    /// Accept this provider's bearer tokens on bearer routes.
    pub accept_bearer: bool,
    /// Accept only bearer tokens with `typ: at+jwt`.
    pub require_at_jwt: bool,
    /// Allow `http` provider URLs anywhere.
    pub insecure_allow_http: bool,
}

#[cfg(test)]
mod tests {
    use crate::config::FileConfig;
    use crate::config::tests::{MINIMAL, settings};

    #[test]
    fn several_providers_get_their_own_callbacks() {
        let s = settings(
            r#"
            [[provider]]
            name = "staff"
            issuer = "https://a.example.com"
            client_id = "p"
            [[provider]]
            name = "partners"
            issuer = "https://b.example.com"
            client_id = "p"
            [[upstream]]
            url = "http://127.0.0.1:1"
            "#,
        )
        .unwrap();
        assert_eq!(s.providers[0].redirect_path, "/oauth2/callback/staff");
        assert_eq!(s.providers[1].redirect_path, "/oauth2/callback/partners");
    }

    #[test]
    fn id_tokens_cannot_pass_as_bearer_tokens_by_default() {
        let provider = |extra: &str| {
            format!(
                "[[provider]]\nissuer = \"https://id.example.com\"\nclient_id = \"proxy\"\n{extra}\n\
                 [[upstream]]\nurl = \"http://127.0.0.1:8080\""
            )
        };
        // The audience defaults to the client id: at+jwt is required, and cannot be turned off.
        let s = settings(MINIMAL).unwrap();
        assert!(s.providers[0].require_at_jwt);
        let e = settings(&provider("require_at_jwt = false")).unwrap_err();
        assert!(e.to_string().contains("require_at_jwt = false"), "{e}");
        // Set explicitly to the client id: the same.
        let s = settings(&provider("audience = \"proxy\"")).unwrap();
        assert!(s.providers[0].require_at_jwt);
        // Another provider's client id at the same issuer counts as a client id too.
        let two = r#"
            [[provider]]
            name = "a"
            issuer = "https://id.example.com"
            client_id = "proxy"
            audience = "other-client"
            [[provider]]
            name = "b"
            issuer = "https://id.example.com"
            client_id = "other-client"
            accept_bearer = false
            [[upstream]]
            url = "http://127.0.0.1:8080"
        "#;
        assert!(settings(two).unwrap().providers[0].require_at_jwt);
        // An audience of its own: off unless asked for.
        let own = provider("audience = \"api://orders\"");
        assert!(!settings(&own).unwrap().providers[0].require_at_jwt);
        let strict = provider("audience = \"api://orders\"\nrequire_at_jwt = true");
        assert!(settings(&strict).unwrap().providers[0].require_at_jwt);
        // Not accepting bearer tokens at all: nothing to refuse.
        let off = provider("accept_bearer = false\nrequire_at_jwt = false");
        assert!(settings(&off).is_ok());
        // From the environment.
        let mut file = FileConfig::from_toml(&own).unwrap();
        file.apply_env(&[("AUTH_PROXY_REQUIRE_AT_JWT", "true")])
            .unwrap();
        assert!(file.validate().unwrap().providers[0].require_at_jwt);
    }
}
