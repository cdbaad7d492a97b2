//! The IO thread: one UDP socket, quiche connections, timers, commands.
//!
//! This file holds the [`Io`] state, debug logging and the helpers every
//! stage uses. `setup` builds the state (socket, poller, quiche
//! configuration shared by both roles), `run` is the thread body and its
//! loop. The loop's stages live in submodules: `recv` (datagrams in),
//! `accept` (admission of new connections: version negotiation, Retry,
//! refusal) with `half_open` (the table of handshakes in progress),
//! `connect` (client connects), `stream` (owner commands and the control
//! stream), `ready` (admission after the handshake and its report), `send`
//! (datagrams out), `lifecycle` (deadlines, per-turn processing) and `reap`
//! (the end of connections).

use crate::conn::Conn;
use crate::ratelimit::TokenBucket;
use crate::retry::RetryTokens;
use crate::sched::Schedule;
use crate::udp::Offload;
use crate::{batch_cost, lock, Command, ConnShared, DriverError, EndpointConfig, Event, Shared};
use cribcall_core::limits;
use cribcall_core::reset::ResetKey;
use cribcall_core::tls::LocalCredentials;
use mio::net::UdpSocket;
use mio::{Registry, Token};
use ring::rand::{SecureRandom, SystemRandom};
use send::Batch;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);

/// The IO state of one endpoint, locked by the IO thread for each loop turn
/// and by an inline send on the owner's thread.
pub struct Io {
    /// The poller's registry (the poller itself stays with the IO thread).
    registry: Registry,
    /// When the IO thread plans to wake next if nothing happens (None: no
    /// deadline); set under the lock before it sleeps, so a send made on the
    /// owner's thread knows whether it must wake it for an earlier deadline.
    planned_wake: Option<Instant>,
    /// Path MTU discovery is on (the socket sets Don't Fragment).
    pmtud: bool,
    socket: UdpSocket,
    local: SocketAddr,
    config: EndpointConfig,
    server_config: quiche::Config,
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Command>,
    conns: HashMap<u32, Box<Conn>>,
    cid_map: HashMap<quiche::ConnectionId<'static>, u32>,
    events: Vec<Event>,
    rng: SystemRandom,
    recv_buf: Vec<u8>,
    send_buf: Vec<u8>,
    read_buf: Vec<u8>,
    /// Short frames gathered into one stream write (`stream::gather`).
    scratch: Vec<u8>,
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
mod connect;
mod half_open;
mod lifecycle;
mod ready;
mod reap;
mod recv;
mod run;
mod send;
mod setup;
mod stream;

pub use run::run;

#[cfg(test)]
mod core_tests;

impl Io {
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
