//! Showing the login URL to the user: print it, or open the browser.

use std::io::{self, Write as _};
use std::process::{Command, Stdio};

/// Brings the login URL to the user: the [`LoopbackLogin`](super::LoopbackLogin) calls it once
/// with the provider's authorization URL.
///
/// Implemented for closures `Fn(&str) -> io::Result<()>`; [`PrintUrl`] (the default) prints
/// it, [`SystemBrowser`] also starts the system's browser. An error ends the login.
pub trait OpenUrl: Send + Sync {
    /// Shows or opens `url`.
    ///
    /// # Errors
    ///
    /// When the URL could not be shown at all.
    fn open(&self, url: &str) -> io::Result<()>;
}

impl<F> OpenUrl for F
where
    F: Fn(&str) -> io::Result<()> + Send + Sync,
{
    fn open(&self, url: &str) -> io::Result<()> {
        self(url)
    }
}

/// Prints the URL on standard error, for the user to open. The default.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrintUrl;

impl OpenUrl for PrintUrl {
    fn open(&self, url: &str) -> io::Result<()> {
        let mut err = io::stderr().lock();
        writeln!(err, "Open this URL in your browser to log in:\n\n  {url}\n")
    }
}

/// Prints the URL, then tries to open it in the system's browser: `xdg-open` on Linux and
/// the BSDs, `open` on macOS, `rundll32 url.dll,FileProtocolHandler` on Windows. The program
/// is started without a shell (no `cmd`, whose parsing of `&` in a URL would run commands),
/// with the URL as one argument, and not waited for; when it cannot be started the printed
/// URL is all there is (not an error).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemBrowser;

impl OpenUrl for SystemBrowser {
    fn open(&self, url: &str) -> io::Result<()> {
        PrintUrl.open(url)?;
        let mut command = if cfg!(target_os = "macos") {
            Command::new("open")
        } else if cfg!(windows) {
            let mut c = Command::new("rundll32");
            c.arg("url.dll,FileProtocolHandler");
            c
        } else {
            Command::new("xdg-open")
        };
        let started = command
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match started {
            // Reaped in the background, so that it does not linger as a zombie.
            Ok(mut child) => {
                std::thread::spawn(move || child.wait());
            }
            Err(e) => tracing::debug!(error = %e, "the browser could not be started"),
        }
        Ok(())
    }
}
