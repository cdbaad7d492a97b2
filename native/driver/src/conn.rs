//! Per-connection state kept by the IO thread.

use crate::{CloseInfo, ConnShared, ConnectFailure};
use cribcall_core::framing::FrameDecoder;
use cribcall_core::identity::to_hex;
use cribcall_core::tls::{PinFailure, PinRecord};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// The one control stream: client-initiated bidirectional stream 0.
pub const CONTROL_STREAM: u64 = 0;

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
    /// Client: the server's first 1-RTT packet arrived (it completed the handshake).
    pub confirmed: bool,
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
    pub remote: SocketAddr,
    /// Set once the conn is finished and its close was reported.
    pub done: bool,
    /// A close requested while frames were still queued: it happens once they
    /// are on the wire (or at the deadline), so an in-band ERROR precedes it.
    pub pending_close: Option<(u64, String, Instant)>,
}

impl Conn {
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

    /// Why a client connection failed before it was reported as connected.
    pub fn connect_failure(&self) -> ConnectFailure {
        if let Some(rec) = &self.pin_record {
            if let Some(failure) = rec.lock().ok().and_then(|g| g.clone()) {
                return match failure {
                    PinFailure::Mismatch { expected, actual } => ConnectFailure {
                        code: "ERR_PIN_MISMATCH",
                        message: failure.describe(),
                        expected: Some(to_hex(&expected)),
                        actual: Some(to_hex(&actual)),
                    },
                    other => ConnectFailure {
                        code: "ERR_HANDSHAKE_FAILED",
                        message: other.describe(),
                        expected: None,
                        actual: None,
                    },
                };
            }
        }
        if let Some((_, reason, code)) = &self.local_close {
            return ConnectFailure {
                code: code.unwrap_or("ERR_CONNECTION_CLOSED"),
                message: reason.clone(),
                expected: None,
                actual: None,
            };
        }
        if let Some(e) = self.q.peer_error() {
            let reason = String::from_utf8_lossy(&e.reason).into_owned();
            let (code, message) = if e.is_app {
                (
                    "ERR_PEER_REJECTED",
                    format!(
                        "the server closed the connection during the handshake (code {}): {reason}",
                        e.error_code
                    ),
                )
            } else if (0x100..0x200).contains(&e.error_code) {
                let alert = e.error_code - 0x100;
                let refused = matches!(alert, 42..=46 | 48 | 49 | 116);
                (
                    if refused {
                        "ERR_PEER_REJECTED"
                    } else {
                        "ERR_HANDSHAKE_FAILED"
                    },
                    format!(
                        "the server {} our certificate (TLS alert {alert}{})",
                        if refused {
                            "refused"
                        } else {
                            "aborted the handshake with"
                        },
                        alert_name(alert)
                            .map(|n| format!(" {n}"))
                            .unwrap_or_default()
                    ),
                )
            } else {
                (
                    "ERR_HANDSHAKE_FAILED",
                    format!(
                        "the server closed the handshake with transport error 0x{:x} {reason}",
                        e.error_code
                    ),
                )
            };
            return ConnectFailure {
                code,
                message,
                expected: None,
                actual: None,
            };
        }
        if let Some(e) = self.q.local_error() {
            return ConnectFailure {
                code: "ERR_HANDSHAKE_FAILED",
                message: format!(
                    "handshake failed locally (error 0x{:x}) {}",
                    e.error_code,
                    String::from_utf8_lossy(&e.reason)
                ),
                expected: None,
                actual: None,
            };
        }
        if self.q.is_timed_out() {
            return ConnectFailure {
                code: "ERR_HANDSHAKE_TIMEOUT",
                message: "no answer from the server".into(),
                expected: None,
                actual: None,
            };
        }
        ConnectFailure {
            code: "ERR_HANDSHAKE_FAILED",
            message: "the connection closed before the handshake completed".into(),
            expected: None,
            actual: None,
        }
    }
}

fn alert_name(alert: u64) -> Option<&'static str> {
    Some(match alert {
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        48 => "unknown_ca",
        49 => "access_denied",
        80 => "internal_error",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => return None,
    })
}
