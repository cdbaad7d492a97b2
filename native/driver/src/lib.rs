//! IO driver of cribcall-quic.
//!
//! An endpoint owns one UDP socket and one OS thread. The thread runs the loop
//! of quiche's own examples: drain the socket, route datagrams by destination
//! connection ID, `recv`, apply commands from the owner, read the control
//! streams, `send` until `Done`, then block in `poll` until a datagram, a
//! command (through a [`mio::Waker`]) or the earliest quiche timeout. An idle
//! endpoint therefore costs no CPU.
//!
//! The owner (the napi layer, or a Rust test) talks to the thread through an
//! [`EndpointHandle`] and receives [`Event`] batches through an [`EventSink`].

pub mod batch;
mod conn;
mod io;
mod ratelimit;
mod retry;
mod sched;
mod udp;

use cribcall_core::framing::{self, FrameError};
use cribcall_core::identity::{parse_fingerprint, IdentityError};
use cribcall_core::limits;
use cribcall_core::tls::{AdmissionPolicy, LocalCredentials, ServerTlsCounters, SharedPolicy};
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// Endpoint settings.
#[derive(Clone)]
pub struct EndpointConfig {
    pub bind: SocketAddr,
    pub credentials: LocalCredentials,
    pub max_frame_payload: usize,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub keep_alive: Option<Duration>,
    pub max_connections: usize,
    pub max_send_buffer: usize,
    /// Server: handshakes in progress at once; when full the oldest of the
    /// source (IP, then IP and port) holding the most gives way.
    pub max_half_open: usize,
    /// Server: Retry once this many handshakes are in progress (0: always;
    /// None: never).
    pub retry_threshold: Option<usize>,
    /// Server: lifetime of a pairing-only connection.
    pub pairing_deadline: Duration,
    /// Server: pairing-only connections at once.
    pub max_pairing_connections: usize,
    /// Server: a frame must complete this long after its first byte arrived.
    pub frame_timeout: Duration,
    /// Use UDP segmentation offload (GSO/GRO) where the OS has it. Default on,
    /// unless the environment says `CRIBCALL_UDP_OFFLOAD=0`.
    pub udp_offload: bool,
}

impl EndpointConfig {
    /// Defaults from [`limits`] for everything but the socket and the identity.
    pub fn new(bind: SocketAddr, credentials: LocalCredentials) -> Self {
        EndpointConfig {
            bind,
            credentials,
            max_frame_payload: framing::DEFAULT_MAX_PAYLOAD,
            handshake_timeout: limits::DEFAULT_HANDSHAKE_TIMEOUT,
            idle_timeout: limits::DEFAULT_IDLE_TIMEOUT,
            keep_alive: Some(limits::DEFAULT_KEEP_ALIVE),
            max_connections: limits::DEFAULT_MAX_CONNECTIONS,
            max_send_buffer: limits::DEFAULT_MAX_SEND_BUFFER,
            max_half_open: limits::DEFAULT_MAX_HALF_OPEN,
            retry_threshold: Some(limits::DEFAULT_RETRY_THRESHOLD),
            pairing_deadline: limits::DEFAULT_PAIRING_DEADLINE,
            max_pairing_connections: limits::DEFAULT_MAX_PAIRING_CONNECTIONS,
            frame_timeout: limits::DEFAULT_FRAME_TIMEOUT,
            udp_offload: std::env::var("CRIBCALL_UDP_OFFLOAD").as_deref() != Ok("0"),
        }
    }
}

/// Why a client connection did not come up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectFailure {
    /// Stable code: ERR_PIN_MISMATCH, ERR_PEER_REJECTED, ERR_HANDSHAKE_TIMEOUT,
    /// ERR_HANDSHAKE_FAILED, ERR_CONNECTION_CLOSED, ERR_ENDPOINT_CLOSED.
    pub code: &'static str,
    pub message: String,
    pub expected: Option<String>,
    pub actual: Option<String>,
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    pub code: u64,
    pub reason: String,
    pub by_peer: bool,
    /// True for an application close (QUIC CONNECTION_CLOSE type 0x1d).
    pub application: bool,
    /// Set when no close frame was exchanged: ERR_IDLE_TIMEOUT, ERR_ENDPOINT_CLOSED, ERR_INTERNAL.
    pub error_code: Option<&'static str>,
}

