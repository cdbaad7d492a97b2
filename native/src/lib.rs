//! Thin napi layer of cribcall-quic: argument checks, conversion, error mapping.
//! All behaviour lives in `cribcall-core` (sans-IO) and `cribcall-driver` (IO).
#![deny(clippy::all)]

use cribcall_core::identity::{self, KeyType};
use cribcall_core::tls::LocalCredentials;
use cribcall_driver::{
    batch, batch_cost, DriverError, EndpointConfig, EndpointHandle, Event, EventSink, Releaser,
};
use events::NativeEventBatch;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub mod events;
pub mod pake;

/// The `code` a thrown error carries (napi-rs puts the status in `error.code`).
pub struct Code(&'static str);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        self.0
    }
}

impl From<Status> for Code {
    /// napi-rs's own argument checks (wrong JS type) become ERR_INVALID_ARG.
    fn from(status: Status) -> Self {
        match status {
            Status::InvalidArg
            | Status::ObjectExpected
            | Status::StringExpected
            | Status::NameExpected
            | Status::FunctionExpected
            | Status::NumberExpected
            | Status::BooleanExpected
            | Status::ArrayExpected
            | Status::BigintExpected
            | Status::DateExpected
            | Status::ArrayBufferExpected
            | Status::DetachableArraybufferExpected => Code("ERR_INVALID_ARG"),
            _ => Code("ERR_INTERNAL"),
        }
    }
}

/// The one place a Rust error becomes a JS error.
fn js_err(e: DriverError) -> Error<Code> {
    Error::new(Code(e.code()), e.to_string())
}

fn invalid(msg: impl Into<String>) -> Error<Code> {
    Error::new(Code("ERR_INVALID_ARG"), msg.into())
}

fn identity_err(e: identity::IdentityError) -> Error<Code> {
    js_err(DriverError::from(e))
}

/// Options of [`generate_identity`].
#[napi(object)]
pub struct IdentityOptions {
    /// `'p256'` (default) or `'ed25519'`.
    pub key_type: Option<String>,
    /// A UUID; a random UUID v4 when omitted.
    pub device_id: Option<String>,
}

/// A device identity: self-signed X.509 v3 certificate with
/// `subjectAltName = URI:cribcall:<deviceId>` and its PKCS#8 private key.
#[napi(object)]
pub struct Identity {
    pub device_id: String,
    /// `'p256'` or `'ed25519'`.
    pub key_type: String,
    pub cert_pem: String,
    /// PKCS#8 v1 PEM. Secret: never log it.
    pub key_pem: String,
    pub cert_der: Buffer,
    /// SHA-256 of `certDer`, 64 lowercase hex characters.
    pub fingerprint: String,
    /// Base64 of the SubjectPublicKeyInfo DER.
    pub public_key: String,
}

/// Generates a new device identity (P-256 by default, or Ed25519).
#[napi]
pub fn generate_identity(options: Option<IdentityOptions>) -> Result<Identity, Code> {
    let (key_type, device_id) = match options {
        Some(o) => (o.key_type, o.device_id),
        None => (None, None),
    };
    let kt = match key_type.as_deref() {
        None => KeyType::P256,
        Some(s) => KeyType::parse(s).map_err(identity_err)?,
    };
    let id = identity::generate_identity(kt, device_id.as_deref()).map_err(identity_err)?;
    Ok(Identity {
        device_id: id.device_id,
        key_type: kt.as_str().to_owned(),
        cert_pem: id.cert_pem,
        key_pem: id.key_pem,
        cert_der: id.cert_der.into(),
        fingerprint: id.fingerprint,
        public_key: identity::base64_standard(&id.public_key_spki_der),
    })
}

/// SHA-256 fingerprint (64 lowercase hex) of a certificate given as PEM text or DER bytes.
#[napi]
pub fn fingerprint_of(cert: Either<String, Buffer>) -> Result<String, Code> {
    let der = match &cert {
        Either::A(s) => identity::cert_der_from_pem_or_der(s.as_bytes()),
        Either::B(b) => identity::cert_der_from_pem_or_der(b.as_ref()),
    }
    .map_err(identity_err)?;
    Ok(identity::fingerprint_hex(&der))
}

/// Options of the native endpoint (see `Endpoint.bind` in the TypeScript API).
#[napi(object)]
pub struct NativeEndpointOptions {
    /// IP address to bind (`'127.0.0.1'`, `'::1'`, `'0.0.0.0'`, `'::'`).
    pub host: String,
    /// UDP port, 0 for any.
    pub port: u32,
    pub cert_pem: String,
    pub key_pem: String,
    /// Maximum frame payload, default 65536, at most 1048576.
    pub max_frame_payload: Option<u32>,
    /// Handshake deadline in ms, default 10000.
    pub handshake_timeout_ms: Option<u32>,
    /// QUIC idle timeout in ms, default 30000.
    pub idle_timeout_ms: Option<u32>,
    /// Send a QUIC PING after this many ms without sending; 0 = off; default 5000.
    pub keep_alive_ms: Option<u32>,
    /// Connections per endpoint, default 1024.
    pub max_connections: Option<u32>,
    /// Bytes queued natively per connection before `send` throws, default 16 MiB.
    pub max_send_buffer: Option<u32>,
    /// Server: handshakes in progress at once (the oldest of the source
    /// holding the most gives way), default 128.
    pub max_half_open: Option<u32>,
    /// Server: Retry once this many handshakes are in progress; 0 = always;
    /// -1 = never; default 16.
    pub retry_threshold: Option<i32>,
    /// Server: lifetime of a pairing-only connection in ms, default 180000.
    pub pairing_deadline_ms: Option<u32>,
    /// Server: pairing-only connections at once, default 8.
    pub max_pairing_connections: Option<u32>,
    /// Server: a frame must complete this many ms after its first byte, default 10000.
    pub frame_timeout_ms: Option<u32>,
}

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
}

