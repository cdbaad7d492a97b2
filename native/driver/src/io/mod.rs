//! The IO thread: one UDP socket, quiche connections, timers, commands.
//!
//! This file holds the [`Io`] state, its construction, the event loop and its
//! timers, the thread body ([`run`]), debug logging and the quiche
//! configuration shared by both roles. The loop's stages live in submodules:
//! `recv` (datagrams in), `accept` (admission of new connections and client
//! connects), `stream` (owner commands and the control stream), `send`
//! (datagrams out) and `lifecycle` (deadlines, closing, reaping).

use crate::conn::Conn;
use crate::ratelimit::TokenBucket;
use crate::retry::RetryTokens;
use crate::sched::Schedule;
use crate::udp::{self, Offload};
use crate::{
    batch_cost, lock, Command, ConnShared, DriverError, EndpointConfig, Event, EventSink, Shared,
};
use cribcall_core::limits;
use cribcall_core::reset::ResetKey;
use cribcall_core::tls::{self, LocalCredentials};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use ring::rand::{SecureRandom, SystemRandom};
use send::Batch;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);

pub struct Io {
    /// The poller's registry (the poller itself stays with the IO thread).
    registry: Registry,
    /// When the IO thread plans to wake next if nothing happens (None: no
    /// deadline); set under the lock before it sleeps, so a send made on the
    /// owner's thread knows whether it must wake it for an earlier deadline.
    planned_wake: Option<Instant>,
    socket: UdpSocket,
    local: SocketAddr,
    config: EndpointConfig,
    server_config: quiche::Config,
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Command>,
    conns: HashMap<u32, Conn>,
    cid_map: HashMap<quiche::ConnectionId<'static>, u32>,
    events: Vec<Event>,
    rng: SystemRandom,
    recv_buf: Vec<u8>,
    send_buf: Vec<u8>,
    read_buf: Vec<u8>,
    /// Datagrams (or GSO batches: bytes, address, segment size) the socket
    /// refused with WouldBlock; sent first, in order, once it is writable.
    blocked: VecDeque<(Vec<u8>, SocketAddr, usize)>,
    /// UDP segmentation offload the socket supports (GSO, GRO).
    offload: Offload,
    /// Receives GRO batches (many datagrams of one sender).
    gro_buf: Vec<u8>,
    writable_interest: bool,
    shutting_down: bool,
    /// A connection still had readable data when its read budget ran out.
    more_to_read: bool,
    keylog: Option<std::path::PathBuf>,
    qlog_dir: Option<std::path::PathBuf>,
    /// Stateless reset tokens of the connection IDs we issue (RFC 9000 §10.3).
    reset_key: ResetKey,
    /// Endpoint-wide budget of unsolicited replies (resets, VN, refusals).
    unsolicited_budget: TokenBucket,
    retry_tokens: RetryTokens,
    /// Server handshakes in progress, and their order of arrival.
    half_open: usize,
    half_open_order: VecDeque<u32>,
    /// Pairing-only connections established and not closed.
    pairing_only: usize,
    /// Connections to look at this turn, and every connection's next deadline.
    sched: Schedule,
    /// Connections with unread stream data left while the owner was behind.
    starved: HashSet<u32>,
    /// Connections whose flush the socket refused; retried when writable.
    blocked_ids: Vec<u32>,
    /// The GSO batch being filled in `send_buf` during a flush.
    batch: Batch,
}

/// `CRIBCALL_LOG=debug` (or `1`) prints connection lifecycle lines to stderr.
/// Never prints keys, PINs or payloads.
fn debug_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        matches!(
            std::env::var("CRIBCALL_LOG").as_deref(),
            Ok("1") | Ok("debug") | Ok("trace")
        )
    })
}

macro_rules! debug_log {
    ($($arg:tt)*) => {
        if $crate::io::debug_enabled() {
            eprintln!("[cribcall-quic] {}", format!($($arg)*));
        }
    };
}

mod accept;
mod lifecycle;
mod recv;
mod send;
mod stream;

#[cfg(test)]
mod core_tests;