/// What the IO thread reports, in order.
#[derive(Debug)]
pub enum Event {
    /// Server side: a client completed the handshake and passed the admission policy.
    Connection {
        conn_id: u32,
        peer_fingerprint: String,
        /// The peer's certificate DER exactly as received in the handshake.
        peer_cert: Vec<u8>,
        peer_known: bool,
        remote: SocketAddr,
    },
    /// Client side: the server confirmed the handshake (it accepted our certificate).
    Connected {
        conn_id: u32,
        peer_fingerprint: String,
        peer_cert: Vec<u8>,
        remote: SocketAddr,
    },
    ConnectFailed {
        conn_id: u32,
        failure: ConnectFailure,
    },
    Frame {
        conn_id: u32,
        payload: Vec<u8>,
    },
    Close {
        conn_id: u32,
        info: CloseInfo,
    },
    /// The connection's native send queue is empty again after a send was
    /// refused (send buffer full) or after it rose above half the buffer.
    Drain {
        conn_id: u32,
    },
    /// Endpoint-level problem (ERR_SOCKET, ERR_INTERNAL).
    Error {
        code: &'static str,
        message: String,
    },
    /// The IO thread is about to exit; always the last event.
    Closed,
}

impl Event {
    fn payload_len(&self) -> usize {
        match self {
            Event::Frame { payload, .. } => payload.len(),
            _ => 0,
        }
    }
}

/// Receives event batches on the IO thread. It must not block for long.
pub trait EventSink: Send + 'static {
    fn deliver(&mut self, batch: Vec<Event>);
}

impl<F: FnMut(Vec<Event>) + Send + 'static> EventSink for F {
    fn deliver(&mut self, batch: Vec<Event>) {
        self(batch)
    }
}

/// Errors of the handle's synchronous calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverError {
    InvalidArgument(String),
    Bind(String),
    Tls(String),
    Frame(FrameError),
    NotConnected(u32),
    SendBufferFull { queued: usize, max: usize },
    Closed,
    TooManyConnections(usize),
}

impl DriverError {
    /// The stable error code the JS layer sees.
    pub fn code(&self) -> &'static str {
        match self {
            DriverError::InvalidArgument(_) => "ERR_INVALID_ARG",
            DriverError::Bind(_) => "ERR_BIND",
            DriverError::Tls(_) => "ERR_TLS",
            DriverError::Frame(FrameError::Empty) => "ERR_FRAME_EMPTY",
            DriverError::Frame(FrameError::TooLarge { .. }) => "ERR_FRAME_TOO_LARGE",
            DriverError::NotConnected(_) => "ERR_NOT_CONNECTED",
            DriverError::SendBufferFull { .. } => "ERR_SEND_BUFFER_FULL",
            DriverError::Closed => "ERR_ENDPOINT_CLOSED",
            DriverError::TooManyConnections(_) => "ERR_TOO_MANY_CONNECTIONS",
        }
    }
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriverError::InvalidArgument(m) | DriverError::Bind(m) | DriverError::Tls(m) => {
                write!(f, "{m}")
            }
            DriverError::Frame(e) => write!(f, "{e}"),
            DriverError::NotConnected(id) => write!(f, "connection {id} is not open"),
            DriverError::SendBufferFull { queued, max } => write!(
                f,
                "send buffer full: {queued} bytes queued, limit {max} (the peer is not reading)"
            ),
            DriverError::Closed => write!(f, "the endpoint is closed"),
            DriverError::TooManyConnections(n) => {
                write!(
                    f,
                    "the endpoint already has {n} connections (maxConnections)"
                )
            }
        }
    }
}

impl std::error::Error for DriverError {}

