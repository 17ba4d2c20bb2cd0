//! The tokens of a command-line login, kept in a file only its owner can read.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::CliError;
use crate::error::FlowError;
use crate::flow::{OidcClient, TokenRevoker, TokenSet};
use crate::private_file::write_new_private;

/// The version of the file format.
const FORMAT: u32 = 1;
/// How long before its expiry an access token is refreshed rather than used.
const REFRESH_MARGIN_SECS: i64 = 30;
/// The largest token file read.
const MAX_FILE: u64 = 1024 * 1024;

/// What the token file holds: whose tokens they are, and the tokens (redacted in `Debug`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredTokens {
    format: u32,
    issuer: String,
    client_id: String,
    tokens: TokenSet,
}

impl StoredTokens {
    /// The issuer the tokens are from.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The client they were issued to.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The tokens.
    pub fn tokens(&self) -> &TokenSet {
        &self.tokens
    }
}

/// What [`TokenFile::logout`] did.
#[derive(Debug)]
#[non_exhaustive]
pub struct Logout {
    /// Whether there was a token file.
    pub was_logged_in: bool,
    /// Whether the provider offers revocation (then the tokens were sent to it).
    pub revocation_offered: bool,
    /// The revocation failure, if any. The file is deleted anyway.
    pub revocation_error: Option<FlowError>,
}

/// A JSON file with the tokens of one login, readable only by its owner.
///
/// - [`save`](Self::save) writes a new file with mode `0600` (created with `create_new` next
///   to the target, then renamed over it: a reader sees the old file or the new one, never
///   half of one, and the tokens are never in a file with wider permissions). A missing
///   directory is created with mode `0700`.
/// - [`load`](Self::load) refuses a file that the group or others may read or write (mode
///   `& 0o077`), with [`CliError::InsecurePermissions`], and a symbolic link.
/// - [`tokens`](Self::tokens) returns tokens that are fresh: an access token that expires
///   within 30 s is refreshed first, and the new tokens (with a rotated refresh token) are
///   written before they are returned, so that a rotated refresh token is never lost.
/// - [`logout`](Self::logout) revokes the refresh token, then the access token, where the
///   provider offers revocation (RFC 7009), and deletes the file (also when revocation fails).
///
/// Permissions are checked on Unix only. Two processes refreshing the same file at once may
/// both send the old refresh token; a provider that detects reuse then ends the grant, and
/// the next use asks for a new login.
///
/// See the [module docs](crate::cli) for an example.
#[derive(Debug, Clone)]
pub struct TokenFile {
    path: PathBuf,
}

fn io_error(what: &'static str) -> impl FnOnce(io::Error) -> CliError {
    move |source| CliError::Io { what, source }
}

