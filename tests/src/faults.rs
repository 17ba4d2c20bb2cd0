//! A loopback TCP proxy that injects network faults, for the fault tests (`tests/faults.rs`).
//!
//! [`FaultProxy`] listens on `127.0.0.1:<free port>` and forwards each connection to a target
//! address. The test switches its [`Mode`] at run time with [`FaultProxy::set_mode`]:
//!
//! | mode | a new connection… |
//! | --- | --- |
//! | [`Mode::Pass`] | is forwarded both ways, unchanged |
//! | [`Mode::DelayChunks`] | is forwarded, each chunk from the target to the client held back that long |
//! | [`Mode::DelayFirstByte`] | is forwarded, the first byte from the target to the client held back that long |
//! | [`Mode::Blackhole`] | is accepted and read, and never answered (no connection to the target) |
//! | [`Mode::Reset`] | is accepted, then reset at once (`SO_LINGER` 0: the client sees `ECONNRESET`) |
//! | [`Mode::CutAfter`] | is forwarded until that many bytes went from the target to the client, then both sides are closed |
//! | [`Mode::Refuse`] | is refused: the proxy stops listening (the client sees `ECONNREFUSED`) |
//!
//! A connection keeps the mode it was accepted in. **Every mode change closes the connections
//! already established** (with a reset), so that a client's pooled keep-alive connection does
//! not carry on through an outage: after `set_mode` returns, every new exchange meets the new
//! mode. Leaving [`Mode::Refuse`] listens again on the same port.
//!
//! Counters (since the start, or [`FaultProxy::reset_counters`]): connections accepted,
//! connections open, bytes forwarded to the client and to the target.
//!
//! ```no_run
//! # async fn demo(target: std::net::SocketAddr) {
//! use std::time::Duration;
//! use oidc_e2e::faults::{FaultProxy, Mode};
//!
//! let proxy = FaultProxy::start(target).await;
//! // ... point the client at proxy.addr() ...
//! proxy.set_mode(Mode::DelayFirstByte(Duration::from_secs(3))).await;
//! proxy.set_mode(Mode::Refuse).await;
//! proxy.set_mode(Mode::Pass).await;
//! assert!(proxy.accepted() > 0);
//! # }
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How the proxy treats new connections. See the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways, unchanged.
    Pass,
    /// Forward, holding back each chunk read from the target this long before passing it on.
    DelayChunks(Duration),
    /// Forward, holding back the first bytes from the target this long.
    DelayFirstByte(Duration),
    /// Accept, read and discard what the client sends, never answer.
    Blackhole,
    /// Accept, then reset the connection at once.
    Reset,
    /// Forward until this many bytes went from the target to the client, then close both.
    CutAfter(usize),
    /// Stop listening: connections are refused.
    Refuse,
}

/// The mode and its generation (bumped by every [`FaultProxy::set_mode`]).
#[derive(Debug, Clone, Copy)]
struct State {
    generation: u64,
    mode: Mode,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicUsize,
    open: AtomicUsize,
    to_client: AtomicU64,
    to_target: AtomicU64,
}

/// Decrements the open-connection counter when a connection ends, however it ends.
struct OpenGuard(Arc<Counters>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A fault-injecting TCP proxy on loopback. See the [module docs](self). Stops (and closes
/// every connection) when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    target: SocketAddr,
    state: watch::Sender<State>,
    /// The generation the accept loop has applied (listener dropped or bound again).
    applied: watch::Receiver<u64>,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The connections watch `state`: they end when its sender goes, right after this.
        self.task.abort();
    }
}

/// Binds `addr` with `SO_REUSEADDR`, so that the port can be taken again after
/// [`Mode::Refuse`] while old connections linger in `TIME_WAIT`.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

impl FaultProxy {
    /// Starts a proxy to `target` on `127.0.0.1:<free port>`, in [`Mode::Pass`].
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .unwrap_or_else(|e| panic!("fault proxy: cannot bind a loopback port: {e}"));
        let addr = listener.local_addr().expect("fault proxy: local address");
        let (state, state_rx) = watch::channel(State {
            generation: 0,
            mode: Mode::Pass,
        });
        let (applied_tx, applied) = watch::channel(0);
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(accept_loop(
            Some(listener),
            addr,
            target,
            state_rx,
            applied_tx,
            counters.clone(),
        ));
        Self {
            addr,
            target,
            state,
            applied,
            counters,
            task,
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address connections are forwarded to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.state.borrow().mode
    }