impl From<IdentityError> for DriverError {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::InvalidArgument(m) => DriverError::InvalidArgument(m),
            IdentityError::Crypto(m) => DriverError::Tls(m),
        }
    }
}

/// Counters readable from any thread.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicUsize,
    pub stateless_resets_sent: AtomicU64,
    pub stateless_resets_received: AtomicU64,
    pub handshakes_started: AtomicU64,
    pub handshakes_refused: AtomicU64,
    pub handshakes_retried: AtomicU64,
    pub invalid_tokens: AtomicU64,
    pub half_open: AtomicUsize,
    pub closed_by_deadline: AtomicU64,
    pub unsolicited_replies: AtomicU64,
    pub handshakes_rejected: AtomicU64,
    pub stream_bytes_received: AtomicU64,
    pub stream_bytes_sent: AtomicU64,
    pub frames_received: AtomicU64,
    pub frames_sent: AtomicU64,
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    pub send_calls: AtomicU64,
    pub recv_calls: AtomicU64,
    pub inline_flushes: AtomicU64,
}

/// A plain copy of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub connections: usize,
    /// Stateless resets sent for packets of unknown connections.
    pub stateless_resets_sent: u64,
    /// Connections ended by a stateless reset from the peer.
    pub stateless_resets_received: u64,
    /// Server handshakes started (a connection state was created).
    pub handshakes_started: u64,
    /// Handshakes refused for capacity (maxConnections, pairing-only cap) or
    /// given up to make room for a newer one (half-open cap).
    pub handshakes_refused: u64,
    /// Retry packets sent (address validation).
    pub handshakes_retried: u64,
    /// Initials dropped for a forged, foreign-address or expired Retry token.
    pub invalid_tokens: u64,
    /// Server handshakes in progress now.
    pub half_open: usize,
    /// Connections closed by a deadline (pairing deadline, frame timeout).
    pub closed_by_deadline: u64,
    /// Unsolicited replies sent: version negotiation, Retry, stateless
    /// resets, refusals.
    pub unsolicited_replies: u64,
    pub handshakes_rejected: u64,
    pub stream_bytes_received: u64,
    pub stream_bytes_sent: u64,
    pub frames_received: u64,
    pub frames_sent: u64,
    pub packets_received: u64,
    pub packets_sent: u64,
    /// System calls that sent packets (fewer than packets with GSO).
    pub send_calls: u64,
    /// System calls that received packets (fewer than packets with GRO).
    pub recv_calls: u64,
    /// Flushes whose frames went onto the wire from the owner's thread.
    pub inline_flushes: u64,
}

/// Events and payload bytes handed to the owner and not yet processed by it.
/// The IO thread stops reading streams while either is above its high-water mark.
#[derive(Debug, Default)]
pub struct Flow {
    events: AtomicUsize,
    bytes: AtomicUsize,
}

impl Flow {
    fn add(&self, events: usize, bytes: usize) {
        self.events.fetch_add(events, Ordering::AcqRel);
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
    }

    fn saturating_sub(a: &AtomicUsize, v: usize) -> usize {
        let mut cur = a.load(Ordering::Acquire);
        loop {
            let next = cur.saturating_sub(v);
            match a.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return next,
                Err(actual) => cur = actual,
            }
        }
    }

    /// True while the owner is behind.
    pub fn congested(&self) -> bool {
        self.events.load(Ordering::Acquire) >= limits::EVENT_HIGH_WATER
            || self.bytes.load(Ordering::Acquire) >= limits::EVENT_BYTES_HIGH_WATER
    }
}

/// Per-connection state shared with the owner's thread.
#[derive(Debug)]
pub(crate) struct ConnShared {
    /// Bytes accepted by `send` that quiche has not taken yet.
    queued: AtomicUsize,
    /// A 'drain' is owed once the queue is empty (a send was refused, or the
    /// queue rose above 1/DRAIN_FRACTION of the buffer).
    need_drain: AtomicBool,
}

