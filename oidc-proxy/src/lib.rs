//! `oidc-proxy`: an authenticating reverse proxy built from the `oidc-tower` layers, for apps
//! that cannot change (a dashboard, a third-party UI). Users sign in with OpenID Connect at the
//! proxy; each request then reaches the upstream with the user in `X-Forwarded-*` headers.
//!
//! ```text
//! cargo run -p oidc-proxy -- --config oidc-proxy/oidc-proxy.example.toml
//! ```
//!
//! # What it does
//!
//! - **Login** with [`LoginLayer`](oidc_tower::login::LoginLayer): authorization code + PKCE,
//!   server-side sessions, refresh, revalidation, logout, one or several providers.
//! - **Per route**: `routes.skip_auth` are forwarded without authentication; `routes.api`
//!   answer 401 instead of redirecting to the login; `routes.bearer` also accept
//!   `Authorization: Bearer` access tokens (verified as by `BearerAuthLayer`: a bad token gets
//!   401 with `WWW-Authenticate`). Elsewhere a browser navigation without a session is sent to
//!   the login and anything else gets 401. A rule is `PATH` or `METHOD=PATH`: a `PATH` that
//!   ends with `/` is a prefix (`/static/` covers `/static/a.css`), any other names that one
//!   path (`GET=/favicon.ico` covers `/favicon.ico`, not `/favicon.ico/x`; write `/api/`, not
//!   `/api`, for everything under `/api/`).
//! - **Identity headers** for every authenticated request: `X-Forwarded-User` (the
//!   `headers.user_claim`, default `sub`), `X-Forwarded-Email`, `X-Forwarded-Groups` (comma
//!   separated: `headers.groups_claim`, default the identity's roles and groups),
//!   `X-Forwarded-Preferred-Username`, `X-Forwarded-Issuer` (the verified `iss`),
//!   `X-Forwarded-Provider` (the `[[provider]]` name), and on request
//!   `X-Forwarded-Access-Token` and `Authorization: Bearer`. See [Identity](#identity) for
//!   what each carries.
//! - **Client headers** that name a user or rewrite the request are removed on every route
//!   (skip-auth ones too), in any case and also spelled with `_` (`X_Forwarded_User`, which
//!   CGI-style servers read as the same header): the proxy's own, and those of oauth2-proxy
//!   (`X-Auth-Request-*`), Authelia and Apache (`Remote-*`), Kubernetes (`X-Remote-*`),
//!   Grafana (`X-WEBAUTH-*`), IIS and Symfony (`X-Original-URL`, `X-Rewrite-URL`), method
//!   overrides and more: the list is [`identity::STRIPPED_HEADERS`]; `headers.strip` adds to
//!   it. The client's `Authorization` goes too when the proxy sets it. The proxy's session
//!   cookie never reaches an upstream, and an upstream's `Set-Cookie` for it (any
//!   `__Host-`/`__Secure-` form, any case, or a nameless cookie whose value starts with it) is
//!   dropped, logged at warn and counted.
//! - **Forwarding** by path prefix to several upstreams (longest prefix wins, optionally
//!   stripped), with hyper's HTTP/1.1 client: request and response bodies stream (nothing is
//!   buffered, uploads of any size pass), websocket handshakes (a `GET` with `Connection: upgrade` and exactly one
//!   `Upgrade: websocket`, any case) are spliced once the upstream answers 101 with
//!   `Upgrade: websocket`; any other upgrade (`h2c`, an unknown protocol, several values, a
//!   non-`GET` handshake) is answered 400 and never reaches the upstream, and a 101 the proxy
//!   did not ask for, or to another protocol, is answered 502 and never spliced,
//!   hop-by-hop headers are removed, and `X-Forwarded-For`, `-Proto` and `-Host` are set (the
//!   client's are replaced unless `reverse_proxy = true`).
//! - **Paths** that an upstream could read differently than the proxy (dot segments, also
//!   encoded, `..;`, backslashes, control characters, broken `%`-encoding) are refused with 400
//!   before any rule is consulted; a rule's prefix must match the path both as sent and
//!   decoded.
//!
//! # Identity
//!
//! - `X-Forwarded-User` is the `headers.user_claim` of the verified claims (ID token and
//!   UserInfo for a session, the access token on bearer routes), or `sub` when that claim is
//!   missing. With `user_claim = "email"` it is a verified address or nothing: a request whose
//!   e-mail is missing or not verified is refused with 403 rather than sent with `sub`,
//!   which the upstream would take for an address. A user with a control character is
//!   refused with 403 too, and so is `/oauth2/userinfo` for such a user.
//! - `X-Forwarded-Email` (and the `email` of `/oauth2/userinfo`) is sent only when the
//!   provider says `email_verified: true`, the JSON boolean: a string `"true"`, a missing
//!   claim or `false` count as not verified, as with oauth2-proxy. Anyone can put any address
//!   in an account at many providers. `headers.insecure_allow_unverified_email = true` sends
//!   unverified addresses too: only for a provider that verifies every address it issues.
//! - **Several providers**: a user is the pair (`X-Forwarded-Issuer`, `X-Forwarded-User`),
//!   never the user alone: two providers can issue the same `sub` (or e-mail) to two people.
//!   An upstream keys its accounts on both (`https://id.example.com|alice`), or maps each
//!   issuer to its own namespace; `X-Forwarded-Provider` names the `[[provider]]`
//!   (`/oauth2/start/{name}`) for display and routing, and two providers may share an issuer.
//!   Both headers are sent on every authenticated request, for sessions and bearer tokens.
//! - **Bearer tokens and ID tokens**: an ID token has `aud` = the client id. When a provider's
//!   bearer `audience` is a client id at that issuer (the default: its own), only the RFC 9068
//!   header `typ: at+jwt` tells an access token from an ID token, so `require_at_jwt` is on
//!   and cannot be turned off: an ID token presented as a bearer token gets 401
//!   `invalid_token`. With an `audience` of its own (the API identifier the provider puts in
//!   access tokens, which no client has as its id) `require_at_jwt` is off unless set, because
//!   Keycloak, Entra ID and Auth0 send `typ: JWT`; tokens with `nonce`, `at_hash` or `c_hash`
//!   are refused either way.
//!
//! # Routes of the proxy
//!
//! | route | what |
//! |---|---|
//! | `GET /ping` | liveness: always 200 |
//! | `GET /ready` | 200 when every provider's metadata and keys are loaded (loads them if not), else 503 |
//! | `GET /metrics` | Prometheus text (see [`metrics`]) |
//! | `GET /oauth2/start?return_to=/path` | starts a login (`/oauth2/start/{provider}` with several providers) |
//! | `GET /oauth2/callback` | the redirect URI (`/oauth2/callback/{provider}` with several; `redirect_path` changes it) |
//! | `POST /oauth2/sign_out` | logout, same-origin only, then the provider's logout |
//! | `POST /oauth2/backchannel-logout` | OpenID back-channel logout from the provider |
//! | `GET /oauth2/userinfo` | `{"user", "email", "groups", "preferred_username", "issuer", "provider"}` for a session or bearer token, else 401 (403 for a user that cannot be told) |
//!
//! `/ping`, `/ready` and `/metrics` need no login; move them with `[endpoints]` (or turn one
//! off with `""`). Every path under `/oauth2/` belongs to the proxy.
//!
//! # Configuration
//!
//! A TOML file (`--config PATH` or `AUTH_PROXY_CONFIG`), then environment variables, which
//! win. Everything is checked at start; a bad setting stops the proxy with a message naming
//! it (exit status 2). `oidc-proxy --check` only checks.
//!
//! ```toml
//! listen = "127.0.0.1:4180"                  # default
//! public_url = "https://app.example.com"     # the URL browsers use; default http://<listen>
//! upstream_timeout_secs = 60                 # wait for an upstream's response head
//! reverse_proxy = false                      # true: trust X-Forwarded-* from the client
//! pass_host_header = true                    # the client's Host goes to the upstream
//! # post_logout_redirect_uri = "https://app.example.com/"   # default: public_url + "/"
//!
//! [server]                                  # limits on slow or idle clients
//! header_read_timeout_secs = 10              # a connection must send a whole request head in this time
//! body_read_timeout_secs = 30                # a request body must arrive in this time (else 408)
//! max_connections = 4096                     # connections served at once
//! websocket_session_check_secs = 30         # a websocket of a session closes once it is gone
//!
//! [cookie]
//! name = "oidc-proxy"                        # "__Host-" is put in front on https
//! idle_timeout_secs = 1800
//! absolute_timeout_secs = 43200
//!
//! [headers]
//! user_claim = "sub"                         # falls back to sub when missing ("email": verified only)
//! # groups_claim = "groups"                  # default: roles + groups + realm_access.roles
//! pass_access_token = false                  # X-Forwarded-Access-Token
//! pass_authorization_header = false          # Authorization: Bearer <access token>
//! insecure_allow_unverified_email = false    # true: send addresses without email_verified
//! strip = ["X-My-User", "X-Corp-*"]          # client headers removed besides the built-in list
//!
//! [endpoints]
//! ping = "/ping"
//! ready = "/ready"
//! metrics = "/metrics"
//!
//! [routes]                                   # PATH or METHOD=PATH; ending in / = prefix
//! skip_auth = ["/static/", "GET=/favicon.ico"]
//! api = ["/api/"]
//! bearer = ["/api/"]
//!
//! [[provider]]
//! name = "default"                           # /oauth2/start/{name}
//! issuer = "https://id.example.com"
//! client_id = "oidc-proxy"
//! client_secret_file = "/run/secrets/client_secret"   # or client_secret = "…", or none (PKCE)
//! scopes = ["openid", "profile", "email"]
//! # redirect_path = "/oauth2/callback"
//! # audience = "oidc-proxy"                  # aud of bearer tokens; default client_id
//! # accept_bearer = true
//! # require_at_jwt = true                    # default: true when audience is a client id
//! #                                          # (then it cannot be false), else false
//!
//! [[upstream]]
//! prefix = "/"
//! url = "http://127.0.0.1:8080"
//!
//! [[upstream]]
//! name = "grafana"
//! prefix = "/grafana/"
//! url = "http://127.0.0.1:3000"
//! strip_prefix = true
//! ```
//!
//! # Environment
//!
//! Empty values count as unset. Lists are comma-separated and replace the file's.
//!
//! | variable | setting |
//! |---|---|
//! | `AUTH_PROXY_CONFIG` | the TOML file (when `--config` is not given) |
//! | `AUTH_PROXY_LISTEN` | `listen` |
//! | `AUTH_PROXY_PUBLIC_URL` | `public_url` |
//! | `AUTH_PROXY_UPSTREAMS` | `[[upstream]]`s, as `PREFIX=URL,…` (`/=http://127.0.0.1:8080`) |
//! | `AUTH_PROXY_UPSTREAM_TIMEOUT_SECS` | `upstream_timeout_secs` |
//! | `AUTH_PROXY_HEADER_READ_TIMEOUT_SECS` | `server.header_read_timeout_secs` |
//! | `AUTH_PROXY_BODY_READ_TIMEOUT_SECS` | `server.body_read_timeout_secs` |
//! | `AUTH_PROXY_MAX_CONNECTIONS` | `server.max_connections` |
//! | `AUTH_PROXY_WEBSOCKET_SESSION_CHECK_SECS` | `server.websocket_session_check_secs` |
//! | `AUTH_PROXY_REVERSE_PROXY` | `reverse_proxy` (`true`/`false`) |
//! | `AUTH_PROXY_PASS_HOST_HEADER` | `pass_host_header` |
//! | `AUTH_PROXY_POST_LOGOUT_REDIRECT_URI` | `post_logout_redirect_uri` |
//! | `AUTH_PROXY_SKIP_AUTH_ROUTES` | `routes.skip_auth` |
//! | `AUTH_PROXY_API_ROUTES` | `routes.api` |
//! | `AUTH_PROXY_BEARER_ROUTES` | `routes.bearer` |
//! | `AUTH_PROXY_COOKIE_NAME` | `cookie.name` |
//! | `AUTH_PROXY_COOKIE_IDLE_TIMEOUT_SECS` | `cookie.idle_timeout_secs` |
//! | `AUTH_PROXY_COOKIE_ABSOLUTE_TIMEOUT_SECS` | `cookie.absolute_timeout_secs` |
//! | `AUTH_PROXY_USER_CLAIM` | `headers.user_claim` |
//! | `AUTH_PROXY_GROUPS_CLAIM` | `headers.groups_claim` |
//! | `AUTH_PROXY_PASS_ACCESS_TOKEN` | `headers.pass_access_token` |
//! | `AUTH_PROXY_PASS_AUTHORIZATION_HEADER` | `headers.pass_authorization_header` |
//! | `AUTH_PROXY_INSECURE_ALLOW_UNVERIFIED_EMAIL` | `headers.insecure_allow_unverified_email` |
//! | `AUTH_PROXY_STRIP_HEADERS` | `headers.strip` |
//! | `AUTH_PROXY_ISSUER` | `issuer` of the first provider (created when the file has none) |
//! | `AUTH_PROXY_CLIENT_ID` | `client_id` of the first provider |
//! | `AUTH_PROXY_CLIENT_SECRET` | `client_secret` of the first provider |
//! | `AUTH_PROXY_SCOPES` | `scopes` of the first provider (space-separated) |
//! | `AUTH_PROXY_AUDIENCE` | `audience` of the first provider |
//! | `AUTH_PROXY_REQUIRE_AT_JWT` | `require_at_jwt` of the first provider |
//! | `AUTH_PROXY_PROVIDER_<NAME>_CLIENT_SECRET` | `client_secret` of the provider `<name>` (upper case, other characters as `_`) |
//! | `RUST_LOG` | log filter (default `info`) |
//!
//! # Security notes
//!
//! - Sessions live in memory (one instance); a restart signs everyone out.
//! - Upstreams are plain `http` on a trusted network; anyone who can reach an upstream
//!   directly can send it any `X-Forwarded-User`: bind upstreams to loopback or firewall them.
//! - Tokens are never logged, never put in URLs, and never in error pages.
//! - Slow clients: a connection must send a whole request head within
//!   `server.header_read_timeout_secs` and a request body within
//!   `server.body_read_timeout_secs` (else 408); at most `server.max_connections` are served
//!   at once.
//! - A websocket tunnel opened with a browser session is closed once that session is gone
//!   (signed out, ended by back-channel logout, expired, or the store cannot say), checked
//!   every `server.websocket_session_check_secs`; one opened with a bearer token lives until
//!   either side closes it (the token's expiry is checked at the handshake only).

pub mod app;
pub mod config;
mod forward;
pub mod identity;
pub mod metrics;
pub mod routes;

pub use crate::app::Proxy;
pub use crate::config::{ConfigError, FileConfig, Settings};