fn base_quiche_config(
    builder: boring::ssl::SslContextBuilder,
    cfg: &EndpointConfig,
    is_server: bool,
) -> Result<quiche::Config, DriverError> {
    let mut c = quiche::Config::with_boring_ssl_ctx_builder(quiche::PROTOCOL_VERSION, builder)
        .map_err(|e| DriverError::Tls(format!("quiche config: {e}")))?;
    c.set_application_protos(&[tls::ALPN])
        .map_err(|e| DriverError::Tls(format!("ALPN: {e}")))?;
    c.set_max_idle_timeout(cfg.idle_timeout.as_millis() as u64);
    c.set_max_recv_udp_payload_size(limits::MAX_DATAGRAM);
    c.set_max_send_udp_payload_size(limits::MAX_SEND_UDP_PAYLOAD);
    c.set_initial_max_data(limits::CONNECTION_WINDOW);
    c.set_initial_max_stream_data_bidi_local(limits::STREAM_WINDOW);
    c.set_initial_max_stream_data_bidi_remote(limits::STREAM_WINDOW);
    c.set_initial_max_stream_data_uni(0);
    // The monitor admits one client-opened bidirectional stream and no
    // unidirectional ones; the listener admits no server-opened streams.
    c.set_initial_max_streams_bidi(if is_server { 1 } else { 0 });
    c.set_initial_max_streams_uni(0);
    c.set_max_stream_window(limits::MAX_STREAM_WINDOW);
    c.set_max_connection_window(limits::MAX_CONNECTION_WINDOW);
    c.set_disable_active_migration(true);
    // The recovery cribcall-quic's quiche patch covers (native/vendor/README.md).
    c.set_cc_algorithm(quiche::CongestionControlAlgorithm::CUBIC);
    if std::env::var_os("SSLKEYLOGFILE").is_some() {
        c.log_keys();
    }
    // Early data stays disabled: enable_early_data() is never called.
    Ok(c)
}

impl Io {
    pub fn new(
        config: EndpointConfig,
        shared: Arc<Shared>,
        rx: mpsc::Receiver<Command>,
    ) -> Result<(Io, Poll, Waker, SocketAddr), DriverError> {
        let poll = Poll::new().map_err(|e| DriverError::Bind(format!("poll: {e}")))?;
        let mut socket = UdpSocket::bind(config.bind)
            .map_err(|e| DriverError::Bind(format!("cannot bind UDP {}: {e}", config.bind)))?;
        let local = socket
            .local_addr()
            .map_err(|e| DriverError::Bind(format!("local_addr: {e}")))?;
        enlarge_socket_buffers(&socket);
        let offload = Offload::enable(&socket, config.udp_offload);
        poll.registry()
            .register(&mut socket, SOCKET, Interest::READABLE)
            .map_err(|e| DriverError::Bind(format!("register: {e}")))?;
        let waker = Waker::new(poll.registry(), WAKER)
            .map_err(|e| DriverError::Bind(format!("waker: {e}")))?;
        let registry = poll
            .registry()
            .try_clone()
            .map_err(|e| DriverError::Bind(format!("registry: {e}")))?;
        let server_builder = tls::server_context(
            &config.credentials,
            shared.policy.clone(),
            shared.tls_counters.clone(),
        )?;
        let server_config = base_quiche_config(server_builder, &config, true)?;
        let reset_key = config.credentials.stateless_reset_key()?;
        let mut token_key = [0u8; 32];
        SystemRandom::new()
            .fill(&mut token_key)
            .map_err(|_| DriverError::Tls("random generator failed".into()))?;
        let retry_tokens =
            RetryTokens::new(&token_key, Instant::now(), limits::RETRY_TOKEN_LIFETIME);
        let (keylog, qlog_dir) = debugging_aids()?;
        debug_log!("endpoint bound to {local}");
        Ok((
            Io {
                registry,
                planned_wake: None,
                socket,
                local,
                config,
                server_config,
                shared,
                rx,
                conns: HashMap::new(),
                cid_map: HashMap::new(),
                events: Vec::new(),
                rng: SystemRandom::new(),
                recv_buf: vec![0; limits::MAX_DATAGRAM],
                // Room for one GSO batch; without GSO one packet at a time.
                send_buf: vec![0; udp::MAX_BATCH_BYTES.max(limits::MAX_SEND_UDP_PAYLOAD)],
                read_buf: vec![0; 64 * 1024],
                blocked: VecDeque::new(),
                offload,
                gro_buf: if offload.gro {
                    vec![0; limits::MAX_DATAGRAM]
                } else {
                    Vec::new()
                },
                writable_interest: false,
                shutting_down: false,
                more_to_read: false,
                keylog,
                qlog_dir,
                reset_key,
                unsolicited_budget: TokenBucket::new(limits::UNSOLICITED_REPLIES_PER_SEC),
                retry_tokens,
                half_open: 0,
                half_open_order: VecDeque::new(),
                pairing_only: 0,
                sched: Schedule::default(),
                starved: HashSet::new(),
                blocked_ids: Vec::new(),
                batch: Batch::default(),
            },
            poll,
            waker,
            local,
        ))
    }