impl ConnShared {
    pub(crate) fn new() -> Arc<ConnShared> {
        Arc::new(ConnShared {
            queued: AtomicUsize::new(0),
            need_drain: AtomicBool::new(false),
        })
    }
}

pub(crate) enum Command {
    Connect {
        conn_id: u32,
        addr: SocketAddr,
        fingerprint: [u8; 32],
    },
    Send {
        conn_id: u32,
        frame: Vec<u8>,
    },
    Broadcast {
        conn_ids: Vec<u32>,
        frame: Arc<[u8]>,
    },
    Close {
        conn_id: u32,
        code: u64,
        reason: String,
    },
    Shutdown,
    /// Test hook: make the IO thread panic.
    Panic,
}

pub(crate) struct Shared {
    policy: SharedPolicy,
    listening: AtomicBool,
    tls_counters: Arc<ServerTlsCounters>,
    stats: Stats,
    flow: Flow,
    registry: Mutex<HashMap<u32, Arc<ConnShared>>>,
    /// Wakes the IO thread; taken (and its file descriptor closed) by `join`.
    waker: Mutex<Option<mio::Waker>>,
    wake_pending: AtomicBool,
    paused: AtomicBool,
    /// A send on the owner's thread panicked inside the IO state: the IO
    /// thread ends the endpoint (ERR_INTERNAL) at its next turn.
    inline_panicked: AtomicBool,
    next_conn_id: AtomicU32,
    closed: AtomicBool,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            policy: Arc::new(RwLock::new(AdmissionPolicy::default())),
            listening: AtomicBool::new(false),
            tls_counters: Arc::new(ServerTlsCounters::default()),
            stats: Stats::default(),
            flow: Flow::default(),
            registry: Mutex::new(HashMap::new()),
            waker: Mutex::new(None),
            wake_pending: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            inline_panicked: AtomicBool::new(false),
            next_conn_id: AtomicU32::new(1),
            closed: AtomicBool::new(false),
        }
    }
}

/// Frames accepted and not yet flushed, in order, and their bytes.
#[derive(Default)]
struct Outbox {
    frames: Vec<(u32, Vec<u8>)>,
    bytes: usize,
}