    /// Switches to `mode` and closes every established connection. Returns once the switch is
    /// complete: after [`Mode::Refuse`] nothing listens on the port any more; after leaving it,
    /// the port listens again.
    ///
    /// # Panics
    ///
    /// When the port cannot be bound again after [`Mode::Refuse`] (another process took it),
    /// or the proxy's task has died.
    pub async fn set_mode(&self, mode: Mode) {
        let mut generation = 0;
        self.state.send_modify(|state| {
            state.generation += 1;
            state.mode = mode;
            generation = state.generation;
        });
        let mut applied = self.applied.clone();
        let done = applied.wait_for(|applied| *applied >= generation).await;
        assert!(
            done.is_ok(),
            "fault proxy on {}: the accept loop has stopped",
            self.addr
        );
    }

    /// Connections accepted so far (in every mode but [`Mode::Refuse`], which accepts none).
    pub fn accepted(&self) -> usize {
        self.counters.accepted.load(Ordering::SeqCst)
    }

    /// Connections open right now.
    pub fn open(&self) -> usize {
        self.counters.open.load(Ordering::SeqCst)
    }

    /// Bytes forwarded from the target to the clients so far (written to a client socket).
    pub fn bytes_to_client(&self) -> u64 {
        self.counters.to_client.load(Ordering::SeqCst)
    }

    /// Bytes forwarded (or, in [`Mode::Blackhole`], swallowed) from the clients so far.
    pub fn bytes_to_target(&self) -> u64 {
        self.counters.to_target.load(Ordering::SeqCst)
    }

    /// Sets the accepted-connection and byte counters back to zero.
    pub fn reset_counters(&self) {
        self.counters.accepted.store(0, Ordering::SeqCst);
        self.counters.to_client.store(0, Ordering::SeqCst);
        self.counters.to_target.store(0, Ordering::SeqCst);
    }
}

async fn accept_loop(
    mut listener: Option<TcpListener>,
    addr: SocketAddr,
    target: SocketAddr,
    mut state: watch::Receiver<State>,
    applied: watch::Sender<u64>,
    counters: Arc<Counters>,
) {
    loop {
        let current = *state.borrow_and_update();
        if current.mode == Mode::Refuse {
            listener = None;
        } else if listener.is_none() {
            listener = Some(bind(addr).unwrap_or_else(|e| {
                panic!("fault proxy: cannot listen on {addr} again after Refuse: {e}")
            }));
        }
        applied.send_replace(current.generation);
        let accepted = async {
            match &listener {
                Some(l) => l.accept().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = state.changed() => {
                if changed.is_err() {
                    return; // the proxy was dropped
                }
            }
            accepted = accepted => {
                let Ok((client, _)) = accepted else { continue };
                counters.accepted.fetch_add(1, Ordering::SeqCst);
                counters.open.fetch_add(1, Ordering::SeqCst);
                let guard = OpenGuard(counters.clone());
                tokio::spawn(connection(
                    client,
                    target,
                    current.mode,
                    state.clone(),
                    counters.clone(),
                    guard,
                ));
            }
        }
    }
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Both sides are done (or were closed in order): a normal close.
    Normal,
    /// A failure, a reset or a mode change: the client gets a reset.
    Abrupt,
}

async fn connection(
    mut client: TcpStream,
    target: SocketAddr,
    mode: Mode,
    mut watch: watch::Receiver<State>,
    counters: Arc<Counters>,
    _guard: OpenGuard,
) {
    let _ = client.set_nodelay(true);
    let end = tokio::select! {
        // Any mode change (or the end of the proxy) closes the connection.
        _ = watch.changed() => End::Abrupt,
        end = serve(&mut client, target, mode, &counters) => end,
    };
    if end == End::Abrupt {
        // Closed with `SO_LINGER` 0: the client sees a reset, as when a server dies.
        let _ = client.set_zero_linger();
    }
}

async fn serve(client: &mut TcpStream, target: SocketAddr, mode: Mode, counters: &Counters) -> End {
    match mode {
        Mode::Refuse | Mode::Reset => End::Abrupt,
        Mode::Blackhole => {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match client.read(&mut buf).await {
                    Ok(0) | Err(_) => return End::Normal,
                    Ok(n) => {
                        counters.to_target.fetch_add(n as u64, Ordering::SeqCst);
                    }
                }
            }
        }
        Mode::Pass | Mode::DelayChunks(_) | Mode::DelayFirstByte(_) | Mode::CutAfter(_) => {
            let upstream =
                tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(target)).await;
            let Ok(Ok(mut upstream)) = upstream else {
                return End::Abrupt; // the target is down
            };
            let _ = upstream.set_nodelay(true);
            forward(client, &mut upstream, mode, counters).await
        }
    }
}