impl TokenFile {
    /// The token file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// `tokens.json` in the user's configuration directory for `app`:
    /// `$XDG_CONFIG_HOME/{app}/`, else `$HOME/.config/{app}/`; `None` when neither variable
    /// is set.
    pub fn in_config_dir(app: &str) -> Option<Self> {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|home| PathBuf::from(home).join(".config"))
            })?;
        Some(Self::new(base.join(app).join("tokens.json")))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored tokens, or `None` when there is no file.
    ///
    /// # Errors
    ///
    /// [`CliError::InsecurePermissions`] for a file others may read,
    /// [`CliError::InvalidFile`] for a symbolic link or a file that is not a token file,
    /// [`CliError::Io`].
    pub fn load(&self) -> Result<Option<StoredTokens>, CliError> {
        let metadata = match fs::symlink_metadata(&self.path) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("reading the token file")(e)),
        };
        if !metadata.file_type().is_file() {
            return Err(CliError::InvalidFile("it is not a regular file"));
        }
        check_private(&self.path, &metadata)?;
        if metadata.len() > MAX_FILE {
            return Err(CliError::InvalidFile("it is too large"));
        }
        let bytes = fs::read(&self.path).map_err(io_error("reading the token file"))?;
        let stored: StoredTokens = serde_json::from_slice(&bytes)
            .map_err(|_| CliError::InvalidFile("it is not a token file"))?;
        if stored.format != FORMAT {
            return Err(CliError::InvalidFile("it has another format version"));
        }
        Ok(Some(stored))
    }

    /// Writes `tokens` of `client`'s login, replacing the file atomically (see the
    /// [type docs](Self)).
    ///
    /// # Errors
    ///
    /// [`CliError::Io`].
    pub fn save(&self, client: &OidcClient, tokens: &TokenSet) -> Result<(), CliError> {
        let stored = StoredTokens {
            format: FORMAT,
            issuer: client.provider().issuer().to_owned(),
            client_id: client.client_id().to_owned(),
            tokens: tokens.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&stored)
            .map_err(|e| io_error("writing the token file")(io::Error::other(e)))?;
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        create_private_dir(&dir)?;
        let name = self.path.file_name().ok_or_else(|| {
            io_error("writing the token file")(io::ErrorKind::InvalidInput.into())
        })?;
        let mut suffix = [0u8; 8];
        aws_lc_rs::rand::fill(&mut suffix)
            .map_err(|_| io_error("writing the token file")(io::Error::other("no randomness")))?;
        let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".{suffix}.tmp"));
        let temp = dir.join(temp_name);
        let written = write_new_private(&temp, &bytes).and_then(|()| fs::rename(&temp, &self.path));
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(io_error("writing the token file")(e));
        }
        Ok(())
    }

    /// Deletes the file; no file is not an error.
    ///
    /// # Errors
    ///
    /// [`CliError::Io`].
    pub fn delete(&self) -> Result<(), CliError> {
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("deleting the token file")(e)),
        }
    }

    /// The stored tokens of `client`'s login, refreshed first when the access token expires
    /// within 30 s (the new tokens are saved before they are returned).
    ///
    /// # Errors
    ///
    /// [`CliError::LoginRequired`] when there is no file, it belongs to another issuer or
    /// client, the access token expired and there is no refresh token, or the provider
    /// refused the refresh token (`invalid_grant`; the file is then deleted); the errors of
    /// [`load`](Self::load) and [`save`](Self::save); [`CliError::Flow`] when the refresh
    /// failed otherwise (the file is kept, to try again).
    pub async fn tokens(&self, client: &OidcClient) -> Result<TokenSet, CliError> {
        let stored = self
            .load()?
            .ok_or(CliError::LoginRequired("there is no token file"))?;
        if stored.issuer != client.provider().issuer() || stored.client_id != client.client_id() {
            return Err(CliError::LoginRequired(
                "the token file belongs to another provider or client",
            ));
        }
        let tokens = stored.tokens;
        let fresh = tokens
            .expires_at()
            .is_none_or(|exp| exp > client.now().saturating_add(REFRESH_MARGIN_SECS));
        if fresh {
            return Ok(tokens);
        }
        if tokens.refresh_token().is_none() {
            return Err(CliError::LoginRequired(
                "the access token expired and there is no refresh token",
            ));
        }
        match client.refresh(&tokens).await {
            Ok(refreshed) => {
                // Saved first: a rotated refresh token must not be lost.
                self.save(client, &refreshed)?;
                Ok(refreshed)
            }
            Err(e) if e.is_invalid_grant() => {
                self.delete()?;
                Err(CliError::LoginRequired(
                    "the provider refused the refresh token",
                ))
            }
            Err(e) => Err(CliError::Flow(e)),
        }
    }

    /// Logs out: revokes the refresh token, then the access token, when the provider
    /// publishes a revocation endpoint, and deletes the file in every case.
    ///
    /// # Errors
    ///
    /// [`CliError::Io`] when the file cannot be deleted; a revocation failure is reported in
    /// [`Logout::revocation_error`], not as an error. A file that cannot be read (other
    /// users may read it, not a token file) is deleted without revocation.
    pub async fn logout(&self, client: &OidcClient) -> Result<Logout, CliError> {
        self.logout_with(&TokenRevoker::new(client.clone())).await
    }

    /// [`logout`](Self::logout) with a revoker of its own (an endpoint set by hand).
    ///
    /// # Errors
    ///
    /// As [`logout`](Self::logout).
    pub async fn logout_with(&self, revoker: &TokenRevoker) -> Result<Logout, CliError> {
        let stored = match self.load() {
            Ok(stored) => stored,
            Err(CliError::Io { what, source }) => return Err(CliError::Io { what, source }),
            Err(e) => {
                tracing::warn!(error = %e, "the token file is deleted without revocation");
                self.delete()?;
                return Ok(Logout {
                    was_logged_in: true,
                    revocation_offered: false,
                    revocation_error: None,
                });
            }
        };
        let Some(stored) = stored else {
            return Ok(Logout {
                was_logged_in: false,
                revocation_offered: false,
                revocation_error: None,
            });
        };
        // Bound first: the scrutinee's temporaries would live through the revocation.
        let endpoint = revoker.endpoint().await;
        let (offered, error) = match endpoint {
            Ok(Some(_)) => (true, revoker.revoke_tokens(&stored.tokens).await.err()),
            Ok(None) => (false, None),
            Err(e) => (false, Some(e)),
        };
        self.delete()?;
        Ok(Logout {
            was_logged_in: true,
            revocation_offered: offered,
            revocation_error: error,
        })
    }
}

#[cfg(unix)]
fn check_private(path: &Path, metadata: &fs::Metadata) -> Result<(), CliError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(CliError::InsecurePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path, _: &fs::Metadata) -> Result<(), CliError> {
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), CliError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(io_error("creating the token file's directory"))
}
