//! What the IO thread reports to the owner, and the sink that receives it.

use std::net::SocketAddr;

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

/// Batch size accounting used by sinks.
pub fn batch_cost(batch: &[Event]) -> (usize, usize) {
    (batch.len(), batch.iter().map(Event::payload_len).sum())
}
