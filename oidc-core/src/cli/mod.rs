//! Command-line login (feature `cli`): the loopback redirect with PKCE (RFC 8252), the
//! device authorization grant (RFC 8628, [`DeviceFlow`](crate::flow::DeviceFlow)), a token
//! file readable only by its owner, refresh on next use, and logout with revocation (RFC
//! 7009).
//!
//! - [`LoopbackLogin`]: the browser login of a native app. A listener on `127.0.0.1` and an
//!   ephemeral port receives the authorization response; `state`, RFC 9207 `iss`, PKCE S256
//!   and the ID token (with its `nonce`) are checked exactly as in the web flow of
//!   [`OidcClient`](crate::flow::OidcClient). The login URL is printed ([`PrintUrl`]) or
//!   opened ([`SystemBrowser`], or any [`OpenUrl`]).
//! - [`DeviceFlow`](crate::flow::DeviceFlow): for a terminal without a browser, the user
//!   enters a code on another device.
//! - [`TokenFile`]: the tokens in a JSON file of mode `0600`, written atomically; refused
//!   when others may read it; refreshed on next use with rotation saved first;
//!   [`TokenFile::logout`] revokes and deletes.
//!
//! The provider must know the client as a public native client (no secret,
//! `token_endpoint_auth_method` `none`) with the redirect URI `http://127.0.0.1/callback`
//! for any port, and, for the device flow, the grant type
//! `urn:ietf:params:oauth:grant-type:device_code`.
//!
//! # Example
//!
//! ```no_run
//! use oidc_core::Provider;
//! use oidc_core::cli::{LoopbackLogin, SystemBrowser, TokenFile};
//! use oidc_core::flow::{DeviceFlow, OidcClient};
//!
//! # async fn run(use_device: bool) -> Result<(), Box<dyn std::error::Error>> {
//! let provider = Provider::builder("https://id.example.com").build()?;
//! let client = OidcClient::new(provider, "my-cli", "http://127.0.0.1/callback")?
//!     .with_scopes(["offline_access"]);
//! let file = TokenFile::in_config_dir("my-cli").ok_or("no home directory")?;
//!
//! // `my-cli login`
//! let tokens = if use_device {
//!     let device = DeviceFlow::new(client.clone());
//!     let authorization = device.start().await?;
//!     eprintln!(
//!         "Open {} and enter {}",
//!         authorization.verification_uri(),
//!         authorization.user_code()
//!     );
//!     device.wait(&authorization).await?
//! } else {
//!     LoopbackLogin::new(client.clone())
//!         .with_opener(SystemBrowser)
//!         .run()
//!         .await?
//! };
//! file.save(&client, &tokens)?;
//!
//! // Any later command: fresh tokens, refreshed (and saved) when needed.
//! let tokens = file.tokens(&client).await?;
//! let _authorization = format!("Bearer {}", tokens.access_token().secret());
//!
//! // `my-cli logout`
//! let outcome = file.logout(&client).await?;
//! if let Some(e) = outcome.revocation_error {
//!     eprintln!("the provider could not revoke the tokens: {e}");
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Security
//!
//! - The listener binds `127.0.0.1` only, answers one `GET /callback` and is closed after it;
//!   a callback that does not match the login ends it before any token request. Other paths,
//!   methods and `Host` values are refused and do not end the login; each connection has a
//!   read deadline and the login a total timeout ([`LoopbackLogin`]).
//! - The browser page says only whether the login worked; nothing of the request is echoed.
//! - Tokens are never printed or logged by this module, and no error carries one. The token
//!   file is created with mode `0600` (directories `0700`) and never exists with wider
//!   permissions; a file that the group or others may read is not used.
//! - The browser is started without a shell ([`SystemBrowser`]).

mod error;
mod loopback;
mod open;
mod token_file;

pub use self::error::CliError;
pub use self::loopback::{CALLBACK_PATH, LoopbackLogin};
pub use self::open::{OpenUrl, PrintUrl, SystemBrowser};
pub use self::token_file::{Logout, StoredTokens, TokenFile};