/// The owner's side of an endpoint.
pub struct EndpointHandle {
    shared: Arc<Shared>,
    /// The IO state, locked by the IO thread for each loop turn and by
    /// `send` when it can put a frame on the wire itself. The IO thread holds
    /// the only strong reference: its exit drops the state (closing the
    /// socket at once, so the port can be bound again).
    core: std::sync::Weak<Mutex<io::Io>>,
    /// Frames accepted by `send_deferred` and not flushed yet, in order.
    outbox: Mutex<Outbox>,
    tx: mpsc::Sender<Command>,
    local: SocketAddr,
    max_frame_payload: usize,
    max_send_buffer: usize,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl EndpointHandle {
    /// Binds the socket and starts the IO thread.
    pub fn spawn(config: EndpointConfig, sink: impl EventSink) -> Result<Self, DriverError> {
        Self::spawn_with(config, |_| sink)
    }

    /// Like [`spawn`](Self::spawn), for sinks that return flow credit themselves:
    /// `make_sink` receives the [`Releaser`] the sink must call once the owner
    /// has processed a batch (see [`batch_cost`]).
    pub fn spawn_with<S: EventSink>(
        config: EndpointConfig,
        make_sink: impl FnOnce(Releaser) -> S,
    ) -> Result<Self, DriverError> {
        framing::validate_max_payload(config.max_frame_payload)
            .map_err(DriverError::InvalidArgument)?;
        if config.max_connections == 0 {
            return Err(DriverError::InvalidArgument(
                "maxConnections must be at least 1".into(),
            ));
        }
        if config.max_half_open == 0 || config.max_pairing_connections == 0 {
            return Err(DriverError::InvalidArgument(
                "maxHalfOpen and maxPairingConnections must be at least 1".into(),
            ));
        }
        if config.frame_timeout.is_zero() || config.pairing_deadline.is_zero() {
            return Err(DriverError::InvalidArgument(
                "frameTimeoutMs and pairingDeadlineMs must be positive".into(),
            ));
        }
        let shared = Arc::new(Shared::new());
        let (tx, rx) = mpsc::channel();
        let (io, poll, waker, local) = io::Io::new(config.clone(), shared.clone(), rx)?;
        let thread_core = Arc::new(Mutex::new(io));
        let core = Arc::downgrade(&thread_core);
        *lock(&shared.waker) = Some(waker);
        let sink = make_sink(Releaser {
            shared: shared.clone(),
        });
        let thread = std::thread::Builder::new()
            .name(format!("cribcall-io {local}"))
            .spawn(move || io::run(thread_core, poll, sink))
            .map_err(|e| DriverError::Bind(format!("cannot start the IO thread: {e}")))?;
        Ok(EndpointHandle {
            shared,
            core,
            outbox: Mutex::new(Outbox::default()),
            tx,
            local,
            max_frame_payload: config.max_frame_payload,
            max_send_buffer: config.max_send_buffer,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The bound socket address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn wake(&self) {
        if !self.shared.wake_pending.swap(true, Ordering::AcqRel) {
            self.shared.wake_now();
        }
    }

    fn command(&self, cmd: Command) -> Result<(), DriverError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(DriverError::Closed);
        }
        // Frames accepted before this command go first.
        self.queue_outbox();
        self.tx.send(cmd).map_err(|_| DriverError::Closed)?;
        self.wake();
        Ok(())
    }

    /// Starts accepting connections with the given admission policy.
    pub fn listen(&self, accept_unknown: bool) {
        self.set_accept_unknown(accept_unknown);
        self.shared.listening.store(true, Ordering::Release);
    }

    /// Stops accepting new connections (existing ones stay).
    pub fn stop_listening(&self) {
        self.shared.listening.store(false, Ordering::Release);
    }

    /// Pairing open (true) or known fingerprints only (false). Takes effect for
    /// every handshake that has not yet judged the client's certificate.
    pub fn set_accept_unknown(&self, accept_unknown: bool) {
        match self.shared.policy.write() {
            Ok(mut p) => p.accept_unknown = accept_unknown,
            Err(poisoned) => poisoned.into_inner().accept_unknown = accept_unknown,
        }
    }

    /// Replaces the set of known client fingerprints.
    pub fn set_known_peers<S: AsRef<str>>(&self, fingerprints: &[S]) -> Result<(), DriverError> {
        let mut set = std::collections::HashSet::with_capacity(fingerprints.len());
        for f in fingerprints {
            set.insert(parse_fingerprint(f.as_ref())?);
        }
        match self.shared.policy.write() {
            Ok(mut p) => p.known = set,
            Err(poisoned) => poisoned.into_inner().known = set,
        }
        Ok(())
    }

    /// Starts a client connection pinned to `server_fingerprint`. Returns its id;
    /// the outcome arrives as [`Event::Connected`] or [`Event::ConnectFailed`].
    pub fn connect(&self, addr: SocketAddr, server_fingerprint: &str) -> Result<u32, DriverError> {
        let fingerprint = parse_fingerprint(server_fingerprint)?;
        if addr.is_ipv4() != self.local.is_ipv4() {
            return Err(DriverError::InvalidArgument(format!(
                "cannot reach {addr} from an endpoint bound to {} (address family differs)",
                self.local
            )));
        }
        if addr.port() == 0 || addr.ip().is_unspecified() {
            return Err(DriverError::InvalidArgument(format!(
                "cannot connect to {addr}"
            )));
        }
        let conn_id = self.shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
        self.register(conn_id);
        if let Err(e) = self.command(Command::Connect {
            conn_id,
            addr,
            fingerprint,
        }) {
            self.unregister(conn_id);
            return Err(e);
        }
        Ok(conn_id)
    }

    fn register(&self, conn_id: u32) {
        lock(&self.shared.registry).insert(conn_id, ConnShared::new());
    }

    fn unregister(&self, conn_id: u32) {
        lock(&self.shared.registry).remove(&conn_id);
    }

    fn reserve(&self, conn_id: u32, len: usize) -> Result<(), DriverError> {
        let conn = lock(&self.shared.registry)
            .get(&conn_id)
            .cloned()
            .ok_or(DriverError::NotConnected(conn_id))?;
        // Only the owner's thread adds to `queued` (the IO thread subtracts),
        // so the check and the add cannot race with another add.
        let queued = conn.queued.load(Ordering::Acquire);
        if queued + len > self.max_send_buffer {
            conn.need_drain.store(true, Ordering::Release);
            return Err(DriverError::SendBufferFull {
                queued,
                max: self.max_send_buffer,
            });
        }
        let now = conn.queued.fetch_add(len, Ordering::AcqRel) + len;
        if now > self.max_send_buffer / limits::DRAIN_FRACTION {
            conn.need_drain.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Gives back a reservation whose command could not be queued.
    fn unreserve(&self, conn_id: u32, len: usize) {
        if let Some(conn) = lock(&self.shared.registry).get(&conn_id) {
            let _ = conn
                .queued
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                    Some(q.saturating_sub(len))
                });
        }
    }

    /// Sends one frame at once (`send_deferred` + `flush`). Returns the bytes
    /// now queued natively for the connection. A refused frame is not copied.
    pub fn send(&self, conn_id: u32, payload: &[u8]) -> Result<usize, DriverError> {
        let queued = self.send_deferred(conn_id, payload)?;
        self.flush();
        Ok(queued)
    }

    /// Accepts one frame into the outbox without waking anyone; it goes out at
    /// the next [`flush`](Self::flush) (or before any other command, so the
    /// order of everything the owner asked for is kept). An owner that sends
    /// several frames in one go (a JavaScript tick) flushes once after them,
    /// so they share packets. Returns the bytes now queued natively for the
    /// connection; a refused frame is not copied.
    pub fn send_deferred(&self, conn_id: u32, payload: &[u8]) -> Result<usize, DriverError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(DriverError::Closed);
        }
        let header = framing::frame_header(payload.len(), self.max_frame_payload)
            .map_err(DriverError::Frame)?;
        let len = framing::HEADER_LEN + payload.len();
        self.reserve(conn_id, len)?;
        let frame = framing::encode_frame_with_header(&header, payload);
        let pending = {
            let mut outbox = lock(&self.outbox);
            outbox.bytes += frame.len();
            outbox.frames.push((conn_id, frame));
            outbox.bytes
        };
        if pending > limits::INLINE_SEND_MAX_BYTES {
            // Bulk: the IO thread starts on it now, while the owner produces more.
            self.flush();
        }
        Ok(self.queued(conn_id))
    }

