//! Serves a streamlog [`Log`] over Kafka's wire protocol, so that Kafka's
//! own clients (librdkafka and kcat, the Java client, kafka-python,
//! KafkaJS, franz-go, `rdkafka`) and tools produce to it, fetch from it and
//! run consumer groups on it, while the program that holds the `Log` keeps
//! using it in-process: one log, two doors.
//!
//! ```no_run
//! use streamlog::Log;
//! use streamlog_server::{Server, ServerConfig};
//!
//! let log = Log::open("./data")?;
//! let server = Server::start(log.clone(), "127.0.0.1:9092", ServerConfig::new())?;
//! println!("listening on {}", server.local_addr());
//! // ... the program goes on using `log`; Kafka clients reach it too ...
//! server.shutdown();
//! log.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The server is one broker (node 0) that leads every partition. Each
//! connection has its own thread, which parks (no busy wait) in long-poll
//! fetches and group joins; memory per connection is bounded by the
//! request caps in [`ServerConfig`]. One more thread runs the timers:
//! group sessions and transaction timeouts. ARCHITECTURE.md describes the modules
//! and the APIs served.

#![deny(missing_docs)]

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use streamlog::Log;

mod api;
mod conn;
mod groups;
pub mod wire;
mod writer;

pub use conn::MAX_OTHER_REQUEST_BYTES;

/// How a [`Server`] behaves. Defaults follow Kafka's broker defaults
/// except where a development server should be quicker (no initial
/// rebalance delay).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Create an unknown topic when a client asks for it (Kafka's
    /// `auto.create.topics.enable`). Default: true.
    pub auto_create_topics: bool,
    /// Partitions of an automatically created topic, and of a topic created
    /// with −1 partitions (Kafka's `num.partitions`). Default: 1.
    pub default_partitions: u32,
    /// The largest request frame (Kafka's `socket.request.max.bytes`).
    /// Default: 100 MiB.
    pub max_request_bytes: usize,
    /// The request bytes all connections together may be reading at once
    /// (Kafka's `queued.max.request.bytes`). Default: 512 MiB.
    pub max_inflight_request_bytes: usize,
    /// The address given to clients in metadata. Default: the address
    /// bound (127.0.0.1 for an unspecified address).
    pub advertised: Option<SocketAddr>,
    /// How long a new group waits for more members before its first
    /// rebalance (Kafka's `group.initial.rebalance.delay.ms`, 3 s there).
    /// Default: 0.
    pub initial_rebalance_delay: Duration,
    /// Print a line to stderr when a connection is closed for a bad
    /// request. Default: true.
    pub log_errors: bool,
    /// A connection that sends nothing for this long (between requests, or
    /// in the middle of one) is closed (Kafka's `connections.max.idle.ms`).
    /// Default: 10 minutes.
    pub idle_timeout: Duration,
    /// Connections served at once; more are closed when accepted (Kafka's
    /// `max.connections`). Default: 4,096.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            auto_create_topics: true,
            default_partitions: 1,
            max_request_bytes: 100 << 20,
            max_inflight_request_bytes: 512 << 20,
            advertised: None,
            initial_rebalance_delay: Duration::ZERO,
            log_errors: true,
            idle_timeout: Duration::from_secs(600),
            max_connections: 4096,
        }
    }
}

impl ServerConfig {
    /// The defaults.
    ///
    /// # Example
    /// ```
    /// let cfg = streamlog_server::ServerConfig::new().auto_create_topics(false).default_partitions(3);
    /// assert_eq!(cfg.default_partitions, 3);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`auto_create_topics`](Self::auto_create_topics).
    ///
    /// # Example
    /// ```
    /// let cfg = streamlog_server::ServerConfig::new().auto_create_topics(false);
    /// ```
    pub fn auto_create_topics(mut self, on: bool) -> Self {
        self.auto_create_topics = on;
        self
    }

