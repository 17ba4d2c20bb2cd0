//! `oidc-proxy`: see the library docs (`src/lib.rs`) for the configuration.
//!
//! ```text
//! oidc-proxy [--config PATH] [--check]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use oidc_proxy::config::ProcessEnv;
use oidc_proxy::{ConfigError, FileConfig, Proxy};
use tracing_subscriber::EnvFilter;

const USAGE: &str = "\
Usage: oidc-proxy [--config PATH] [--check]

An authenticating reverse proxy (OpenID Connect) in front of apps that cannot change.

Options:
  -c, --config PATH   TOML configuration file (default: $AUTH_PROXY_CONFIG, else none:
                      everything from AUTH_PROXY_* variables)
      --check         check the configuration and exit
  -h, --help          this help
  -V, --version       the version

Environment variables AUTH_PROXY_* override the file; see the crate documentation.
";

struct Args {
    config: Option<PathBuf>,
    check: bool,
}

enum Cli {
    Run(Args),
    Exit(ExitCode),
}

fn parse_args() -> Result<Cli, String> {
    let mut config = None;
    let mut check = false;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        let arg = arg.to_string_lossy().into_owned();
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(Cli::Exit(ExitCode::SUCCESS));
            }
            "-V" | "--version" => {
                println!("oidc-proxy {}", env!("CARGO_PKG_VERSION"));
                return Ok(Cli::Exit(ExitCode::SUCCESS));
            }
            "-c" | "--config" => {
                let path = args
                    .next()
                    .ok_or_else(|| "--config needs a path".to_owned())?;
                config = Some(PathBuf::from(path));
            }
            "--check" => check = true,
            other => {
                if let Some(path) = other.strip_prefix("--config=") {
                    config = Some(PathBuf::from(path));
                } else {
                    return Err(format!("unknown argument {other:?} (see --help)"));
                }
            }
        }
    }
    Ok(Cli::Run(Args { config, check }))
}

fn load(args: &Args) -> Result<FileConfig, ConfigError> {
    let path = args.config.clone().or_else(|| {
        std::env::var_os("AUTH_PROXY_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let mut file = match &path {
        Some(path) => FileConfig::from_file(path)?,
        None => FileConfig::default(),
    };
    file.apply_env(&ProcessEnv)?;
    Ok(file)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("oidc-proxy: {message}");
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Cli::Run(args)) => args,
        Ok(Cli::Exit(code)) => return code,
        Err(message) => return fail(message),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let file = match load(&args) {
        Ok(file) => file,
        Err(e) => return fail(format!("configuration: {e}")),
    };
    let settings = match file.validate() {
        Ok(settings) => settings,
        Err(e) => return fail(format!("configuration: {e}")),
    };
    let proxy = match Proxy::new(&settings) {
        Ok(proxy) => proxy,
        Err(e) => return fail(format!("configuration: {e}")),
    };
    if args.check {
        println!("configuration OK");
        return ExitCode::SUCCESS;
    }
    // Metrics emitted through the `metrics` facade (by the libraries) land on /metrics too.
    if let Some(recorder) = proxy.metrics().take_recorder()
        && metrics::set_global_recorder(recorder).is_err()
    {
        tracing::warn!("a global metrics recorder was already installed");
    }

    let listener = match tokio::net::TcpListener::bind(settings.listen).await {
        Ok(listener) => listener,
        Err(e) => return fail(format!("cannot listen on {}: {e}", settings.listen)),
    };
    let local = listener
        .local_addr()
        .map_or_else(|_| settings.listen.to_string(), |a| a.to_string());
    let upstreams: Vec<String> = settings
        .upstreams
        .iter()
        .map(|u| format!("{} -> http://{}{}", u.prefix, u.authority, u.base_path))
        .collect();
    let providers: Vec<&str> = settings
        .providers
        .iter()
        .map(|p| p.issuer.as_str())
        .collect();
    tracing::info!(
        listen = %local,
        public_url = %settings.public_url,
        ?providers,
        ?upstreams,
        "oidc-proxy listening"
    );
    println!("READY http://{local}");
    match proxy.serve(listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(format!("server error: {e}")),
    }
}
