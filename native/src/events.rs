//! The typed seam of the event path: how a driver [`Event`] batch becomes the
//! one JavaScript value the endpoint's callback receives.
//!
//! Frames (the bulk of the traffic) cross packed in one buffer
//! ([`cribcall_driver::batch`]); every other event crosses as one member of the
//! discriminated union [`NativeEvent`], whose `at` says how many of the batch's
//! frames come before it.

use cribcall_driver::batch::PackedBatch;
use cribcall_driver::Event;
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// One batch of events from the IO thread, in order.
#[napi(object)]
pub struct NativeEventBatch {
    /// The batch's frames, packed (little-endian u32s): `count`, then
    /// `connId, length` per frame, then the payloads back to back. Absent when
    /// the batch has no frame.
    pub frames: Option<Buffer>,
    /// The batch's other events, in order. Absent when there are none.
    pub events: Option<Vec<NativeEvent>>,
}

/// An event other than a frame. `at`: how many of the batch's frames precede it.
#[napi(discriminant = "kind", discriminant_case = "camelCase")]
pub enum NativeEvent {
    /// Server side: a client completed the handshake and passed the admission policy.
    Connection {
        at: u32,
        conn_id: u32,
        peer_fingerprint: String,
        /// The peer's certificate DER exactly as received.
        peer_cert_der: Buffer,
        peer_known: bool,
        remote_host: String,
        remote_port: u32,
    },
    /// Client side: the server confirmed the handshake.
    Connected {
        at: u32,
        conn_id: u32,
        peer_fingerprint: String,
        peer_cert_der: Buffer,
        remote_host: String,
        remote_port: u32,
    },
    /// Client side: the connection did not come up.
    ConnectFailed {
        at: u32,
        conn_id: u32,
        /// ERR_PIN_MISMATCH, ERR_PEER_REJECTED, ERR_HANDSHAKE_TIMEOUT, …
        error_code: String,
        message: String,
        /// ERR_PIN_MISMATCH: the pinned and the presented fingerprints.
        expected: Option<String>,
        actual: Option<String>,
    },
    /// The connection's native send queue emptied after a refusal or a high queue.
    Drain { at: u32, conn_id: u32 },
    /// The connection ended.
    Close {
        at: u32,
        conn_id: u32,
        /// The QUIC error code (application or transport).
        code: f64,
        reason: String,
        by_peer: bool,
        /// True for an application close (CONNECTION_CLOSE type 0x1d).
        application: bool,
        /// Set when no close frame was exchanged: ERR_IDLE_TIMEOUT, ERR_CONNECTION_RESET, …
        error_code: Option<String>,
    },
    /// An endpoint-level problem (ERR_SOCKET, ERR_INTERNAL).
    Error {
        at: u32,
        error_code: String,
        message: String,
    },
    /// The IO thread is about to exit; always the last event.
    Closed { at: u32 },
}

impl NativeEvent {
    fn from_event(at: u32, e: Event) -> Option<Self> {
        Some(match e {
            Event::Connection {
                conn_id,
                peer_fingerprint,
                peer_cert,
                peer_known,
                remote,
            } => NativeEvent::Connection {
                at,
                conn_id,
                peer_fingerprint,
                peer_cert_der: peer_cert.into(),
                peer_known,
                remote_host: remote.ip().to_string(),
                remote_port: remote.port() as u32,
            },
            Event::Connected {
                conn_id,
                peer_fingerprint,
                peer_cert,
                remote,
            } => NativeEvent::Connected {
                at,
                conn_id,
                peer_fingerprint,
                peer_cert_der: peer_cert.into(),
                remote_host: remote.ip().to_string(),
                remote_port: remote.port() as u32,
            },
            Event::ConnectFailed { conn_id, failure } => NativeEvent::ConnectFailed {
                at,
                conn_id,
                error_code: failure.code.to_owned(),
                message: failure.message,
                expected: failure.expected,
                actual: failure.actual,
            },
            Event::Close { conn_id, info } => NativeEvent::Close {
                at,
                conn_id,
                code: info.code as f64,
                reason: info.reason,
                by_peer: info.by_peer,
                application: info.application,
                error_code: info.error_code.map(str::to_owned),
            },
            Event::Drain { conn_id } => NativeEvent::Drain { at, conn_id },
            Event::Error { code, message } => NativeEvent::Error {
                at,
                error_code: code.to_owned(),
                message,
            },
            Event::Closed => NativeEvent::Closed { at },
            // Frames are packed, never listed.
            Event::Frame { .. } => return None,
        })
    }
}

impl NativeEventBatch {
    /// Built on the IO thread; only the conversion to JS values runs on the JS thread.
    pub fn from_packed(p: PackedBatch) -> Self {
        let events: Vec<NativeEvent> = p
            .others
            .into_iter()
            .filter_map(|(at, e)| NativeEvent::from_event(at, e))
            .collect();
        NativeEventBatch {
            frames: (!p.frames.is_empty()).then(|| p.frames.into()),
            events: (!events.is_empty()).then_some(events),
        }
    }
}