    /// Sends what the outbox holds. When the IO thread is not busy (its lock
    /// is free) and no command of ours waits for it, the frames go onto the
    /// wire from the calling thread: one thread hand-off and one wake-up less
    /// on the way out. Otherwise they are queued for the IO thread.
    pub fn flush(&self) {
        let outbox = std::mem::take(&mut *lock(&self.outbox));
        if outbox.frames.is_empty() {
            return;
        }
        if let Some(frames) = self.flush_inline(outbox) {
            self.queue_frames(frames);
            self.wake();
        }
    }

    /// The inline part of `flush`; gives the frames back when they must be queued.
    fn flush_inline(&self, outbox: Outbox) -> Option<Vec<(u32, Vec<u8>)>> {
        let Outbox { frames, bytes } = outbox;
        // Bulk goes to the IO thread, which sends it while the owner produces
        // more; the owner's thread only takes what is quick to send.
        if bytes > limits::INLINE_SEND_MAX_BYTES
            || self.shared.wake_pending.load(Ordering::Acquire)
            || self.shared.closed.load(Ordering::Acquire)
        {
            return Some(frames);
        }
        let Some(core) = self.core.upgrade() else {
            return Some(frames);
        };
        let Ok(mut io) = core.try_lock() else {
            return Some(frames);
        };
        match catch_unwind(AssertUnwindSafe(|| io.send_inline(frames))) {
            Ok(wake) => {
                drop(io);
                self.shared
                    .stats
                    .inline_flushes
                    .fetch_add(1, Ordering::Relaxed);
                if wake {
                    self.wake();
                }
            }
            Err(_) => {
                // The IO state may be half-updated: the endpoint ends.
                self.shared.inline_panicked.store(true, Ordering::Release);
                drop(io);
                self.shared.wake_now();
            }
        }
        None
    }

