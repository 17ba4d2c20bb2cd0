//! Starting and stopping the provider's HTTP server.

use std::io;
use std::net::Ipv4Addr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::endpoints::router;
use crate::provider::{Shared, TestProvider};
use crate::state::{AuthState, Config, ProviderState, ServerState};

/// How long [`TestProvider::shutdown`] waits for open connections to finish
/// before it aborts the server.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl TestProvider {
    /// Binds `127.0.0.1:0` (an ephemeral port) and spawns the provider's
    /// axum server on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime or when no loopback port
    /// can be bound; use [`TestProvider::try_start`] to get the I/O error
    /// instead.
    #[allow(
        clippy::panic,
        reason = "test support code: a test cannot go on without its provider"
    )]
    pub async fn start() -> TestProvider {
        match TestProvider::try_start().await {
            Ok(provider) => provider,
            Err(error) => panic!("oidc-testing: cannot start the test provider: {error}"),
        }
    }

    /// Like [`TestProvider::start`], but returns the error when binding the
    /// listener fails.
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime.
    pub async fn try_start() -> io::Result<TestProvider> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(ProviderState {
            addr,
            issuer: format!("http://{addr}"),
            config: Mutex::new(Config::new()),
            jwks_fetches: AtomicUsize::new(0),
            discovery_fetches: AtomicUsize::new(0),
            auth: Mutex::new(AuthState::new()),
            introspection: Mutex::default(),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let app = router(ServerState {
            provider: Arc::clone(&state),
            shutdown: shutdown_rx.clone(),
        });
        let mut signal = shutdown_rx;
        let server = tokio::spawn(async move {
            let stopped = async move {
                // Ends on `true` or when the sender (the last handle) is gone.
                let _ = signal.wait_for(|stop| *stop).await;
            };
            // `serve` only returns errors from a failed accept loop, which
            // leaves nothing to do for a test server.
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await;
        });
        Ok(TestProvider {
            shared: Arc::new(Shared {
                state,
                shutdown,
                server: Mutex::new(Some(server)),
            }),
        })
    }

    /// Stops the server, for this handle and every clone, and waits (up to 5
    /// seconds, then aborts) for it to end. Pending [`Failure::Hang`](crate::Failure::Hang) and
    /// [`Failure::Delay`](crate::Failure::Delay) requests get a 503. Dropping the last handle also
    /// stops the server, without waiting.
    pub async fn shutdown(self) {
        self.shared.shutdown.send_replace(true);
        let server = self
            .shared
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(mut server) = server else {
            return; // an earlier `shutdown` (of a clone) already waited
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
    }
}
