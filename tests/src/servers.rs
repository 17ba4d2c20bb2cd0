//! Real session-store servers (Redis, PostgreSQL) on loopback, started and stopped by the tests.
//!
//! * [`RedisServer`] runs Debian's `redis-server` on `127.0.0.1:<free port>`, without RDB
//!   snapshots (`--save ''`) but with an append-only file synced at every write
//!   (`--appendonly yes --appendfsync always`), so that what was written survives
//!   [`stop`](RedisServer::stop) + [`restart`](RedisServer::restart), as with PostgreSQL.
//! * [`PostgresServer`] runs `initdb` in a temporary directory and `postgres` on
//!   `127.0.0.1:<free port>` (TCP only, `trust` authentication, no `fsync`), from the newest
//!   `/usr/lib/postgresql/<version>/bin`, as the `postgres` user when the tests run as root
//!   (PostgreSQL refuses to run as root), and creates the database [`PostgresServer::DATABASE`].
//!
//! [`RedisServer::store`] and [`PostgresServer::store`] are `oidc-tower`'s shared session
//! stores on them, with short timeouts; [`Restartable`] stops and restarts a server mid-test.
//!
//! The binaries come from Debian (`apt-get install redis-server postgresql`, which `.ci/run`
//! does); when one is missing the test fails with a message saying so, it is never skipped.
//! Debian's own services (the `main` cluster on 5432, redis on 6379) are neither needed nor
//! touched.
//!
//! Each server runs under a `/bin/sh` supervisor that stops it when the supervisor's stdin
//! reaches end of file, like the other servers of this harness: when the handle is dropped, or
//! when the test process dies. The polite stop is a signal (`SIGTERM` for Redis, `SIGINT`, a
//! fast shutdown, for PostgreSQL), then `SIGKILL` after 10 s. The temporary directory is
//! removed by a second small supervisor (the janitor) once the server has exited, so that it
//! also goes away with a test process that dies, or with a server kept in a `static`.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use oidc_tower::login::store::sqlx::postgres::PgPoolOptions;
use oidc_tower::login::store::{PostgresStore, RedisStore, fred};

use super::{Proc, STARTUP_TIMEOUT, free_port, temp_dir};

/// Runs `program args…` under a supervisor that sends it `signal` (then `SIGKILL` after
/// 10 s) when the supervisor's stdin reaches end of file, and exits with its status.
fn supervised_with(signal: &str, program: &Path, args: &[String]) -> Command {
    // Background jobs of a non-interactive shell get stdin from /dev/null, hence fd 3.
    const SCRIPT: &str = r#"exec 3<&0
sig=$1; shift
"$@" </dev/null 3<&- & child=$!
(cat <&3 >/dev/null
 kill -"$sig" "$child" 2>/dev/null
 n=0
 while kill -0 "$child" 2>/dev/null && [ "$n" -lt 100 ]; do sleep 0.1; n=$((n+1)); done
 kill -9 "$child" 2>/dev/null) >/dev/null 2>&1 &
exec 3<&-
wait "$child""#;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(SCRIPT)
        .arg("oidc-e2e-supervisor")
        .arg(signal)
        .arg(program)
        .args(args);
    cmd
}

/// A process that removes `dir` once its stdin reaches end of file and `pid_file` (the
/// server's) is gone, or after 15 s.
fn janitor(dir: &Path, pid_file: &Path) -> Proc {
    const SCRIPT: &str = r#"cat >/dev/null
n=0
while [ -e "$2" ] && [ "$n" -lt 150 ]; do sleep 0.1; n=$((n+1)); done
rm -rf -- "$1""#;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(SCRIPT)
        .arg("oidc-e2e-janitor")
        .arg(dir)
        .arg(pid_file);
    Proc::spawn("janitor", cmd, None)
}

/// `name` on `PATH`, or in `/usr/bin` and `/usr/sbin`.
fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The output of `id <args>` as a number.
fn id(args: &[&str]) -> Option<u32> {
    let out = Command::new("id").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Waits until the process that wrote `pid_file` has removed it (a clean exit), for at most
/// 15 s; returns whether it is gone.
async fn wait_gone(pid_file: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while pid_file.exists() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// A server process under [`supervised_with`], and the pid file it removes when it exits.
#[derive(Debug)]
struct Server {
    name: &'static str,
    pid_file: PathBuf,
    proc: Option<Proc>,
    // Declared after `proc`: dropped (and so removing the directory) after the server stops.
    _janitor: Proc,
}

impl Server {
    /// No process yet; the janitor removes `dir` once the process of `pid_file` is gone.
    fn new(name: &'static str, dir: &Path, pid_file: PathBuf) -> Self {
        Self {
            name,
            _janitor: janitor(dir, &pid_file),
            pid_file,
            proc: None,
        }
    }

    /// Stops the process (the supervisor's signal) and waits until it has exited.
    async fn stop(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.stop();
        }
        assert!(
            wait_gone(&self.pid_file).await,
            "{} did not exit",
            self.name
        );
    }

    /// Output of the process so far (of its current run).
    fn logs(&self) -> String {
        self.proc
            .as_ref()
            .map(|p| p.logs.snapshot())
            .unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.stop();
        }
    }
}

