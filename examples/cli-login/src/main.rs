//! cli-login: log in on the command line with OpenID Connect, keep the tokens in a file only
//! you can read, and log out.
//!
//! - `cli-login login` opens a loopback listener on `127.0.0.1` (ephemeral port), prints the
//!   login URL (`--open` also starts the browser) and waits for the browser to come back
//!   (authorization code with PKCE, RFC 8252).
//! - `cli-login login --device` prints a code to enter at the provider from any device, and
//!   waits (RFC 8628).
//! - `cli-login token` says who is logged in and until when the access token is valid,
//!   refreshing it first when it is about to expire; `--print` prints the token itself.
//! - `cli-login logout` revokes the refresh and access tokens (RFC 7009, where the provider
//!   offers it) and deletes the token file.
//!
//! Run with:
//!
//! ```text
//! OIDC_ISSUER=https://id.example.com/realms/demo OIDC_CLIENT_ID=cli cargo run -p cli-login -- login
//! curl -H "Authorization: Bearer $(cargo run -q -p cli-login -- token --print)" https://api.example.com/me
//! ```
//!
//! Optional: `OIDC_SCOPES` (default `openid profile offline_access`), `CLI_LOGIN_TOKEN_FILE`
//! (default `~/.config/cli-login/tokens.json`), `RUST_LOG` (default `cli_login=info`).

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use cli_login::{Command, Output, Settings, run};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "cli_login=info".into()),
        )
        .init();
    let command = match Command::parse(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(usage) => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("cli-login: {e}");
            return ExitCode::from(2);
        }
    };
    let output: Output = Arc::new(Mutex::new(std::io::stdout()));
    let messages: Output = Arc::new(Mutex::new(std::io::stderr()));
    let result = tokio::select! {
        result = run(&settings, command, &output, &messages) => result,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("cli-login: cancelled");
            return ExitCode::from(130);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The error and its causes; none of them carries a token.
            let mut message = format!("cli-login: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