    /// Queues bytes on the control stream exactly as given, without framing
    /// or limits: for conformance tests that must produce hostile input.
    #[doc(hidden)]
    pub fn send_raw(&self, conn_id: u32, bytes: &[u8]) -> Result<usize, DriverError> {
        if bytes.is_empty() {
            return Err(DriverError::InvalidArgument("nothing to send".into()));
        }
        self.reserve(conn_id, bytes.len())?;
        self.command(Command::Send {
            conn_id,
            frame: bytes.to_vec(),
        })?;
        Ok(self.queued(conn_id))
    }

    /// Bytes queued natively for a connection (0 if unknown).
    pub fn queued(&self, conn_id: u32) -> usize {
        lock(&self.shared.registry)
            .get(&conn_id)
            .map(|c| c.queued.load(Ordering::Acquire))
            .unwrap_or(0)
    }

    /// Queues one frame, serialized once, on each connection. Connections that
    /// are not open or whose buffer is full are skipped. Returns how many got it.
    pub fn broadcast(&self, conn_ids: &[u32], payload: &[u8]) -> Result<usize, DriverError> {
        let header = framing::frame_header(payload.len(), self.max_frame_payload)
            .map_err(DriverError::Frame)?;
        let frame: Arc<[u8]> = framing::encode_frame_with_header(&header, payload).into();
        let accepted: Vec<u32> = conn_ids
            .iter()
            .copied()
            .filter(|id| self.reserve(*id, frame.len()).is_ok())
            .collect();
        let n = accepted.len();
        if n > 0 {
            self.command(Command::Broadcast {
                conn_ids: accepted,
                frame,
            })?;
        }
        Ok(n)
    }

    /// Closes a connection with an application error code and reason.
    pub fn close_connection(
        &self,
        conn_id: u32,
        code: u64,
        reason: &str,
    ) -> Result<(), DriverError> {
        if reason.len() > 1024 {
            return Err(DriverError::InvalidArgument(
                "reason is limited to 1024 bytes".into(),
            ));
        }
        self.command(Command::Close {
            conn_id,
            code,
            reason: reason.to_owned(),
        })
    }

    /// Counters.
    pub fn stats(&self) -> StatsSnapshot {
        let s = &self.shared.stats;
        StatsSnapshot {
            connections: s.connections.load(Ordering::Relaxed),
            stateless_resets_sent: s.stateless_resets_sent.load(Ordering::Relaxed),
            stateless_resets_received: s.stateless_resets_received.load(Ordering::Relaxed),
            handshakes_started: s.handshakes_started.load(Ordering::Relaxed),
            handshakes_refused: s.handshakes_refused.load(Ordering::Relaxed),
            handshakes_retried: s.handshakes_retried.load(Ordering::Relaxed),
            invalid_tokens: s.invalid_tokens.load(Ordering::Relaxed),
            half_open: s.half_open.load(Ordering::Relaxed),
            closed_by_deadline: s.closed_by_deadline.load(Ordering::Relaxed),
            unsolicited_replies: s.unsolicited_replies.load(Ordering::Relaxed),
            handshakes_rejected: s.handshakes_rejected.load(Ordering::Relaxed)
                + self.shared.tls_counters.rejected.load(Ordering::Relaxed),
            stream_bytes_received: s.stream_bytes_received.load(Ordering::Relaxed),
            stream_bytes_sent: s.stream_bytes_sent.load(Ordering::Relaxed),
            frames_received: s.frames_received.load(Ordering::Relaxed),
            frames_sent: s.frames_sent.load(Ordering::Relaxed),
            packets_received: s.packets_received.load(Ordering::Relaxed),
            packets_sent: s.packets_sent.load(Ordering::Relaxed),
            send_calls: s.send_calls.load(Ordering::Relaxed),
            recv_calls: s.recv_calls.load(Ordering::Relaxed),
            inline_flushes: s.inline_flushes.load(Ordering::Relaxed),
        }
    }