/// Copies both ways, applying `mode` to the bytes from the target to the client.
async fn forward(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    mode: Mode,
    counters: &Counters,
) -> End {
    let (mut client_read, mut client_write) = client.split();
    let (mut upstream_read, mut upstream_write) = upstream.split();
    let to_target = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = upstream_write.shutdown().await;
                    return;
                }
                Ok(n) => {
                    let Some(chunk) = buf.get(..n) else { return };
                    if upstream_write.write_all(chunk).await.is_err() {
                        return;
                    }
                    counters.to_target.fetch_add(n as u64, Ordering::SeqCst);
                }
            }
        }
    };
    let to_client = async {
        let mut buf = vec![0u8; 16 * 1024];
        let mut sent = 0usize;
        let mut first = true;
        loop {
            let n = match upstream_read.read(&mut buf).await {
                Ok(0) => {
                    let _ = client_write.shutdown().await;
                    return End::Normal;
                }
                Err(_) => return End::Abrupt,
                Ok(n) => n,
            };
            match mode {
                Mode::DelayChunks(delay) => tokio::time::sleep(delay).await,
                Mode::DelayFirstByte(delay) if first => tokio::time::sleep(delay).await,
                _ => {}
            }
            first = false;
            let mut len = n;
            let mut cut = false;
            if let Mode::CutAfter(limit) = mode {
                let room = limit.saturating_sub(sent);
                if len >= room {
                    len = room;
                    cut = true;
                }
            }
            let Some(chunk) = buf.get(..len) else {
                return End::Abrupt;
            };
            if !chunk.is_empty() {
                if client_write.write_all(chunk).await.is_err() {
                    return End::Abrupt;
                }
                sent += len;
                counters.to_client.fetch_add(len as u64, Ordering::SeqCst);
            }
            if cut {
                // Exactly `limit` bytes, then an orderly close of both sides.
                let _ = client_write.shutdown().await;
                return End::Normal;
            }
        }
    };
    tokio::pin!(to_target, to_client);
    let mut client_done = false;
    loop {
        tokio::select! {
            () = &mut to_target, if !client_done => client_done = true,
            end = &mut to_client => {
                if end == End::Normal && !client_done && !matches!(mode, Mode::CutAfter(_)) {
                    // The target closed: let the client read the rest and close its side.
                    let _ = tokio::time::timeout(Duration::from_secs(5), &mut to_target).await;
                }
                return end;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// A target that writes `greeting` on each connection (in two parts `gap` apart when
    /// `gap` is set), then echoes what it reads; returns its address and connection count.
    async fn target(greeting: Vec<u8>, gap: Option<Duration>) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let greeting = greeting.clone();
                tokio::spawn(async move {
                    match gap {
                        Some(gap) => {
                            let (a, b) = greeting.split_at(greeting.len() / 2);
                            stream.write_all(a).await.unwrap();
                            tokio::time::sleep(gap).await;
                            stream.write_all(b).await.unwrap();
                        }
                        None => stream.write_all(&greeting).await.unwrap(),
                    }
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        (addr, connections)
    }

    async fn read_exactly(stream: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buf))
            .await
            .expect("read timed out")
            .expect("read failed");
        buf
    }

    /// Polls `cond` every 10 ms for at most 2 s.
    async fn eventually(cond: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(2);
        while !cond() {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    #[tokio::test]
    async fn pass_forwards_both_ways_and_counts() {
        let (addr, hits) = target(b"hello".to_vec(), None).await;
        let proxy = FaultProxy::start(addr).await;
        assert_eq!(proxy.target(), addr);
        assert_eq!(proxy.mode(), Mode::Pass);
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(read_exactly(&mut stream, 5).await, b"hello");
        stream.write_all(b"ping").await.unwrap();
        assert_eq!(read_exactly(&mut stream, 4).await, b"ping");
        assert_eq!(proxy.accepted(), 1);
        assert_eq!(proxy.open(), 1);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert_eq!(proxy.bytes_to_client(), 9);
        assert_eq!(proxy.bytes_to_target(), 4);
        drop(stream);
        assert!(
            eventually(|| proxy.open() == 0).await,
            "connection not closed"
        );
        proxy.reset_counters();
        assert_eq!(
            (
                proxy.accepted(),
                proxy.bytes_to_client(),
                proxy.bytes_to_target()
            ),
            (0, 0, 0)
        );
    }

    #[tokio::test]
    async fn delay_first_byte_holds_back_the_answer() {
        let (addr, _) = target(b"hi".to_vec(), None).await;
        let proxy = FaultProxy::start(addr).await;
        proxy
            .set_mode(Mode::DelayFirstByte(Duration::from_millis(300)))
            .await;
        let start = Instant::now();
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(read_exactly(&mut stream, 2).await, b"hi");
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
        // Later bytes are not delayed.
        stream.write_all(b"x").await.unwrap();
        let start = Instant::now();
        assert_eq!(read_exactly(&mut stream, 1).await, b"x");
        assert!(start.elapsed() < Duration::from_millis(250));
    }

    #[tokio::test]
    async fn delay_chunks_delays_every_chunk() {
        // The target sends "ab" in two writes 100 ms apart: two chunks, each held 200 ms.
        let (addr, _) = target(b"ab".to_vec(), Some(Duration::from_millis(100))).await;
        let proxy = FaultProxy::start(addr).await;
        proxy
            .set_mode(Mode::DelayChunks(Duration::from_millis(200)))
            .await;
        let start = Instant::now();
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(read_exactly(&mut stream, 2).await, b"ab");
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(400), "{waited:?}");
    }

    #[tokio::test]
    async fn blackhole_accepts_and_never_answers() {
        let (addr, hits) = target(b"hello".to_vec(), None).await;
        let proxy = FaultProxy::start(addr).await;
        proxy.set_mode(Mode::Blackhole).await;
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_millis(400), stream.read(&mut buf)).await;
        assert!(read.is_err(), "the blackhole answered: {read:?}");
        assert_eq!(proxy.accepted(), 1);
        assert_eq!(
            hits.load(Ordering::SeqCst),
            0,
            "no connection to the target"
        );
        assert!(eventually(|| proxy.bytes_to_target() == 18).await);
        assert_eq!(proxy.bytes_to_client(), 0);
    }

    #[tokio::test]
    async fn reset_closes_at_once() {
        let (addr, hits) = target(b"hello".to_vec(), None).await;
        let proxy = FaultProxy::start(addr).await;
        proxy.set_mode(Mode::Reset).await;
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf))
            .await
            .expect("the reset did not come");
        match read {
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
            Ok(n) => panic!("read {n} bytes from a reset connection"),
        }
        assert_eq!(proxy.accepted(), 1);
        assert_eq!(hits.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn cut_after_passes_exactly_n_bytes() {
        let (addr, _) = target(vec![b'x'; 100_000], None).await;
        let proxy = FaultProxy::start(addr).await;
        proxy.set_mode(Mode::CutAfter(1234)).await;
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut received = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut received))
            .await
            .expect("the cut did not close the connection");
        assert!(read.is_ok(), "{read:?}");
        assert_eq!(received.len(), 1234);
        assert_eq!(proxy.bytes_to_client(), 1234);
    }

    #[tokio::test]
    async fn refuse_stops_listening_and_pass_listens_again() {
        let (addr, _) = target(b"hello".to_vec(), None).await;
        let proxy = FaultProxy::start(addr).await;
        let port = proxy.addr();
        proxy.set_mode(Mode::Refuse).await;
        let err = TcpStream::connect(port).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
        assert_eq!(proxy.accepted(), 0);
        proxy.set_mode(Mode::Pass).await;
        assert_eq!(proxy.addr(), port);
        let mut stream = TcpStream::connect(port).await.unwrap();
        assert_eq!(read_exactly(&mut stream, 5).await, b"hello");
        assert_eq!(proxy.accepted(), 1);
    }

    #[tokio::test]
    async fn a_mode_change_closes_established_connections() {
        let (addr, _) = target(b"hello".to_vec(), None).await;
        let proxy = FaultProxy::start(addr).await;
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(read_exactly(&mut stream, 5).await, b"hello");
        proxy
            .set_mode(Mode::DelayChunks(Duration::from_millis(1)))
            .await;
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf))
            .await
            .expect("the established connection stayed open");
        assert!(
            matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "{read:?}"
        );
        assert!(eventually(|| proxy.open() == 0).await);
        // A new connection works in the new mode.
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(read_exactly(&mut stream, 5).await, b"hello");
    }

    #[tokio::test]
    async fn a_down_target_resets_the_client() {
        let dead = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = dead.local_addr().unwrap();
        drop(dead);
        let proxy = FaultProxy::start(addr).await;
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf))
            .await
            .expect("the client was left hanging");
        assert!(read.is_err(), "{read:?}");
    }
}