    /// Sets [`default_partitions`](Self::default_partitions) (at least 1).
    ///
    /// # Example
    /// ```
    /// let cfg = streamlog_server::ServerConfig::new().default_partitions(4);
    /// ```
    pub fn default_partitions(mut self, n: u32) -> Self {
        self.default_partitions = n.max(1);
        self
    }

    /// Sets [`max_request_bytes`](Self::max_request_bytes).
    ///
    /// # Example
    /// ```
    /// let cfg = streamlog_server::ServerConfig::new().max_request_bytes(10 << 20);
    /// ```
    pub fn max_request_bytes(mut self, n: usize) -> Self {
        self.max_request_bytes = n;
        self
    }

    /// Sets [`advertised`](Self::advertised).
    ///
    /// # Example
    /// ```
    /// let cfg = streamlog_server::ServerConfig::new().advertised("127.0.0.1:9092".parse()?);
    /// # Ok::<(), std::net::AddrParseError>(())
    /// ```
    pub fn advertised(mut self, addr: SocketAddr) -> Self {
        self.advertised = Some(addr);
        self
    }

    /// Sets [`initial_rebalance_delay`](Self::initial_rebalance_delay).
    ///
    /// # Example
    /// ```
    /// let cfg = streamlog_server::ServerConfig::new()
    ///     .initial_rebalance_delay(std::time::Duration::from_secs(3));
    /// ```
    pub fn initial_rebalance_delay(mut self, d: Duration) -> Self {
        self.initial_rebalance_delay = d;
        self
    }

    /// Sets [`idle_timeout`](Self::idle_timeout) (at least 1 ms).
    ///
    /// # Example
    /// ```
    /// let cfg = streamlog_server::ServerConfig::new()
    ///     .idle_timeout(std::time::Duration::from_secs(60));
    /// ```
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d.max(Duration::from_millis(1));
        self
    }

    /// Sets [`max_connections`](Self::max_connections).
    ///
    /// # Example
    /// ```
    /// let cfg = streamlog_server::ServerConfig::new().max_connections(100);
    /// ```
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets [`log_errors`](Self::log_errors).
    ///
    /// # Example
    /// ```
    /// let cfg = streamlog_server::ServerConfig::new().log_errors(false);
    /// ```
    pub fn log_errors(mut self, on: bool) -> Self {
        self.log_errors = on;
        self
    }
}

/// A budget of bytes shared by all connections: the bytes of requests
/// being read. A new request waits while the budget is spent.
pub(crate) struct Inflight {
    used: Mutex<usize>,
    freed: Condvar,
    cap: usize,
}

/// Room taken from [`Inflight`], returned on drop.
pub(crate) struct Permit<'a> {
    of: &'a Inflight,
    n: usize,
}

impl Inflight {
    fn new(cap: usize) -> Self {
        Inflight {
            used: Mutex::new(0),
            freed: Condvar::new(),
            cap,
        }
    }

    /// Admits a new request: waits while the requests being read hold the
    /// whole budget. The permit then grows with the bytes that arrive, and
    /// never waits again (a request in progress never blocks on another,
    /// so none can wait for each other).
    pub fn admit(&self) -> Permit<'_> {
        let mut used = self.used.lock();
        while *used >= self.cap {
            self.freed.wait(&mut used);
        }
        Permit { of: self, n: 0 }
    }
}

impl Permit<'_> {
    /// Charges `n` more bytes, which arrived.
    pub fn grow(&mut self, n: usize) {
        *self.of.used.lock() += n;
        self.n += n;
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.of.used.lock() -= self.n;
        self.of.freed.notify_all();
    }
}

/// A connection: its id, a handle to shut its socket down, its thread.
type Conn = (u64, TcpStream, Option<JoinHandle<()>>);

struct Shared {
    ctx: api::Ctx,
    conns: Mutex<Vec<Conn>>,
    next_conn: AtomicU64,
}