    fn credentials(&self) -> &LocalCredentials {
        &self.config.credentials
    }

    fn new_cid(&self) -> Result<quiche::ConnectionId<'static>, DriverError> {
        let mut b = vec![0u8; limits::CONN_ID_LEN];
        self.rng
            .fill(&mut b)
            .map_err(|_| DriverError::Tls("random generator failed".into()))?;
        Ok(quiche::ConnectionId::from_vec(b))
    }

    /// Debugging aids, off unless asked for: SSLKEYLOGFILE (TLS secrets in NSS
    /// key log format, for Wireshark) and QLOGDIR (one qlog file per connection).
    /// A file that cannot be created later (disk full) is skipped.
    fn attach_keylog(&self, q: &mut quiche::Connection, is_server: bool) {
        if let Some(path) = &self.keylog {
            if let Ok(f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                q.set_keylog(Box::new(f));
            }
        }
        if let Some(dir) = &self.qlog_dir {
            let role = if is_server { "server" } else { "client" };
            let file = dir.join(format!("{}-{role}.sqlog", q.trace_id()));
            match std::fs::File::create(&file) {
                Ok(f) => q.set_qlog(
                    Box::new(std::io::BufWriter::new(f)),
                    format!("cribcall-quic {role}"),
                    format!("cribcall-quic {role} {}", q.trace_id()),
                ),
                Err(e) => debug_log!("qlog {}: {e}", file.display()),
            }
        }
    }

    fn conn_shared(&self, conn_id: u32) -> Arc<ConnShared> {
        lock(&self.shared.registry)
            .entry(conn_id)
            .or_insert_with(ConnShared::new)
            .clone()
    }

    fn unregister(&self, conn_id: u32) {
        lock(&self.shared.registry).remove(&conn_id);
    }

    fn next_timeout(&self) -> Option<Duration> {
        if self.more_to_read || self.sched.has_dirty() {
            return Some(Duration::ZERO);
        }
        self.sched
            .next_deadline()
            .map(|t| t.saturating_duration_since(Instant::now()))
    }

    /// Runs the deadlines that have come.
    fn fire_timers(&mut self) {
        let now = Instant::now();
        for id in self.sched.pop_due(now) {
            self.handle_timeout(id, now);
            self.sched.mark(id);
        }
    }

    /// Sets the next deadline of every connection looked at this turn.
    fn reschedule(&mut self, ids: &[u32]) {
        for id in ids {
            let at = self
                .conns
                .get(id)
                .and_then(|c| c.next_deadline(&self.config));
            self.sched.set_timer(*id, at);
        }
    }

    /// This turn's events, their flow credit counted; None when there are none.
    fn take_events(&mut self) -> Option<Vec<Event>> {
        if self.events.is_empty() {
            return None;
        }
        let batch = std::mem::take(&mut self.events);
        let (n, bytes) = batch_cost(&batch);
        self.shared.flow.add(n, bytes);
        Some(batch)
    }
}

