//! Per-connection state kept by the IO thread.

mod failure;
mod keepalive;

pub use keepalive::keep_alive_deadline;

use crate::{CloseInfo, ConnShared};
use cribcall_core::framing::FrameDecoder;
use cribcall_core::tls::PinRecord;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// The one control stream: client-initiated bidirectional stream 0.
pub const CONTROL_STREAM: u64 = 0;

/// QUIC transport error CONNECTION_REFUSED (RFC 9000 §20.1).
pub const CONNECTION_REFUSED: u64 = 0x2;

/// Bytes waiting to be handed to quiche's stream buffer.
pub enum Chunk {
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
}

impl Chunk {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Shared(a) => a,
        }
    }
}

pub struct OutChunk {
    pub chunk: Chunk,
    pub offset: usize,
}

pub struct Conn {
    pub id: u32,
    pub q: quiche::Connection,
    pub is_server: bool,
    /// 'connection' / 'connected' was emitted.
    pub reported: bool,
    /// The peer ended the connection with a stateless reset (it lost its state).
    pub reset: bool,
    /// Server: counted among the handshakes in progress.
    pub half_open: bool,
    /// Server: admitted with an unknown certificate (pairing only).
    pub pairing_only: bool,
    /// Server, pairing-only: closed at this instant unless paired by then.
    pub pairing_deadline: Option<Instant>,
    /// The peer's certificate fingerprint, once established.
    pub peer_fp: Option<[u8; 32]>,
    /// When the first byte of the frame being received arrived.
    pub frame_started: Option<Instant>,
    pub handshake_deadline: Instant,
    pub decoder: FrameDecoder,
    pub outq: VecDeque<OutChunk>,
    /// Server: the client opened stream 0 (we may write to it).
    pub stream_open: bool,
    pub pin_record: Option<PinRecord>,
    pub cids: Vec<quiche::ConnectionId<'static>>,
    /// Close we initiated (code, reason, error code when not a wire close).
    pub local_close: Option<(u64, String, Option<&'static str>)>,
    pub shared: Arc<ConnShared>,
    pub last_send: Instant,
    /// When a packet from the peer was last processed.
    pub last_recv: Instant,
    /// quiche's count of packets received from the peer when `last_recv` was
    /// last set.
    pub recv_seen: usize,
    pub remote: SocketAddr,
    /// Set once the conn is finished and its close was reported.
    pub done: bool,
    /// A close requested while frames were still queued: it happens once they
    /// are on the wire (or at the deadline), so an in-band ERROR precedes it.
    pub pending_close: Option<(u64, String, Instant)>,
}

/// What a new connection starts with.
pub struct ConnInit {
    pub id: u32,
    pub q: quiche::Connection,
    pub is_server: bool,
    pub now: Instant,
    pub handshake_timeout: std::time::Duration,
    pub max_frame_payload: usize,
    pub pin_record: Option<PinRecord>,
    pub cids: Vec<quiche::ConnectionId<'static>>,
    pub shared: Arc<ConnShared>,
    pub remote: SocketAddr,
}

impl Conn {
    pub fn new(init: ConnInit) -> Conn {
        Conn {
            id: init.id,
            q: init.q,
            is_server: init.is_server,
            reported: false,
            reset: false,
            half_open: init.is_server,
            pairing_only: false,
            pairing_deadline: None,
            peer_fp: None,
            frame_started: None,
            handshake_deadline: init.now + init.handshake_timeout,
            decoder: FrameDecoder::new(init.max_frame_payload),
            outq: VecDeque::new(),
            // The client opens stream 0 with its first frame; the server may
            // write only once the client did.
            stream_open: !init.is_server,
            pin_record: init.pin_record,
            cids: init.cids,
            local_close: None,
            shared: init.shared,
            last_send: init.now,
            last_recv: init.now,
            recv_seen: 0,
            remote: init.remote,
            done: false,
            pending_close: None,
        }
    }