/// A running server: an accepting thread and one thread per connection.
/// Stops on [`shutdown`](Self::shutdown) or when dropped; the `Log` stays
/// open (the caller closes it).
pub struct Server {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
    timer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

/// The stack of a connection thread: handlers keep little on it.
const CONN_STACK: usize = 256 << 10;

impl Server {
    /// Binds `addr` and starts serving `log` (a clone of the caller's
    /// handle: both doors share one log). Returns once the socket accepts
    /// connections. Port 0 binds a free port: see [`local_addr`](Self::local_addr).
    ///
    /// # Errors
    /// The bind's I/O error, or a thread that could not be started.
    ///
    /// # Example
    /// ```
    /// use streamlog_server::{Server, ServerConfig};
    /// let log = streamlog::Log::temporary()?;
    /// let server = Server::start(log, "127.0.0.1:0", ServerConfig::new())?;
    /// assert_ne!(server.local_addr().port(), 0);
    /// server.shutdown();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start(log: Log, addr: impl ToSocketAddrs, config: ServerConfig) -> io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let advertised = config.advertised.unwrap_or_else(|| {
            let mut a = addr;
            if a.ip().is_unspecified() {
                a.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            a
        });
        let shared = Arc::new(Shared {
            ctx: api::Ctx {
                log,
                inflight: Inflight::new(config.max_inflight_request_bytes),
                groups: groups::Groups::new(config.initial_rebalance_delay),
                config,
                advertised,
                stopping: AtomicBool::new(false),
            },
            conns: Mutex::new(Vec::new()),
            next_conn: AtomicU64::new(0),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("streamlog-accept".into())
            .spawn(move || accept_loop(&s, listener))?;
        let s = shared.clone();
        let timer = std::thread::Builder::new()
            .name("streamlog-timer".into())
            .spawn(move || timer_loop(&s))?;
        Ok(Server {
            shared,
            addr,
            accept: Some(accept),
            timer: Some(timer),
        })
    }

    /// The address bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes every connection, and waits for their
    /// threads (a parked fetch or join ends within half a second).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        self.shared.ctx.stopping.store(true, Ordering::SeqCst);
        self.shared.ctx.groups.wake_all();
        // Wake the accepting thread with a connection of our own.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        let _ = accept.join();
        if let Some(t) = self.timer.take() {
            let _ = t.join();
        }
        let conns = std::mem::take(&mut *self.shared.conns.lock());
        for (_, stream, _) in &conns {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        for (_, _, handle) in conns {
            if let Some(h) = handle {
                let _ = h.join();
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The server's timers, as Kafka's broker runs them: groups' session
/// expiry and join deadlines (so a group whose members all vanished
/// empties and releases its claim), and the abort of remote transactions
/// past their timeout (so read_committed readers move on).
fn timer_loop(shared: &Arc<Shared>) {
    let ctx = &shared.ctx;
    while !ctx.stopping() {
        std::thread::sleep(Duration::from_millis(200));
        ctx.groups.tick();
        if let Err(e) = ctx.log.abort_timed_out_transactions() {
            if ctx.config.log_errors {
                eprintln!("streamlog-server: aborting timed-out transactions: {e}");
            }
        }
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: TcpListener) {
    for stream in listener.incoming() {
        if shared.ctx.stopping() {
            break;
        }
        let Ok(stream) = stream else {
            // Out of descriptors, or a connection reset before accept: back
            // off briefly rather than spin.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        if shared.conns.lock().len() >= shared.ctx.config.max_connections {
            // Over the limit: closed at once (dropped), as Kafka does.
            continue;
        }
        let Ok(handle_copy) = stream.try_clone() else {
            continue;
        };
        let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
        // Registered before the thread starts, so that its removal at the
        // end always finds it.
        shared.conns.lock().push((id, handle_copy, None));
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("streamlog-conn".into())
            .stack_size(CONN_STACK)
            .spawn(move || {
                conn::serve(&s.ctx, stream);
                s.conns.lock().retain(|(i, _, _)| *i != id);
            });
        let mut conns = shared.conns.lock();
        match spawned {
            Ok(handle) => {
                if let Some(c) = conns.iter_mut().find(|c| c.0 == id) {
                    c.2 = Some(handle);
                }
            }
            Err(_) => conns.retain(|c| c.0 != id),
        }
    }
}