/// A server that a test stops and starts again, its data kept (a store outage).
pub trait Restartable {
    /// Stops the server and waits until it has exited. Its data stays for
    /// [`restart`](Self::restart).
    fn stop(&mut self) -> impl Future<Output = ()>;

    /// Starts the server again on the same port and data (after [`stop`](Self::stop)).
    fn restart(&mut self) -> impl Future<Output = ()>;
}

/// A `redis-server` on `127.0.0.1:<port>`, stopped on drop (see the [module docs](self)).
#[derive(Debug)]
pub struct RedisServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    server: Server,
}

impl RedisServer {
    /// Starts a server on a free port, in a new temporary directory, and waits until it
    /// answers `PING`.
    ///
    /// # Panics
    ///
    /// When `redis-server` is not installed, or the server does not answer within
    /// [`STARTUP_TIMEOUT`].
    pub async fn start() -> Self {
        let bin = find_on_path("redis-server").unwrap_or_else(|| {
            panic!(
                "redis-server not found on PATH: the shared-store tests need Debian's \
                 redis-server (apt-get install redis-server; ./.ci/run installs it)"
            )
        });
        let dir = temp_dir("redis");
        let mut server = Self {
            bin,
            port: free_port(),
            server: Server::new("redis-server", &dir, dir.join("redis.pid")),
            dir,
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let args: Vec<String> = [
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
            "--dir",
            &self.dir.display().to_string(),
            "--pidfile",
            &self.dir.join("redis.pid").display().to_string(),
            "--logfile",
            "",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--databases",
            "1",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let mut proc = Proc::spawn(
            "redis-server",
            supervised_with("TERM", &self.bin, &args),
            None,
        );
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            proc.assert_running();
            if self.ping() {
                break;
            }
            if Instant::now() > deadline {
                proc.fail(&format!("did not answer PING within {STARTUP_TIMEOUT:?}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.server.proc = Some(proc);
    }

    /// Whether the server answers `PING` with `+PONG` right now.
    fn ping(&self) -> bool {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut answer = [0u8; 7];
        stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// A [`RedisStore`] on this server (a pool of 4) whose commands fail after
    /// `command_timeout` while the server is down; connecting (and the client's internal
    /// commands) time out after `connect_timeout`, and reconnection is retried every 100 ms.
    pub async fn store(&self, command_timeout: Duration, connect_timeout: Duration) -> RedisStore {
        use fred::prelude::*;
        let pool = Builder::from_config(Config::from_url(&self.url()).unwrap())
            .with_performance_config(|p| p.default_command_timeout = command_timeout)
            .with_connection_config(|c| {
                c.connection_timeout = connect_timeout;
                c.internal_command_timeout = connect_timeout;
            })
            .set_policy(ReconnectPolicy::new_constant(0, 100))
            .build_pool(4)
            .unwrap();
        pool.init().await.unwrap();
        RedisStore::new(pool)
    }

    /// Output of the server so far (of its current run).
    pub fn logs(&self) -> String {
        self.server.logs()
    }
}

/// `stop` sends `SIGTERM`: the append-only file is complete.
impl Restartable for RedisServer {
    async fn stop(&mut self) {
        self.server.stop().await;
    }

    async fn restart(&mut self) {
        self.server.stop().await;
        self.spawn().await;
    }
}

/// A PostgreSQL server on `127.0.0.1:<port>` with the database
/// [`DATABASE`](Self::DATABASE), stopped on drop (see the [module docs](self)).
#[derive(Debug)]
pub struct PostgresServer {
    bin_dir: PathBuf,
    data: PathBuf,
    port: u16,
    /// `Some((uid, gid))` of `postgres` when the tests run as root.
    run_as: Option<(u32, u32)>,
    server: Server,
}

impl PostgresServer {
    /// The database created at start, owned by the superuser `postgres`.
    pub const DATABASE: &'static str = "oidc_test";

    /// Creates a cluster in a new temporary directory, starts it on a free port, waits until
    /// it accepts connections and creates [`DATABASE`](Self::DATABASE).
    ///
    /// # Panics
    ///
    /// When PostgreSQL is not installed (or, as root, there is no `postgres` user), or a step
    /// fails or times out.
    pub async fn start() -> Self {
        let bin_dir = Self::bin_dir();
        let run_as = match id(&["-u"]) {
            Some(0) => Some(
                id(&["-u", "postgres"])
                    .zip(id(&["-g", "postgres"]))
                    .unwrap_or_else(|| {
                        panic!(
                            "the tests run as root, and PostgreSQL refuses to: the `postgres` \
                             user (created by Debian's postgresql package) is needed"
                        )
                    }),
            ),
            _ => None,
        };
        let dir = temp_dir("pg");
        let data = dir.join("data");
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {} to postgres: {e}", dir.display()));
        }
        let mut server = Self {
            bin_dir,
            port: free_port(),
            run_as,
            server: Server::new("postgres", &dir, data.join("postmaster.pid")),
            data,
        };
        server.initdb();
        server.spawn().await;
        server.createdb();
        server
    }

    /// The `bin` directory of the newest `/usr/lib/postgresql/<version>`.
    fn bin_dir() -> PathBuf {
        let root = Path::new("/usr/lib/postgresql");
        let newest = std::fs::read_dir(root)
            .into_iter()
            .flatten()
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let version: u32 = entry.file_name().to_str()?.parse().ok()?;
                let bin = entry.path().join("bin");
                (bin.join("postgres").is_file() && bin.join("initdb").is_file())
                    .then_some((version, bin))
            })
            .max_by_key(|(version, _)| *version);
        match newest {
            Some((_, bin)) => bin,
            None => panic!(
                "PostgreSQL not found in /usr/lib/postgresql/<version>/bin: the shared-store \
                 tests need Debian's postgresql (apt-get install postgresql; ./.ci/run installs it)"
            ),
        }
    }

    /// A command for `program` of the PostgreSQL `bin` directory, as `postgres` when root.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        self.drop_privileges(&mut cmd);
        cmd
    }

    fn drop_privileges(&self, cmd: &mut Command) {
        if let Some((uid, gid)) = self.run_as {
            // As root, std also clears the supplementary groups before `setuid`.
            cmd.uid(uid).gid(gid);
        }
        // Nothing from the environment: a PGHOST, PGPORT… of the machine must not interfere.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PG") {
                cmd.env_remove(key);
            }
        }
        cmd.current_dir(self.data.parent().unwrap_or(Path::new("/")));
    }

