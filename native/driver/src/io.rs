//! The IO thread: one UDP socket, quiche connections, timers, commands.

use crate::conn::{Chunk, Conn, ConnInit, OutChunk, CONNECTION_REFUSED, CONTROL_STREAM};
use crate::ratelimit::TokenBucket;
use crate::retry::{RetryTokens, TokenError};
use crate::sched::Schedule;
use crate::udp::{self, Offload};
use crate::{
    batch_cost, lock, CloseInfo, Command, ConnShared, ConnectFailure, DriverError, EndpointConfig,
    Event, EventSink, Shared,
};
use cribcall_core::codes;
use cribcall_core::identity::fingerprint_hex;
use cribcall_core::limits;
use cribcall_core::reset::{self as sreset, ResetKey};
use cribcall_core::tls::{self, LocalCredentials, PinRecord};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// How long a close waits for the frames queued before it.
const CLOSE_FLUSH_DEADLINE: Duration = Duration::from_secs(2);

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);

/// Bytes read from one connection per loop turn, so a fast peer cannot
/// starve the others and a congested owner is noticed within one turn.
const READ_BUDGET_PER_TURN: usize = 256 * 1024;

pub struct Io {
    poll: Poll,
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
    /// Endpoint-wide budget of Retry packets.
    retry_budget: TokenBucket,
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
        if debug_enabled() {
            eprintln!("[cribcall-quic] {}", format!($($arg)*));
        }
    };
}

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
    ) -> Result<(Io, Waker, SocketAddr), DriverError> {
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
        let keylog = std::env::var_os("SSLKEYLOGFILE").map(std::path::PathBuf::from);
        let qlog_dir = std::env::var_os("QLOGDIR").map(std::path::PathBuf::from);
        debug_log!("endpoint bound to {local}");
        Ok((
            Io {
                poll,
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
                retry_budget: TokenBucket::new(limits::RETRIES_PER_SEC),
                retry_tokens,
                half_open: 0,
                half_open_order: VecDeque::new(),
                pairing_only: 0,
                sched: Schedule::default(),
                starved: HashSet::new(),
                blocked_ids: Vec::new(),
            },
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
            if let Ok(f) = std::fs::File::create(&file) {
                q.set_qlog(
                    Box::new(std::io::BufWriter::new(f)),
                    format!("cribcall-quic {role}"),
                    format!("cribcall-quic {role} {}", q.trace_id()),
                );
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

    /// The loop. Returns when shut down. Each turn looks only at the
    /// connections a datagram, a command or a deadline touched.
    fn run_loop(&mut self, sink: &mut dyn EventSink) {
        let mut events = Events::with_capacity(256);
        loop {
            let timeout = self.next_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != ErrorKind::Interrupted {
                    self.events.push(Event::Error {
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
                        self.flush_blocked();
                    }
                }
            }
            if self.blocked.is_empty() {
                for id in std::mem::take(&mut self.blocked_ids) {
                    self.sched.mark(id);
                }
            }
            if socket_ready {
                self.read_socket();
            }
            self.drain_commands();
            self.fire_timers();
            let ids = self.process_conns();
            self.flush(&ids);
            self.reap(&ids);
            self.reschedule(&ids);
            self.deliver(sink);
            if self.shutting_down {
                break;
            }
        }
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

    fn read_socket(&mut self) {
        loop {
            let buf = if self.offload.gro {
                &mut self.gro_buf
            } else {
                &mut self.recv_buf
            };
            let (len, from, segment) = match udp::recv(&self.socket, &self.offload, buf) {
                Ok(v) => v,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // ICMP errors surface here on some platforms; they are not fatal.
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    self.events.push(Event::Error {
                        code: "ERR_SOCKET",
                        message: format!("recv failed: {e}"),
                    });
                    break;
                }
            };
            self.shared.stats.recv_calls.fetch_add(1, Ordering::Relaxed);
            if !self.offload.gro {
                self.count_received(1);
                self.handle_datagram(len, from);
                continue;
            }
            // A GRO batch: datagrams of `segment` bytes (the last may be shorter).
            let mut at = 0;
            while at < len {
                let end = (at + segment.max(1)).min(len);
                let n = end - at;
                self.recv_buf[..n].copy_from_slice(&self.gro_buf[at..end]);
                self.count_received(1);
                self.handle_datagram(n, from);
                at = end;
            }
        }
    }

    fn count_received(&self, n: u64) {
        self.shared
            .stats
            .packets_received
            .fetch_add(n, Ordering::Relaxed);
    }

    fn handle_datagram(&mut self, len: usize, from: SocketAddr) {
        let hdr = match quiche::Header::from_slice(&mut self.recv_buf[..len], limits::CONN_ID_LEN) {
            Ok(h) => h,
            Err(_) => return, // not QUIC: drop
        };
        let conn_id = match self.cid_map.get(&hdr.dcid) {
            Some(id) => *id,
            None if hdr.ty == quiche::Type::Short => {
                self.unknown_short_packet(&hdr.dcid.clone().into_owned(), from, len);
                return;
            }
            None => match self.accept(&hdr, from, len) {
                Some(id) => id,
                None => return,
            },
        };
        self.recv_on(conn_id, from, len);
    }

    /// Feeds the datagram in `recv_buf` to one connection.
    fn recv_on(&mut self, conn_id: u32, from: SocketAddr, len: usize) {
        let local = self.local;
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        let info = quiche::RecvInfo { from, to: local };
        let before = conn.q.stats().recv;
        // quiche closes the connection itself on fatal errors; a single
        // undecryptable or duplicate packet is simply dropped.
        let _ = conn.q.recv(&mut self.recv_buf[..len], info);
        if conn.q.stats().recv > before {
            conn.last_recv = Instant::now();
        }
        conn.note_reset_after_recv();
        self.sched.mark(conn_id);
    }

    /// A short-header packet for a connection ID we do not know. It may be a
    /// stateless reset from the server of one of our client connections
    /// (RFC 9000 §10.3.1: its "connection ID" is random): each client
    /// connection to that address checks it against the server's token. Else,
    /// if we serve, the sender may be a client of a connection we lost (we
    /// restarted): we answer with a stateless reset so it learns at once.
    fn unknown_short_packet(
        &mut self,
        dcid: &quiche::ConnectionId<'static>,
        from: SocketAddr,
        len: usize,
    ) {
        let clients: Vec<u32> = self
            .conns
            .values()
            .filter(|c| !c.is_server && c.remote == from)
            .map(|c| c.id)
            .collect();
        if !clients.is_empty() {
            for id in clients {
                // recv decrypts in place: give each candidate the original bytes.
                let datagram = self.recv_buf[..len].to_vec();
                self.recv_on(id, from, len);
                self.recv_buf[..len].copy_from_slice(&datagram);
            }
            return;
        }
        if self.shutting_down || !self.shared.listening.load(Ordering::Acquire) {
            return;
        }
        let Some(n) = sreset::reset_len(len) else {
            return;
        };
        if !self.unsolicited_budget.allow(Instant::now()) {
            return;
        }
        let mut random = [0u8; sreset::PREFERRED_RESET_LEN];
        if self.rng.fill(&mut random).is_err() {
            return;
        }
        let mut pkt = [0u8; sreset::PREFERRED_RESET_LEN];
        if sreset::write_reset(&mut pkt[..n], &random, self.reset_key.token(dcid)) {
            debug_log!("stateless reset to {from} ({n} bytes)");
            self.shared
                .stats
                .stateless_resets_sent
                .fetch_add(1, Ordering::Relaxed);
            self.count_unsolicited();
            self.send_datagram(&pkt[..n], from);
        }
    }

    /// A datagram for no known connection: maybe a new client. In order:
    /// version (negotiation only for full-size datagrams, rate-limited), size,
    /// address validation (Retry above the half-open threshold; a token that
    /// is ours but invalid drops the datagram), capacity (a full endpoint
    /// refuses with CONNECTION_REFUSED; a full half-open table gives up its
    /// oldest handshake).
    fn accept(&mut self, hdr: &quiche::Header<'_>, from: SocketAddr, len: usize) -> Option<u32> {
        if hdr.ty != quiche::Type::Initial
            || self.shutting_down
            || !self.shared.listening.load(Ordering::Acquire)
        {
            return None;
        }
        // RFC 9000 §14.1: a client Initial is at least 1200 bytes, and
        // §5.2.2: a server drops smaller datagrams, VN included.
        if len < 1200 {
            return None;
        }
        let now = Instant::now();
        if !quiche::version_is_supported(hdr.version) {
            if self.unsolicited_budget.allow(now) {
                if let Ok(n) = quiche::negotiate_version(&hdr.scid, &hdr.dcid, &mut self.send_buf) {
                    let pkt = self.send_buf[..n].to_vec();
                    self.count_unsolicited();
                    self.send_datagram(&pkt, from);
                }
            }
            return None;
        }
        let odcid = match hdr.token.as_deref().filter(|t| !t.is_empty()) {
            None => None,
            Some(token) => match self.retry_tokens.validate(token, &from, now) {
                Ok(odcid) => Some(quiche::ConnectionId::from_vec(odcid)),
                Err(TokenError::Foreign) => None,
                Err(e) => {
                    debug_log!("Initial from {from} dropped: retry token {e:?}");
                    self.shared
                        .stats
                        .invalid_tokens
                        .fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            },
        };
        if odcid.is_none() && self.retry_wanted() {
            self.send_retry(hdr, from, now);
            return None;
        }
        if self.conns.len() >= self.config.max_connections {
            self.refuse(from, len, now);
            return None;
        }
        if self.half_open >= self.config.max_half_open {
            self.evict_oldest_half_open();
        }
        // After a Retry the client addresses us with the connection ID we
        // chose in it; else we choose one now.
        let scid = match &odcid {
            Some(_) => hdr.dcid.clone().into_owned(),
            None => self.new_cid().ok()?,
        };
        self.server_config
            .set_stateless_reset_token(Some(self.reset_key.token(&scid)));
        let mut q = quiche::accept(
            &scid,
            odcid.as_ref(),
            self.local,
            from,
            &mut self.server_config,
        )
        .ok()?;
        self.attach_keylog(&mut q, true);
        let conn_id = self.shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
        debug_log!(
            "conn {conn_id}: incoming handshake from {from}{}",
            if odcid.is_some() {
                " (address validated by Retry)"
            } else {
                ""
            }
        );
        let mut cids = vec![scid.clone()];
        self.cid_map.insert(scid, conn_id);
        if odcid.is_none() {
            let first_dcid = hdr.dcid.clone().into_owned();
            self.cid_map.insert(first_dcid.clone(), conn_id);
            cids.push(first_dcid);
        }
        let conn = Conn::new(ConnInit {
            id: conn_id,
            q,
            is_server: true,
            now,
            handshake_timeout: self.config.handshake_timeout,
            max_frame_payload: self.config.max_frame_payload,
            pin_record: None,
            cids,
            shared: self.conn_shared(conn_id),
            remote: from,
        });
        self.conns.insert(conn_id, conn);
        self.sched.mark(conn_id);
        self.half_open += 1;
        self.half_open_order.push_back(conn_id);
        self.publish_half_open();
        self.shared
            .stats
            .handshakes_started
            .fetch_add(1, Ordering::Relaxed);
        Some(conn_id)
    }

    fn retry_wanted(&self) -> bool {
        self.config
            .retry_threshold
            .is_some_and(|t| self.half_open >= t)
    }

    fn count_unsolicited(&self) {
        self.shared
            .stats
            .unsolicited_replies
            .fetch_add(1, Ordering::Relaxed);
    }

    fn publish_half_open(&self) {
        self.shared
            .stats
            .half_open
            .store(self.half_open, Ordering::Relaxed);
    }

    /// Answers an Initial with a Retry carrying a token for this address.
    fn send_retry(&mut self, hdr: &quiche::Header<'_>, from: SocketAddr, now: Instant) {
        if !self.retry_budget.allow(now) {
            return;
        }
        let Ok(new_scid) = self.new_cid() else {
            return;
        };
        let token = self.retry_tokens.mint(&from, &hdr.dcid, now);
        if let Ok(n) = quiche::retry(
            &hdr.scid,
            &hdr.dcid,
            &new_scid,
            &token,
            hdr.version,
            &mut self.send_buf,
        ) {
            let pkt = self.send_buf[..n].to_vec();
            self.shared
                .stats
                .handshakes_retried
                .fetch_add(1, Ordering::Relaxed);
            self.count_unsolicited();
            self.send_datagram(&pkt, from);
        }
    }

    /// A full endpoint answers a new client at once with CONNECTION_CLOSE
    /// (CONNECTION_REFUSED), so it does not wait for its handshake timeout.
    /// Rate-limited like every unsolicited reply; nothing is kept.
    fn refuse(&mut self, from: SocketAddr, len: usize, now: Instant) {
        self.shared
            .stats
            .handshakes_refused
            .fetch_add(1, Ordering::Relaxed);
        if !self.unsolicited_budget.allow(now) {
            return;
        }
        let Ok(scid) = self.new_cid() else {
            return;
        };
        let Ok(mut q) = quiche::accept(&scid, None, self.local, from, &mut self.server_config)
        else {
            return;
        };
        let info = quiche::RecvInfo {
            from,
            to: self.local,
        };
        if let Err(e) = q.recv(&mut self.recv_buf[..len], info) {
            debug_log!("refusing {from}: {e}");
        }
        debug_log!("refused {from}: maxConnections reached");
        self.count_unsolicited();
        let mut out = vec![0u8; limits::MAX_SEND_UDP_PAYLOAD];
        // quiche closes a handshake in progress only once its first flight
        // is out (closing earlier fails to seal): send the flight, then the
        // close, within the anti-amplification limit.
        for closing in [false, true] {
            if closing {
                let _ = q.close(false, CONNECTION_REFUSED, b"too many connections");
            }
            while let Ok((n, to)) = q.send(&mut out).map(|(n, i)| (n, i.to)) {
                self.send_datagram(&out[..n], to);
            }
        }
    }

    /// Gives up the oldest handshake still in progress (without a word: it
    /// was never admitted), to make room for a new one.
    fn evict_oldest_half_open(&mut self) {
        while let Some(id) = self.half_open_order.pop_front() {
            if self.conns.get(&id).is_some_and(|c| c.half_open) {
                self.forget(id);
                self.shared
                    .stats
                    .handshakes_refused
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }

    fn connect(&mut self, conn_id: u32, addr: SocketAddr, fingerprint: [u8; 32]) {
        let fail = |io: &mut Io, message: String| {
            io.unregister(conn_id);
            io.events.push(Event::ConnectFailed {
                conn_id,
                failure: ConnectFailure {
                    code: "ERR_HANDSHAKE_FAILED",
                    message,
                    expected: None,
                    actual: None,
                },
            });
        };
        if self.shutting_down {
            self.unregister(conn_id);
            self.events.push(Event::ConnectFailed {
                conn_id,
                failure: ConnectFailure {
                    code: "ERR_ENDPOINT_CLOSED",
                    message: "the endpoint is closing".into(),
                    expected: None,
                    actual: None,
                },
            });
            return;
        }
        if self.conns.len() >= self.config.max_connections {
            return fail(
                self,
                format!(
                    "too many connections (maxConnections = {})",
                    self.config.max_connections
                ),
            );
        }
        let record: PinRecord = Arc::default();
        let builder = match tls::client_context(self.credentials(), fingerprint, record.clone()) {
            Ok(b) => b,
            Err(e) => return fail(self, e.to_string()),
        };
        let mut cfg = match base_quiche_config(builder, &self.config, false) {
            Ok(c) => c,
            Err(e) => return fail(self, e.to_string()),
        };
        let scid = match self.new_cid() {
            Ok(c) => c,
            Err(e) => return fail(self, e.to_string()),
        };
        // No SNI: the pin, not a name, identifies the monitor.
        let mut q = match quiche::connect(None, &scid, self.local, addr, &mut cfg) {
            Ok(q) => q,
            Err(e) => return fail(self, format!("quiche connect: {e}")),
        };
        self.attach_keylog(&mut q, false);
        debug_log!("conn {conn_id}: connecting to {addr}");
        self.cid_map.insert(scid.clone(), conn_id);
        let conn = Conn::new(ConnInit {
            id: conn_id,
            q,
            is_server: false,
            now: Instant::now(),
            handshake_timeout: self.config.handshake_timeout,
            max_frame_payload: self.config.max_frame_payload,
            pin_record: Some(record),
            cids: vec![scid],
            shared: self.conn_shared(conn_id),
            remote: addr,
        });
        self.conns.insert(conn_id, conn);
        self.sched.mark(conn_id);
    }

    fn drain_commands(&mut self) {
        self.shared.wake_pending.store(false, Ordering::Release);
        loop {
            let cmd = match self.rx.try_recv() {
                Ok(c) => c,
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    // The handle is gone: nobody can close us any more.
                    self.begin_shutdown();
                    break;
                }
            };
            match cmd {
                Command::Connect {
                    conn_id,
                    addr,
                    fingerprint,
                } => self.connect(conn_id, addr, fingerprint),
                Command::Send { conn_id, frame } => {
                    self.enqueue(conn_id, Chunk::Owned(frame));
                }
                Command::Broadcast { conn_ids, frame } => {
                    for id in conn_ids {
                        self.enqueue(id, Chunk::Shared(frame.clone()));
                    }
                }
                Command::Close {
                    conn_id,
                    code,
                    reason,
                } => {
                    self.sched.mark(conn_id);
                    if let Some(c) = self.conns.get_mut(&conn_id) {
                        if c.outq.is_empty() || !c.reported {
                            c.app_close(code, &reason, None);
                        } else if c.pending_close.is_none() {
                            // Let the frames queued before this close go first.
                            c.pending_close =
                                Some((code, reason, Instant::now() + CLOSE_FLUSH_DEADLINE));
                        }
                    }
                }
                Command::Shutdown => self.begin_shutdown(),
                Command::Panic => panic!("panic injected by a test"),
            }
        }
    }

    fn enqueue(&mut self, conn_id: u32, chunk: Chunk) {
        match self.conns.get_mut(&conn_id) {
            Some(c) if c.local_close.is_none() && c.pending_close.is_none() && !c.q.is_closed() => {
                c.outq.push_back(OutChunk { chunk, offset: 0 });
                self.sched.mark(conn_id);
            }
            Some(c) => {
                let n = chunk.bytes().len();
                let _ = c
                    .shared
                    .queued
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                        Some(q.saturating_sub(n))
                    });
            }
            None => {}
        }
    }

    fn begin_shutdown(&mut self) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        self.shared.listening.store(false, Ordering::Release);
        for c in self.conns.values_mut() {
            c.app_close(codes::OK, "endpoint closed", None);
            self.sched.mark(c.id);
        }
    }

    /// A connection's deadline came: quiche's timers, the handshake deadline,
    /// a pending close, the pairing deadline, the frame timeout, keep-alive.
    fn handle_timeout(&mut self, id: u32, now: Instant) {
        let congested = self.shared.paused.load(Ordering::Acquire);
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.q.timeout_instant().is_some_and(|t| t <= now) {
            c.q.on_timeout();
        }
        if !c.reported && now >= c.handshake_deadline && !c.q.is_closed() {
            if c.is_server && c.local_close.is_none() {
                // Nothing is owed to an unvalidated peer that did not finish:
                // forget it without sending (no amplification).
                self.forget(id);
                return;
            }
            let reason = format!(
                "handshake did not complete within {} ms",
                self.config.handshake_timeout.as_millis()
            );
            c.local_close = Some((0, reason, Some("ERR_HANDSHAKE_TIMEOUT")));
            let _ = c.q.close(false, 0x0, b"handshake timeout");
        }
        if let Some((code, reason, deadline)) = c.pending_close.clone() {
            if now >= deadline {
                c.app_close(code, &reason, None);
            }
        }
        deadlines(c, &self.shared, &self.config, now, congested);
        if c.keep_alive_due(self.config.keep_alive)
            .is_some_and(|t| now >= t)
        {
            let _ = c.q.send_ack_eliciting();
            // Counts as sent even if congestion control holds the PING
            // back: the next one is due an interval later, never at once.
            c.last_send = now;
        }
    }

    /// Drops a server connection that was never reported, without a word.
    fn forget(&mut self, id: u32) {
        let Some(c) = self.conns.remove(&id) else {
            return;
        };
        self.sched.remove(id);
        self.starved.remove(&id);
        for cid in &c.cids {
            self.cid_map.remove(cid);
        }
        if c.half_open {
            self.half_open -= 1;
            self.publish_half_open();
        }
        self.unregister(id);
        debug_log!("conn {id}: handshake from {} abandoned", c.remote);
    }

    /// Looks at this turn's connections; returns them.
    fn process_conns(&mut self) -> Vec<u32> {
        let congested = self.shared.flow.congested();
        self.shared.paused.store(congested, Ordering::Release);
        if !congested {
            // The owner caught up: read what was left unread.
            for id in std::mem::take(&mut self.starved) {
                self.sched.mark(id);
            }
        }
        self.more_to_read = false;
        let ids = self.sched.take_dirty();
        for &id in &ids {
            self.process_conn(id, congested);
        }
        ids
    }

    fn process_conn(&mut self, id: u32, congested: bool) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.done {
            return;
        }
        let finishing = c.q.is_closed() || c.q.is_draining();
        if !c.reported && c.local_close.is_none() && !finishing && c.ready() {
            self.report_ready(id);
        }
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        while let Some(ev) = c.q.path_event_next() {
            debug_log!("conn {id}: path event {ev:?}");
        }
        if !c.reported || c.local_close.is_some() {
            return;
        }
        // RFC 9000 allows STOP_SENDING on any stream; on the one control
        // stream it leaves a connection that can never carry a frame again.
        if c.stream_open {
            if let Err(quiche::Error::StreamStopped(_)) = c.q.stream_capacity(CONTROL_STREAM) {
                c.app_close(
                    codes::PROTOCOL_ERROR,
                    "control stream stopped by the peer",
                    None,
                );
                return;
            }
        }
        if congested {
            self.starved.insert(id);
            return;
        }
        self.read_control_stream(id);
    }

    /// Admission after the handshake, then 'connection' / 'connected'.
    fn report_ready(&mut self, id: u32) {
        let now = Instant::now();
        let max_pairing = self.config.max_pairing_connections;
        let pairing_deadline = self.config.pairing_deadline;
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.half_open {
            c.half_open = false;
            self.half_open -= 1;
        }
        self.shared
            .stats
            .half_open
            .store(self.half_open, Ordering::Relaxed);
        if c.q.application_proto() != tls::ALPN {
            c.app_close(codes::PROTOCOL_ERROR, "ALPN mismatch", None);
            return;
        }
        let Some(peer) = c.q.peer_cert() else {
            c.app_close(codes::PROTOCOL_ERROR, "no peer certificate", None);
            return;
        };
        let fp = fingerprint_hex(peer);
        let fpb = cribcall_core::identity::fingerprint_bytes(peer);
        let peer_cert = peer.to_vec();
        c.peer_fp = Some(fpb);
        let known = c.is_server && self.shared.is_known(&fpb);
        if c.is_server && !known {
            if self.pairing_only >= max_pairing {
                self.pairing_only = recount_pairing_only(&mut self.conns, &self.shared);
            }
            let Some(c) = self.conns.get_mut(&id) else {
                return;
            };
            if self.pairing_only >= max_pairing {
                // Closed before HANDSHAKE_DONE goes out: the client sees a
                // failed handshake (code 5, busy), never a connection.
                debug_log!("conn {id}: refused: {max_pairing} pairing-only connections already");
                c.app_close(
                    codes::INTERNAL_ERROR,
                    "busy: too many pairing connections",
                    None,
                );
                self.shared
                    .stats
                    .handshakes_refused
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
            c.pairing_only = true;
            c.pairing_deadline = Some(now + pairing_deadline);
            self.pairing_only += 1;
        }
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        debug_log!(
            "conn {id}: {} with {} (peer {})",
            if c.is_server { "accepted" } else { "connected" },
            c.remote,
            &fp[..16]
        );
        c.reported = true;
        self.shared
            .stats
            .connections
            .fetch_add(1, Ordering::Relaxed);
        let event = if c.is_server {
            Event::Connection {
                conn_id: id,
                peer_fingerprint: fp,
                peer_cert,
                peer_known: known,
                remote: c.remote,
            }
        } else {
            Event::Connected {
                conn_id: id,
                peer_fingerprint: fp,
                peer_cert,
                remote: c.remote,
            }
        };
        self.events.push(event);
    }

    /// Reads stream 0 within the turn's budget and decodes its frames.
    fn read_control_stream(&mut self, id: u32) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let mut budget = READ_BUDGET_PER_TURN;
        while let Some(sid) = c.q.stream_readable_next() {
            if sid != CONTROL_STREAM {
                // Cannot happen within our stream limits; refuse anything else.
                c.app_close(codes::PROTOCOL_ERROR, "only stream 0 is allowed", None);
                return;
            }
            c.stream_open = true;
            while budget > 0 {
                let (n, fin) = match c.q.stream_recv(sid, &mut self.read_buf) {
                    Ok(v) => v,
                    Err(quiche::Error::Done) => break,
                    Err(quiche::Error::StreamReset(_)) => {
                        c.app_close(
                            codes::PROTOCOL_ERROR,
                            "control stream reset by the peer",
                            None,
                        );
                        return;
                    }
                    Err(_) => break,
                };
                budget = budget.saturating_sub(n);
                self.shared
                    .stats
                    .stream_bytes_received
                    .fetch_add(n as u64, Ordering::Relaxed);
                let events = &mut self.events;
                let stats = &self.shared.stats;
                let res = c.decoder.push(&self.read_buf[..n], |payload| {
                    stats.frames_received.fetch_add(1, Ordering::Relaxed);
                    events.push(Event::Frame {
                        conn_id: id,
                        payload,
                    });
                });
                if let Err(e) = res {
                    c.app_close(codes::PROTOCOL_ERROR, &e.to_string(), None);
                    return;
                }
                // A frame that has begun must complete within the frame timeout.
                if c.decoder.is_idle() {
                    c.frame_started = None;
                } else if c.frame_started.is_none() {
                    c.frame_started = Some(Instant::now());
                }
                if fin {
                    if c.decoder.is_idle() {
                        c.app_close(codes::OK, "control stream finished by the peer", None);
                    } else {
                        c.app_close(
                            codes::PROTOCOL_ERROR,
                            "control stream ended inside a frame",
                            None,
                        );
                    }
                    return;
                }
            }
            if budget == 0 {
                self.more_to_read = true;
                self.sched.mark(id); // the rest next turn
                break;
            }
        }
    }

    fn flush(&mut self, ids: &[u32]) {
        for (k, &id) in ids.iter().enumerate() {
            self.write_stream(id);
            let mut sent = self.flush_conn(id);
            // A pending close goes out right after the frames queued before it.
            if sent {
                if let Some(c) = self.conns.get_mut(&id) {
                    if c.outq.is_empty() {
                        if let Some((code, reason, _)) = c.pending_close.take() {
                            c.app_close(code, &reason, None);
                            sent = self.flush_conn(id);
                        }
                    }
                }
            }
            if !sent {
                // The socket is full: these go on once it is writable.
                self.blocked_ids.extend_from_slice(&ids[k..]);
                break;
            }
        }
    }

    /// Moves queued frames into quiche's stream buffer as capacity allows.
    fn write_stream(&mut self, id: u32) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if !c.reported || !c.stream_open || c.local_close.is_some() || c.q.is_closed() {
            return;
        }
        while let Some(front) = c.outq.front_mut() {
            let bytes = &front.chunk.bytes()[front.offset..];
            match c.q.stream_send(CONTROL_STREAM, bytes, false) {
                Ok(n) => {
                    self.shared
                        .stats
                        .stream_bytes_sent
                        .fetch_add(n as u64, Ordering::Relaxed);
                    front.offset += n;
                    let _ =
                        c.shared
                            .queued
                            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                                Some(q.saturating_sub(n))
                            });
                    if front.offset == front.chunk.bytes().len() {
                        c.outq.pop_front();
                        self.shared
                            .stats
                            .frames_sent
                            .fetch_add(1, Ordering::Relaxed);
                    } else {
                        break; // stream buffer full
                    }
                }
                Err(quiche::Error::Done) => break,
                Err(e) => {
                    c.app_close(
                        codes::INTERNAL_ERROR,
                        &format!("control stream write failed: {e}"),
                        None,
                    );
                    break;
                }
            }
        }
        if c.outq.is_empty()
            && c.shared.queued.load(Ordering::Acquire) == 0
            && c.shared.need_drain.swap(false, Ordering::AcqRel)
        {
            self.events.push(Event::Drain { conn_id: id });
        }
    }

    /// Sends every packet quiche has for this connection, in GSO batches where
    /// the socket takes them. False if the socket blocked.
    fn flush_conn(&mut self, id: u32) -> bool {
        if !self.blocked.is_empty() {
            return false;
        }
        let max = limits::MAX_SEND_UDP_PAYLOAD;
        let room = if self.offload.gso {
            self.send_buf.len()
        } else {
            max
        };
        // The batch being filled: bytes, segment size, packets, address.
        let (mut len, mut segment, mut count, mut to) = (0usize, 0usize, 0usize, None);
        while let Some(c) = self.conns.get_mut(&id) {
            let (n, info) = match c.q.send(&mut self.send_buf[len..len + max]) {
                Ok(v) => v,
                // Done, or quiche closed it (reaped below).
                Err(_) => break,
            };
            c.last_send = Instant::now();
            let fits = to == Some(info.to) && n <= segment;
            if to.is_some() && !fits {
                // Another address, or larger than the batch's segments: the
                // batch goes out and this packet starts the next one.
                if !self.send_batch(len, segment, count, to) {
                    self.blocked
                        .push_back((self.send_buf[len..len + n].to_vec(), info.to, n));
                    return false;
                }
                self.send_buf.copy_within(len..len + n, 0);
                (len, segment, count, to) = (0, 0, 0, None);
            }
            if to.is_none() {
                (segment, to) = (n, Some(info.to));
            }
            len += n;
            count += 1;
            // A shorter packet ends a batch (only the last segment may be short).
            let full = n < segment || count == udp::MAX_SEGMENTS || len + max > room;
            if full {
                if !self.send_batch(len, segment, count, to) {
                    return false;
                }
                (len, segment, count, to) = (0, 0, 0, None);
            }
        }
        len == 0 || self.send_batch(len, segment, count, to)
    }

    /// Sends `send_buf[..len]` (`count` packets of `segment` bytes, the last
    /// maybe shorter) to `to`. False if the socket blocked (the batch is kept).
    fn send_batch(
        &mut self,
        len: usize,
        segment: usize,
        count: usize,
        to: Option<SocketAddr>,
    ) -> bool {
        let Some(to) = to else {
            return true;
        };
        match udp::send(
            &self.socket,
            &mut self.offload,
            &self.send_buf[..len],
            segment,
            to,
        ) {
            Ok(calls) => {
                let stats = &self.shared.stats;
                stats
                    .packets_sent
                    .fetch_add(count as u64, Ordering::Relaxed);
                stats.send_calls.fetch_add(calls, Ordering::Relaxed);
                true
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                self.blocked
                    .push_back((self.send_buf[..len].to_vec(), to, segment));
                self.want_writable(true);
                false
            }
            // Unreachable or similar: quiche's loss recovery and timeouts deal with it.
            Err(_) => true,
        }
    }

    fn send_datagram(&mut self, pkt: &[u8], to: SocketAddr) {
        if !self.blocked.is_empty() {
            return;
        }
        if let Err(e) = self.socket.send_to(pkt, to) {
            if e.kind() == ErrorKind::WouldBlock {
                self.blocked.push_back((pkt.to_vec(), to, pkt.len()));
                self.want_writable(true);
            }
        }
    }

    fn flush_blocked(&mut self) {
        while let Some((pkt, to, segment)) = self.blocked.pop_front() {
            match udp::send(&self.socket, &mut self.offload, &pkt, segment, to) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.blocked.push_front((pkt, to, segment));
                    return;
                }
                _ => {}
            }
        }
        self.want_writable(false);
    }

    fn want_writable(&mut self, on: bool) {
        if self.writable_interest == on {
            return;
        }
        let interest = if on {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if self
            .poll
            .registry()
            .reregister(&mut self.socket, SOCKET, interest)
            .is_ok()
        {
            self.writable_interest = on;
        }
    }

    /// Reports finished connections at once and forgets them once quiche is
    /// done with them (a closing connection lingers for its draining period so
    /// a lost CONNECTION_CLOSE is repeated to the peer).
    fn reap(&mut self, ids: &[u32]) {
        let shutting_down = self.shutting_down;
        let mut reports = Vec::new();
        let mut remove = Vec::new();
        for id in ids {
            let Some(c) = self.conns.get_mut(id) else {
                continue;
            };
            // Draining (a close was sent or received) is the end as far as the
            // owner is concerned; the state lingers only to absorb late packets.
            let finished =
                c.q.is_closed() || c.q.is_draining() || (c.local_close.is_some() && shutting_down);
            if finished && !c.done {
                c.done = true;
                reports.push(*id);
            }
            if c.q.is_closed() || (c.done && shutting_down) {
                remove.push(*id);
            }
        }
        for id in reports {
            // Still registered until removed below: a send racing with the
            // close is accepted and dropped, and the owner learns of the
            // close from its event, not from a failed send.
            let Some(c) = self.conns.get(&id) else {
                continue;
            };
            let ended_by_shutdown = shutting_down
                && c.local_close
                    .as_ref()
                    .is_some_and(|l| l.1 == "endpoint closed");
            if c.reset {
                self.shared
                    .stats
                    .stateless_resets_received
                    .fetch_add(1, Ordering::Relaxed);
            }
            if c.reported {
                self.shared
                    .stats
                    .connections
                    .fetch_sub(1, Ordering::Relaxed);
                let mut info = c.close_info();
                if ended_by_shutdown {
                    info.error_code = Some("ERR_ENDPOINT_CLOSED");
                }
                self.events.push(Event::Close { conn_id: id, info });
            } else if c.is_server {
                debug_log!(
                    "conn {id}: handshake from {} refused or abandoned ({:?})",
                    c.remote,
                    c.q.local_error().or(c.q.peer_error()).map(|e| e.error_code)
                );
                // A refused or abandoned handshake is never surfaced to the owner.
                // Certificates refused by the policy are counted by the verify
                // callback; a client that sent none is counted here.
                let tls_alert =
                    c.q.local_error()
                        .is_some_and(|e| (0x100..0x200).contains(&e.error_code));
                if tls_alert && c.q.peer_cert().is_none() {
                    self.shared
                        .stats
                        .handshakes_rejected
                        .fetch_add(1, Ordering::Relaxed);
                }
            } else {
                let mut failure = c.connect_failure();
                debug_log!(
                    "conn {id}: connect failed: {} {}",
                    failure.code,
                    failure.message
                );
                if ended_by_shutdown {
                    failure.code = "ERR_ENDPOINT_CLOSED";
                }
                self.events.push(Event::ConnectFailed {
                    conn_id: id,
                    failure,
                });
            }
        }
        for id in remove {
            self.unregister(id);
            self.sched.remove(id);
            self.starved.remove(&id);
            if let Some(c) = self.conns.remove(&id) {
                for cid in &c.cids {
                    self.cid_map.remove(cid);
                }
                if c.half_open {
                    self.half_open -= 1;
                    self.publish_half_open();
                }
                if c.pairing_only {
                    self.pairing_only = self.pairing_only.saturating_sub(1);
                }
            }
        }
    }

    fn deliver(&mut self, sink: &mut dyn EventSink) {
        if self.events.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.events);
        let (n, bytes) = batch_cost(&batch);
        self.shared.flow.add(n, bytes);
        sink.deliver(batch);
    }

    /// Emits the final events for whatever is left (after a panic or shutdown).
    fn final_events(&mut self, reason: &str, error_code: &'static str) {
        let leftover: Vec<(u32, bool, bool)> = self
            .conns
            .values()
            .map(|c| (c.id, c.reported, c.is_server))
            .collect();
        for (id, reported, is_server) in leftover {
            if reported {
                self.events.push(Event::Close {
                    conn_id: id,
                    info: CloseInfo {
                        code: codes::OK,
                        reason: reason.to_owned(),
                        by_peer: false,
                        application: false,
                        error_code: Some(error_code),
                    },
                });
            } else if !is_server {
                self.events.push(Event::ConnectFailed {
                    conn_id: id,
                    failure: ConnectFailure {
                        code: "ERR_ENDPOINT_CLOSED",
                        message: reason.to_owned(),
                        expected: None,
                        actual: None,
                    },
                });
            }
        }
        self.conns.clear();
        self.sched.clear();
        // Connects queued but never started.
        while let Ok(cmd) = self.rx.try_recv() {
            if let Command::Connect { conn_id, .. } = cmd {
                self.events.push(Event::ConnectFailed {
                    conn_id,
                    failure: ConnectFailure {
                        code: "ERR_ENDPOINT_CLOSED",
                        message: reason.to_owned(),
                        expected: None,
                        actual: None,
                    },
                });
            }
        }
        lock(&self.shared.registry).clear();
        self.shared.stats.connections.store(0, Ordering::Relaxed);
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

/// The pairing deadline of a pairing-only connection and the frame timeout.
fn deadlines(
    c: &mut Conn,
    shared: &Shared,
    config: &EndpointConfig,
    now: Instant,
    congested: bool,
) {
    if c.pairing_deadline.is_some_and(|t| now >= t) {
        c.pairing_deadline = None;
        if c.peer_fp.is_some_and(|fp| shared.is_known(&fp)) {
            c.pairing_only = false; // paired in time
        } else {
            debug_log!("conn {}: pairing deadline passed", c.id);
            let reason = format!(
                "pairing did not complete within {} s",
                config.pairing_deadline.as_secs()
            );
            c.app_close(codes::UNAUTHORIZED, &reason, None);
            shared
                .stats
                .closed_by_deadline
                .fetch_add(1, Ordering::Relaxed);
        }
    }
    if let Some(started) = c.frame_started {
        if now >= started + config.frame_timeout {
            if congested {
                // We stopped reading, not the peer: restart its clock.
                c.frame_started = Some(now);
            } else {
                c.frame_started = None;
                debug_log!("conn {}: frame timeout", c.id);
                let reason = format!(
                    "a frame did not complete within {} ms of its first byte",
                    config.frame_timeout.as_millis()
                );
                c.app_close(codes::PROTOCOL_ERROR, &reason, None);
                shared
                    .stats
                    .closed_by_deadline
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Counts the pairing-only connections still open whose peer is not known by
/// now (a connection that completed pairing stops counting).
fn recount_pairing_only(conns: &mut HashMap<u32, Conn>, shared: &Shared) -> usize {
    let mut n = 0;
    for c in conns.values_mut() {
        if !c.pairing_only || c.done {
            continue;
        }
        if c.peer_fp.is_some_and(|fp| shared.is_known(&fp)) {
            c.pairing_only = false;
            c.pairing_deadline = None;
        } else {
            n += 1;
        }
    }
    n
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

/// Thread body: runs the loop, contains panics, always ends with [`Event::Closed`].
pub fn run(mut io: Io, mut sink: impl EventSink) {
    let result = catch_unwind(AssertUnwindSafe(|| io.run_loop(&mut sink)));
    // Mark closed so the owner's calls fail fast from now on.
    io.shared.closed.store(true, Ordering::Release);
    match result {
        Ok(()) => {
            // Flush the CONNECTION_CLOSE frames of the shutdown.
            let ids: Vec<u32> = io.conns.keys().copied().collect();
            for &id in &ids {
                io.flush_conn(id);
            }
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
    let batch = std::mem::take(&mut io.events);
    let (n, bytes) = batch_cost(&batch);
    io.shared.flow.add(n, bytes);
    let _ = catch_unwind(AssertUnwindSafe(|| sink.deliver(batch)));
}