    /// Whether the connection is ready to be reported: the handshake is
    /// complete and, at a client, confirmed by the server's HANDSHAKE_DONE
    /// (RFC 9001 §4.1.2). A server may send 1-RTT packets before it has judged
    /// our certificate; only HANDSHAKE_DONE says it accepted us.
    pub fn ready(&self) -> bool {
        self.q.is_established() && (self.is_server || self.q.is_handshake_confirmed())
    }

    /// When the next keep-alive PING is due (None: keep-alive off or not up
    /// yet); see [`keep_alive_deadline`].
    pub fn keep_alive_due(&self, ka: Option<std::time::Duration>) -> Option<Instant> {
        let ka = ka?;
        if !self.reported || self.q.is_closed() || self.q.is_draining() {
            return None;
        }
        Some(keep_alive_deadline(
            self.last_send,
            self.last_recv,
            ka,
            self.is_server,
        ))
    }

    /// The earliest instant this connection needs attention without any
    /// datagram or command: quiche's timer, the handshake deadline, a pending
    /// close, keep-alive, the pairing deadline, the frame timeout.
    pub fn next_deadline(&self, cfg: &crate::EndpointConfig) -> Option<Instant> {
        let candidates = [
            self.q.timeout_instant(),
            self.pending_close.as_ref().map(|p| p.2),
            (!self.reported).then_some(self.handshake_deadline),
            self.keep_alive_due(cfg.keep_alive),
            self.pairing_deadline,
            self.frame_started.map(|t| t + cfg.frame_timeout),
        ];
        candidates.into_iter().flatten().min()
    }

    /// Notes a stateless reset: quiche closes the connection without an error
    /// when a datagram ends with the peer's reset token.
    pub fn note_reset_after_recv(&mut self) {
        if self.q.is_closed()
            && self.q.peer_error().is_none()
            && self.q.local_error().is_none()
            && !self.q.is_timed_out()
            && self.local_close.is_none()
        {
            self.reset = true;
        }
    }

    /// Closes with an application code unless already closing.
    pub fn app_close(&mut self, code: u64, reason: &str, error_code: Option<&'static str>) {
        self.pending_close = None;
        if self.local_close.is_some() || self.q.is_closed() || self.q.is_draining() {
            return;
        }
        self.local_close = Some((code, reason.to_owned(), error_code));
        // An application close before the handshake completes is sent by quiche
        // as a transport close with APPLICATION_ERROR, as RFC 9000 requires.
        let _ = self.q.close(true, code, reason.as_bytes());
    }

    /// The close info to report once the connection is closed.
    pub fn close_info(&self) -> CloseInfo {
        if self.reset {
            return CloseInfo {
                code: 0,
                reason: "stateless reset: the peer no longer has this connection (it restarted?)"
                    .into(),
                by_peer: true,
                application: false,
                error_code: Some("ERR_CONNECTION_RESET"),
            };
        }
        if let Some((code, reason, error_code)) = &self.local_close {
            return CloseInfo {
                code: *code,
                reason: reason.clone(),
                by_peer: false,
                application: error_code.is_none(),
                error_code: *error_code,
            };
        }
        if let Some(e) = self.q.peer_error() {
            return CloseInfo {
                code: e.error_code,
                reason: String::from_utf8_lossy(&e.reason).into_owned(),
                by_peer: true,
                application: e.is_app,
                error_code: None,
            };
        }
        if let Some(e) = self.q.local_error() {
            return CloseInfo {
                code: e.error_code,
                reason: format!(
                    "transport error 0x{:x}{}{}",
                    e.error_code,
                    if e.reason.is_empty() { "" } else { ": " },
                    String::from_utf8_lossy(&e.reason)
                ),
                by_peer: false,
                application: e.is_app,
                error_code: None,
            };
        }
        if self.q.is_timed_out() {
            return CloseInfo {
                code: 0,
                reason: "idle timeout: nothing heard from the peer".into(),
                by_peer: false,
                application: false,
                error_code: Some("ERR_IDLE_TIMEOUT"),
            };
        }
        CloseInfo {
            code: 0,
            reason: "connection closed".into(),
            by_peer: false,
            application: false,
            error_code: None,
        }
    }
}