    fn run(&self, mut cmd: Command, what: &str) {
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {what} ({cmd:?}): {e}"));
        assert!(
            out.status.success(),
            "{what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn initdb(&self) {
        let mut cmd = self.command("initdb");
        cmd.arg("--pgdata").arg(&self.data).args([
            "--username=postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        self.run(cmd, "initdb");
    }

    async fn spawn(&mut self) {
        let args: Vec<String> = vec![
            "-D".to_owned(),
            self.data.display().to_string(),
            "-p".to_owned(),
            self.port.to_string(),
            "-c".to_owned(),
            "listen_addresses=127.0.0.1".to_owned(),
            "-c".to_owned(),
            "unix_socket_directories=".to_owned(),
            "-c".to_owned(),
            "fsync=off".to_owned(),
            "-c".to_owned(),
            "full_page_writes=off".to_owned(),
            "-c".to_owned(),
            "shared_buffers=16MB".to_owned(),
            "-c".to_owned(),
            "max_connections=100".to_owned(),
        ];
        let mut cmd = supervised_with("INT", &self.bin_dir.join("postgres"), &args);
        self.drop_privileges(&mut cmd);
        let mut proc = Proc::spawn("postgres", cmd, None);
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            proc.assert_running();
            let mut ready = self.command("pg_isready");
            ready
                .args([
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-t",
                    "1",
                ])
                .arg("-p")
                .arg(self.port.to_string());
            if ready.output().is_ok_and(|out| out.status.success()) {
                break;
            }
            if Instant::now() > deadline {
                proc.fail(&format!(
                    "did not accept connections within {STARTUP_TIMEOUT:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.server.proc = Some(proc);
    }

    fn createdb(&self) {
        let mut cmd = self.command("createdb");
        cmd.args(["-h", "127.0.0.1", "-U", "postgres"])
            .arg("-p")
            .arg(self.port.to_string())
            .arg(Self::DATABASE);
        self.run(cmd, "createdb");
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:<port>/oidc_test`.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{}",
            self.port,
            Self::DATABASE
        )
    }

    /// A migrated [`PostgresStore`] on this server whose pool (10 connections) gives up
    /// acquiring a connection after `acquire_timeout`.
    pub async fn store(&self, acquire_timeout: Duration) -> PostgresStore {
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(acquire_timeout)
            .connect(&self.url())
            .await
            .unwrap();
        let store = PostgresStore::new(pool);
        store.migrate().await.unwrap();
        store
    }

    /// Output of the server so far (of its current run).
    pub fn logs(&self) -> String {
        self.server.logs()
    }
}

/// `stop` sends `SIGINT`: a fast shutdown, which ends the open connections.
impl Restartable for PostgresServer {
    async fn stop(&mut self) {
        self.server.stop().await;
    }

    async fn restart(&mut self) {
        self.server.stop().await;
        self.spawn().await;
    }
}
