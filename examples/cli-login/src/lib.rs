//! The `cli-login` commands, as a library so that the tests run them against an in-process
//! provider: `login` (the loopback redirect with PKCE), `login --device` (the device flow),
//! `token` (whether a login is there; the token itself only with `--print`), `logout`
//! (revocation, then the token file is deleted).

use std::error::Error;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use oidc_core::Provider;
use oidc_core::cli::{LoopbackLogin, SystemBrowser, TokenFile};
use oidc_core::flow::{DeviceFlow, OidcClient};

/// Where the command's messages (and, with `token --print`, the token) go.
pub type Output = Arc<Mutex<dyn Write + Send>>;

/// The usage text.
pub const USAGE: &str = "usage: cli-login login [--device] [--open] | token [--print] | logout";

/// The redirect URI registered at the provider (any port: RFC 8252 §7.3).
pub const REDIRECT_URI: &str = "http://127.0.0.1/callback";

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Log in: in the browser via the loopback redirect, or with the device flow.
    Login {
        /// The device flow instead of the browser.
        device: bool,
        /// Also try to open the browser (else the URL is only printed).
        open: bool,
    },
    /// Show whether a login is there, refreshing it when needed.
    Token {
        /// Print the access token itself (for `$(cli-login token --print)`).
        print: bool,
    },
    /// Revoke the tokens and delete the token file.
    Logout,
}

impl Command {
    /// Parses the arguments after the program name.
    ///
    /// # Errors
    ///
    /// The usage text, for an unknown command or flag.
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Self, String> {
        let mut args = args.into_iter();
        let command = args.next().unwrap_or_else(|| "login".to_owned());
        let flags: Vec<String> = args.collect();
        let has = |flag: &str| flags.iter().any(|f| f == flag);
        let only = |allowed: &[&str]| flags.iter().all(|f| allowed.contains(&f.as_str()));
        match command.as_str() {
            "login" if only(&["--device", "--open"]) => Ok(Self::Login {
                device: has("--device"),
                open: has("--open"),
            }),
            "token" if only(&["--print"]) => Ok(Self::Token {
                print: has("--print"),
            }),
            "logout" if flags.is_empty() => Ok(Self::Logout),
            _ => Err(USAGE.to_owned()),
        }
    }
}

/// The provider, the client and the token file.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `OIDC_ISSUER`.
    pub issuer: String,
    /// `OIDC_CLIENT_ID`, default `cli`.
    pub client_id: String,
    /// `OIDC_SCOPES`, default `openid profile offline_access`.
    pub scopes: Vec<String>,
    /// `CLI_LOGIN_TOKEN_FILE`, default `~/.config/cli-login/tokens.json`.
    pub token_file: PathBuf,
}

impl Settings {
    /// From the environment (see the fields).
    ///
    /// # Errors
    ///
    /// When `OIDC_ISSUER` is unset or no token file location can be found.
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let issuer = var("OIDC_ISSUER").ok_or("OIDC_ISSUER is not set")?;
        let token_file = match var("CLI_LOGIN_TOKEN_FILE") {
            Some(path) => PathBuf::from(path),
            None => TokenFile::in_config_dir("cli-login")
                .ok_or("neither HOME nor XDG_CONFIG_HOME is set")?
                .path()
                .to_owned(),
        };
        Ok(Self {
            issuer,
            client_id: var("OIDC_CLIENT_ID").unwrap_or_else(|| "cli".to_owned()),
            scopes: var("OIDC_SCOPES")
                .unwrap_or_else(|| "openid profile offline_access".to_owned())
                .split_ascii_whitespace()
                .map(str::to_owned)
                .collect(),
            token_file,
        })
    }

    /// The public client of these settings.
    ///
    /// # Errors
    ///
    /// When the issuer is not an acceptable URL.
    pub fn client(&self) -> Result<OidcClient, Box<dyn Error + Send + Sync>> {
        let provider = Provider::builder(&self.issuer).build()?;
        Ok(OidcClient::new(provider, &self.client_id, REDIRECT_URI)?.with_scopes(&self.scopes))
    }
}

fn say(out: &Output, text: std::fmt::Arguments<'_>) {
    let mut out = out.lock().unwrap_or_else(PoisonError::into_inner);
    let _ = out.write_fmt(text);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// A Unix time as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn format_time(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Runs `command`: messages to `messages`, the token (`token --print` only) to `output`.
///
/// # Errors
///
/// Any failure, for the caller to print with its sources.
pub async fn run(
    settings: &Settings,
    command: Command,
    output: &Output,
    messages: &Output,
) -> Result<(), Box<dyn Error + Send + Sync>> {
    let client = settings.client()?;
    let file = TokenFile::new(&settings.token_file);
    let (device, open, print) = match command {
        Command::Login { device, open } => (device, open, false),
        Command::Token { print } => (false, false, print),
        Command::Logout => (false, false, false),
    };
    match command {
        Command::Login { .. } if device => {
            let device = DeviceFlow::new(client.clone());
            let authorization = device.start().await?;
            say(
                messages,
                format_args!(
                    "To log in, open {} and enter the code {}",
                    authorization.verification_uri(),
                    authorization.user_code()
                ),
            );
            let tokens = device.wait(&authorization).await?;
            file.save(&client, &tokens)?;
            say(messages, format_args!("Logged in as {}.", tokens.subject()));
        }
        Command::Login { .. } => {
            let login = LoopbackLogin::new(client.clone());
            let login = if open {
                login.with_opener(SystemBrowser)
            } else {
                let messages = Arc::clone(messages);
                login.with_opener(move |url: &str| {
                    say(
                        &messages,
                        format_args!("Open this URL in your browser to log in:\n\n  {url}\n"),
                    );
                    Ok(())
                })
            };
            let tokens = login.run().await?;
            file.save(&client, &tokens)?;
            say(messages, format_args!("Logged in as {}.", tokens.subject()));
        }
        Command::Token { .. } => {
            let tokens = file.tokens(&client).await?;
            say(messages, format_args!("Logged in as {}.", tokens.subject()));
            match tokens.expires_at() {
                Some(exp) => say(
                    messages,
                    format_args!("The access token is valid until {}.", format_time(exp)),
                ),
                None => say(messages, format_args!("The provider gave no expiry.")),
            }
            if print {
                say(output, format_args!("{}", tokens.access_token().secret()));
            }
        }
        Command::Logout => {
            let logout = file.logout(&client).await?;
            if !logout.was_logged_in {
                say(messages, format_args!("Not logged in."));
            } else if let Some(e) = logout.revocation_error {
                say(
                    messages,
                    format_args!("Logged out here; the provider could not revoke the tokens: {e}"),
                );
            } else if logout.revocation_offered {
                say(
                    messages,
                    format_args!("Logged out; the tokens are revoked."),
                );
            } else {
                say(
                    messages,
                    format_args!(
                        "Logged out here; the provider offers no revocation, the tokens \
                         stay valid until they expire."
                    ),
                );
            }
        }
    }
    Ok(())
}