/// A bound address.
#[napi(object)]
pub struct AddressInfo {
    pub host: String,
    pub port: u32,
}

type EventsTsfn = ThreadsafeFunction<NativeEventBatch, (), NativeEventBatch, Status, false>;

struct JsSink {
    tsfn: EventsTsfn,
    releaser: Releaser,
}

impl EventSink for JsSink {
    fn deliver(&mut self, batch: Vec<Event>) {
        let (n, bytes) = batch_cost(&batch);
        let releaser = self.releaser.clone();
        let batch = NativeEventBatch::from_packed(batch::pack(batch));
        // The completion runs on the JS thread after the callback returned:
        // only then is flow credit returned, so a slow consumer pushes back.
        let status = self.tsfn.call_with_return_value(
            batch,
            ThreadsafeFunctionCallMode::NonBlocking,
            move |_ret: Result<()>, _env| {
                releaser.release(n, bytes);
                Ok(())
            },
        );
        if status != Status::Ok {
            // The JS side is gone (environment teardown): nothing to tell.
            self.releaser.release(n, bytes);
        }
    }
}

fn parse_ip(host: &str) -> Result<IpAddr, Code> {
    let trimmed = host.trim_start_matches('[').trim_end_matches(']');
    trimmed.parse::<IpAddr>().map_err(|_| {
        invalid(format!(
            "host must be an IP address literal (resolve names first), got '{}'",
            host.chars().take(100).collect::<String>()
        ))
    })
}

fn port(p: u32) -> Result<u16, Code> {
    u16::try_from(p).map_err(|_| invalid(format!("port must be 0..65535, got {p}")))
}

/// A QUIC endpoint: one UDP socket and one IO thread. Use the TypeScript `Endpoint`.
#[napi]
pub struct NativeEndpoint {
    handle: Arc<EndpointHandle>,
}

#[napi]
impl NativeEndpoint {
    /// Binds the socket and starts the IO thread; `onEvents` receives event batches.
    #[napi(constructor)]
    pub fn new(
        options: NativeEndpointOptions,
        on_events: Function<'_, NativeEventBatch, ()>,
    ) -> Result<Self, Code> {
        let ip = parse_ip(&options.host)?;
        let bind = SocketAddr::new(ip, port(options.port)?);
        let creds = LocalCredentials::from_pem(&options.cert_pem, &options.key_pem)
            .map_err(identity_err)?;
        let mut cfg = EndpointConfig::new(bind, creds);
        if let Some(v) = options.max_frame_payload {
            cfg.max_frame_payload = v as usize;
        }
        if let Some(v) = options.handshake_timeout_ms {
            if v == 0 {
                return Err(invalid("handshakeTimeoutMs must be positive"));
            }
            cfg.handshake_timeout = Duration::from_millis(v as u64);
        }
        if let Some(v) = options.idle_timeout_ms {
            if v == 0 {
                return Err(invalid("idleTimeoutMs must be positive"));
            }
            cfg.idle_timeout = Duration::from_millis(v as u64);
        }
        if let Some(v) = options.keep_alive_ms {
            cfg.keep_alive = (v > 0).then(|| Duration::from_millis(v as u64));
        }
        if let Some(v) = options.max_connections {
            cfg.max_connections = v as usize;
        }
        if let Some(v) = options.max_send_buffer {
            if v < 1024 {
                return Err(invalid("maxSendBuffer must be at least 1024 bytes"));
            }
            cfg.max_send_buffer = v as usize;
        }
        if let Some(v) = options.max_half_open {
            cfg.max_half_open = v as usize;
        }
        if let Some(v) = options.retry_threshold {
            cfg.retry_threshold = usize::try_from(v).ok();
        }
        if let Some(v) = options.pairing_deadline_ms {
            cfg.pairing_deadline = Duration::from_millis(v as u64);
        }
        if let Some(v) = options.max_pairing_connections {
            cfg.max_pairing_connections = v as usize;
        }
        if let Some(v) = options.frame_timeout_ms {
            cfg.frame_timeout = Duration::from_millis(v as u64);
        }
        let tsfn: EventsTsfn = on_events
            .build_threadsafe_function::<NativeEventBatch>()
            .callee_handled::<false>()
            .build_callback(|ctx| Ok(ctx.value))
            .map_err(|e| Error::new(Code("ERR_INTERNAL"), e.reason.clone()))?;
        let handle = EndpointHandle::spawn_with(cfg, move |releaser| JsSink { tsfn, releaser })
            .map_err(js_err)?;
        Ok(NativeEndpoint {
            handle: Arc::new(handle),
        })
    }

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

    /// Test hook: queues raw bytes on the control stream without framing.
    #[napi(js_name = "_sendRaw")]
    pub fn send_raw(&self, conn_id: u32, bytes: &[u8]) -> Result<u32, Code> {
        self.handle
            .send_raw(conn_id, bytes)
            .map(|n| n.min(u32::MAX as usize) as u32)
            .map_err(js_err)
    }

    /// Queues one frame, serialized once, on every given connection; returns how many took it.
    #[napi]
    pub fn broadcast(&self, conn_ids: Vec<u32>, payload: &[u8]) -> Result<u32, Code> {
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
        }
    }

    /// Test hook: makes the IO thread panic (the panic is contained and reported).
    #[napi(js_name = "_injectPanic")]
    pub fn inject_panic(&self) -> Result<(), Code> {
        self.handle.inject_panic().map_err(js_err)
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

// QR pairing secret and proof (SPEC.md §7.1).
pub mod qr;