    /// The owner processed `events` events carrying `bytes` payload bytes.
    pub fn release(&self, events: usize, bytes: usize) {
        self.releaser().release(events, bytes);
    }

    /// A cloneable releaser for the owner's event-processing side.
    pub fn releaser(&self) -> Releaser {
        Releaser {
            shared: self.shared.clone(),
        }
    }

    /// Moves the outbox onto the command queue (without waking).
    fn queue_outbox(&self) {
        let frames = std::mem::take(&mut *lock(&self.outbox)).frames;
        self.queue_frames(frames);
    }

    /// Queues frames for the IO thread in order (without waking it); a frame
    /// the queue no longer takes (the thread is gone) gives its room back.
    fn queue_frames(&self, frames: Vec<(u32, Vec<u8>)>) {
        for (conn_id, frame) in frames {
            let len = frame.len();
            if self.tx.send(Command::Send { conn_id, frame }).is_err() {
                self.unreserve(conn_id, len);
            }
        }
    }

    /// Asks the thread to close every connection and exit. Idempotent.
    pub fn shutdown(&self) {
        if !self.shared.closed.swap(true, Ordering::AcqRel) {
            self.queue_outbox();
            let _ = self.tx.send(Command::Shutdown);
            self.shared.wake_now();
        }
    }

    /// Waits for the IO thread to exit (call [`shutdown`](Self::shutdown) first).
    /// Once it returns, every file descriptor of the endpoint is closed: the
    /// thread dropped the socket and the poller, and the waker is dropped here.
    pub fn join(&self) {
        let handle = lock(&self.thread).take();
        if let Some(h) = handle {
            let _ = h.join();
            lock(&self.shared.waker).take();
        }
    }

    /// Test hook: makes the IO thread panic, to prove panics are contained.
    pub fn inject_panic(&self) -> Result<(), DriverError> {
        self.command(Command::Panic)
    }
}

impl Drop for EndpointHandle {
    fn drop(&mut self) {
        self.shutdown();
        self.join();
    }
}

/// Lets the owner's event-processing thread return flow credit.
#[derive(Clone)]
pub struct Releaser {
    shared: Arc<Shared>,
}

impl Releaser {
    pub fn release(&self, events: usize, bytes: usize) {
        let flow = &self.shared.flow;
        Flow::saturating_sub(&flow.events, events);
        Flow::saturating_sub(&flow.bytes, bytes);
        if self.shared.paused.load(Ordering::Acquire)
            && !flow.congested()
            && !self.shared.wake_pending.swap(true, Ordering::AcqRel)
        {
            self.shared.wake_now();
        }
    }
}

impl Shared {
    /// Whether a client certificate fingerprint is among the known peers now.
    pub(crate) fn is_known(&self, fp: &[u8; 32]) -> bool {
        match self.policy.read() {
            Ok(p) => p.known.contains(fp),
            Err(p) => p.into_inner().known.contains(fp),
        }
    }

    /// Wakes the IO thread. After `join` the waker is gone and this does
    /// nothing (the thread is gone too).
    fn wake_now(&self) {
        if let Some(w) = lock(&self.waker).as_ref() {
            // A failed wake means the thread is gone; commands then fail on send.
            let _ = w.wake();
        }
    }
}

/// Locks a mutex, recovering the data of a poisoned one (no lock here guards an
/// invariant a panic could break half-way).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Batch size accounting used by sinks.
pub fn batch_cost(batch: &[Event]) -> (usize, usize) {
    (batch.len(), batch.iter().map(Event::payload_len).sum())
}