/// Asks for larger socket buffers than the kernel's defaults, so a burst (a
/// fan-out, a retransmission after a path change) is not dropped by the
/// kernel. The kernel may grant less (net.core.rmem_max); that is not an error.
fn enlarge_socket_buffers(socket: &UdpSocket) {
    let s = socket2::SockRef::from(socket);
    let _ = s.set_recv_buffer_size(limits::SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(limits::SOCKET_BUFFER);
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

/// Locks the IO state for the IO thread. A panic on the owner's thread while
/// it held the lock (an inline send) ends the endpoint like one of our own.
fn lock_io(core: &Mutex<Io>) -> MutexGuard<'_, Io> {
    let io = core.lock().unwrap_or_else(|p| p.into_inner());
    if io.shared.inline_panicked.load(Ordering::Acquire) {
        drop(io);
        panic!("a send on the owner's thread panicked");
    }
    io
}

/// The loop. Returns when shut down. Each turn looks only at the
/// connections a datagram, a command or a deadline touched. The state is
/// locked for the whole turn but not while waiting in `poll`, so the owner's
/// thread may send in between (`EndpointHandle::send`).
fn run_loop(core: &Mutex<Io>, poll: &mut Poll, sink: &mut dyn EventSink) {
    let mut events = Events::with_capacity(256);
    loop {
        let timeout = {
            let mut io = lock_io(core);
            let timeout = io.next_timeout();
            io.planned_wake = timeout.map(|t| Instant::now() + t);
            timeout
        };
        let polled = poll.poll(&mut events, timeout);
        let mut io = lock_io(core);
        io.planned_wake = Some(Instant::now());
        if let Err(e) = polled {
            if e.kind() != ErrorKind::Interrupted {
                io.events.push(Event::Error {
                    code: "ERR_SOCKET",
                    message: format!("poll failed: {e}"),
                });
            }
        }
        let mut socket_ready = false;
        for ev in events.iter() {
            if ev.token() == SOCKET {
                socket_ready = true;
                if ev.is_writable() {
                    io.flush_blocked();
                }
            }
        }
        if io.blocked.is_empty() {
            for id in std::mem::take(&mut io.blocked_ids) {
                io.sched.mark(id);
            }
        }
        if socket_ready {
            io.read_socket();
        }
        io.drain_commands();
        io.fire_timers();
        let ids = io.process_conns();
        io.flush(&ids);
        io.reap(&ids);
        io.reschedule(&ids);
        // Delivered with the state unlocked: an owner that answers at once
        // finds the IO thread idle and sends from its own thread.
        let batch = io.take_events();
        let done = io.shutting_down;
        drop(io);
        if let Some(batch) = batch {
            sink.deliver(batch);
        }
        if done {
            break;
        }
    }
}

/// Thread body: runs the loop, contains panics, always ends with [`Event::Closed`].
pub fn run(core: Arc<Mutex<Io>>, mut poll: Poll, mut sink: impl EventSink) {
    let result = catch_unwind(AssertUnwindSafe(|| run_loop(&core, &mut poll, &mut sink)));
    let mut io = core.lock().unwrap_or_else(|p| p.into_inner());
    // Mark closed so the owner's calls fail fast from now on.
    io.shared.closed.store(true, Ordering::Release);
    match result {
        Ok(()) => {
            // Flush the CONNECTION_CLOSE frames of the shutdown.
            let ids: Vec<u32> = io.conns.keys().copied().collect();
            for &id in &ids {
                io.flush_conn(id);
            }
            io.finish_batch();
            io.reap(&ids);
            io.final_events("endpoint closed", "ERR_ENDPOINT_CLOSED");
        }
        Err(p) => {
            let msg = panic_message(p.as_ref());
            io.events.push(Event::Error {
                code: "ERR_INTERNAL",
                message: format!("the IO thread panicked: {msg}"),
            });
            let _ = catch_unwind(AssertUnwindSafe(|| {
                io.final_events(&format!("endpoint failed: {msg}"), "ERR_INTERNAL")
            }));
        }
    }
    io.events.push(Event::Closed);
    let batch = io.take_events();
    drop(io);
    if let Some(batch) = batch {
        let _ = catch_unwind(AssertUnwindSafe(|| sink.deliver(batch)));
    }
}

/// SSLKEYLOGFILE and QLOGDIR, checked when the endpoint starts: the QLOGDIR
/// directory is created (with its parents), and either one that cannot be
/// used fails the bind with a message naming it, instead of writing nothing.
fn debugging_aids() -> Result<(Option<PathBuf>, Option<PathBuf>), DriverError> {
    let keylog = std::env::var_os("SSLKEYLOGFILE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    if let Some(path) = &keylog {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                DriverError::InvalidArgument(format!(
                    "SSLKEYLOGFILE={}: cannot open the file: {e}",
                    path.display()
                ))
            })?;
    }
    let qlog_dir = std::env::var_os("QLOGDIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    if let Some(dir) = &qlog_dir {
        std::fs::create_dir_all(dir).map_err(|e| {
            DriverError::InvalidArgument(format!(
                "QLOGDIR={}: cannot create the directory: {e}",
                dir.display()
            ))
        })?;
    }
    Ok((keylog, qlog_dir))
}
