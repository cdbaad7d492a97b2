//! The methods of the `NativeEndpoint` class after its constructor: listening,
//! connecting, sending, closing, counters.

use crate::endpoint::{parse_ip, port, NativeEndpoint};
use crate::{js_err, Code};
use cribcall_driver::EndpointHandle;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::net::SocketAddr;
use std::sync::Arc;

/// Counters of an endpoint.
#[napi(object)]
pub struct EndpointStats {
    pub connections: u32,
    /// Stateless resets sent for packets of unknown connections.
    pub stateless_resets_sent: f64,
    /// Connections ended by a stateless reset from the peer.
    pub stateless_resets_received: f64,
    /// Server handshakes started.
    pub handshakes_started: f64,
    /// Handshakes refused for capacity or given up for a newer one.
    pub handshakes_refused: f64,
    /// Retry packets sent.
    pub handshakes_retried: f64,
    /// Initials dropped for an invalid, foreign-address or expired token.
    pub invalid_tokens: f64,
    /// Server handshakes in progress now.
    pub half_open: u32,
    /// Connections closed by a deadline (pairing deadline, frame timeout).
    pub closed_by_deadline: f64,
    /// Version negotiation, Retry, stateless resets and refusals sent.
    pub unsolicited_replies_sent: f64,
    pub handshakes_rejected: f64,
    pub stream_bytes_received: f64,
    pub stream_bytes_sent: f64,
    pub frames_received: f64,
    pub frames_sent: f64,
    pub packets_received: f64,
    pub packets_sent: f64,
    /// System calls that sent packets (fewer than packets with UDP GSO).
    pub send_calls: f64,
    /// System calls that received packets (fewer than packets with UDP GRO).
    pub recv_calls: f64,
    /// Sends whose frames went onto the wire from the JS thread itself (the
    /// IO thread idle), without a hand-off to the IO thread.
    pub inline_flushes: f64,
    /// Turns of the IO thread's loop: how often it woke (a datagram, a
    /// command, a timer).
    pub io_wakeups: f64,
}

/// A bound address.
#[napi(object)]
pub struct AddressInfo {
    pub host: String,
    pub port: u32,
}

#[napi]
impl NativeEndpoint {
    /// The bound address.
    #[napi]
    pub fn local_address(&self) -> AddressInfo {
        let a = self.handle.local_addr();
        AddressInfo {
            host: a.ip().to_string(),
            port: a.port() as u32,
        }
    }

    /// Starts accepting connections; `acceptUnknown` admits unknown client certificates.
    #[napi]
    pub fn listen(&self, accept_unknown: bool) {
        self.handle.listen(accept_unknown);
    }

    /// Changes the admission policy at runtime.
    #[napi]
    pub fn set_accept_unknown(&self, accept_unknown: bool) {
        self.handle.set_accept_unknown(accept_unknown);
    }

    /// Stops accepting new connections.
    #[napi]
    pub fn stop_listening(&self) {
        self.handle.stop_listening();
    }

    /// Replaces the set of known client fingerprints (64 hex characters each).
    #[napi]
    pub fn set_known_peers(&self, fingerprints: Vec<String>) -> Result<(), Code> {
        self.handle.set_known_peers(&fingerprints).map_err(js_err)
    }

    /// Starts a pinned client connection; returns its id. The outcome arrives
    /// as a 'connected' or 'connectFailed' event.
    #[napi]
    pub fn connect(
        &self,
        host: String,
        port_number: u32,
        server_fingerprint: String,
    ) -> Result<u32, Code> {
        let addr = SocketAddr::new(parse_ip(&host)?, port(port_number)?);
        self.handle
            .connect(addr, &server_fingerprint)
            .map_err(js_err)
    }

    /// Queues one frame; returns the bytes queued natively for this connection.
    #[napi]
    pub fn send(&self, conn_id: u32, payload: &[u8]) -> Result<u32, Code> {
        self.handle
            .send(conn_id, payload)
            .map(|n| n.min(u32::MAX as usize) as u32)
            .map_err(js_err)
    }

    /// Accepts one frame without sending it yet; `flush` sends what was
    /// accepted (any other call sends it first). Returns the bytes queued
    /// natively for this connection.
    #[napi]
    pub fn send_deferred(&self, conn_id: u32, payload: &[u8]) -> Result<u32, Code> {
        self.handle
            .send_deferred(conn_id, payload)
            .map(|n| n.min(u32::MAX as usize) as u32)
            .map_err(js_err)
    }

    /// Sends the frames accepted by `sendDeferred`, from this thread when the
    /// IO thread is idle.
    #[napi]
    pub fn flush(&self) {
        self.handle.flush();
    }

    /// Bytes accepted by `send` for this connection and not yet handed to QUIC.
    #[napi]
    pub fn queued(&self, conn_id: u32) -> u32 {
        self.handle.queued(conn_id).min(u32::MAX as usize) as u32
    }

    /// Queues one frame, serialized once, on every given connection; returns how many took it.
    /// The connection IDs come as a typed array: read in place, not element by element.
    #[napi]
    pub fn broadcast(&self, conn_ids: Uint32Array, payload: &[u8]) -> Result<u32, Code> {
        self.handle
            .broadcast(&conn_ids, payload)
            .map(|n| n as u32)
            .map_err(js_err)
    }

    /// Closes a connection with an application error code and reason.
    #[napi]
    pub fn close_connection(&self, conn_id: u32, code: u32, reason: String) -> Result<(), Code> {
        self.handle
            .close_connection(conn_id, code as u64, &reason)
            .map_err(js_err)
    }

    /// Counters.
    #[napi]
    pub fn stats(&self) -> EndpointStats {
        let s = self.handle.stats();
        EndpointStats {
            connections: s.connections as u32,
            stateless_resets_sent: s.stateless_resets_sent as f64,
            stateless_resets_received: s.stateless_resets_received as f64,
            handshakes_started: s.handshakes_started as f64,
            handshakes_refused: s.handshakes_refused as f64,
            handshakes_retried: s.handshakes_retried as f64,
            invalid_tokens: s.invalid_tokens as f64,
            half_open: s.half_open as u32,
            closed_by_deadline: s.closed_by_deadline as f64,
            unsolicited_replies_sent: s.unsolicited_replies as f64,
            handshakes_rejected: s.handshakes_rejected as f64,
            stream_bytes_received: s.stream_bytes_received as f64,
            stream_bytes_sent: s.stream_bytes_sent as f64,
            frames_received: s.frames_received as f64,
            frames_sent: s.frames_sent as f64,
            packets_received: s.packets_received as f64,
            packets_sent: s.packets_sent as f64,
            send_calls: s.send_calls as f64,
            recv_calls: s.recv_calls as f64,
            inline_flushes: s.inline_flushes as f64,
            io_wakeups: s.io_wakeups as f64,
        }
    }

    /// Closes every connection and stops the IO thread; resolves once it exited.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close(&self) -> AsyncTask<JoinTask> {
        self.handle.shutdown();
        AsyncTask::new(JoinTask {
            handle: self.handle.clone(),
        })
    }
}

/// Waits on the libuv pool for the IO thread to exit.
pub struct JoinTask {
    handle: Arc<EndpointHandle>,
}

impl Task for JoinTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<Self::Output> {
        self.handle.join();
        Ok(())
    }

    fn resolve(&mut self, _env: Env, _output: Self::Output) -> Result<Self::JsValue> {
        Ok(())
    }
}
