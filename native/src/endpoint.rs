//! The `NativeEndpoint` class: its options, its constructor (the option checks and
//! the event sink on a threadsafe function) and address parsing. Its other methods
//! are in `endpoint_methods.rs`.

use crate::events::NativeEventBatch;
use crate::{identity_err, invalid, js_err, Code};
use cribcall_core::tls::LocalCredentials;
use cribcall_driver::{
    batch, batch_cost, EndpointConfig, EndpointHandle, Event, EventSink, Releaser,
};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

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
    /// Connections per endpoint, default 10240 (about 42 KiB of memory per established connection).
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

pub(crate) fn parse_ip(host: &str) -> Result<IpAddr, Code> {
    let trimmed = host.trim_start_matches('[').trim_end_matches(']');
    trimmed.parse::<IpAddr>().map_err(|_| {
        invalid(format!(
            "host must be an IP address literal (resolve names first), got '{}'",
            host.chars().take(100).collect::<String>()
        ))
    })
}

pub(crate) fn port(p: u32) -> Result<u16, Code> {
    u16::try_from(p).map_err(|_| invalid(format!("port must be 0..65535, got {p}")))
}

/// A QUIC endpoint: one UDP socket and one IO thread. Use the TypeScript `Endpoint`.
#[napi]
pub struct NativeEndpoint {
    pub(crate) handle: Arc<EndpointHandle>,
}

#[napi]
impl NativeEndpoint {
    /// Binds the socket and starts the IO thread; `onEvents` receives event batches.
    #[napi(constructor)]
    pub fn new(
        options: NativeEndpointOptions,
        on_events: Function<'_, NativeEventBatch, ()>,
    ) -> Result<Self, Code> {
        let cfg = endpoint_config(options)?;
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
}

/// The driver's configuration from the JS options: the driver's defaults where
/// an option is omitted, `ERR_INVALID_ARG` for a value out of range.
fn endpoint_config(options: NativeEndpointOptions) -> Result<EndpointConfig, Code> {
    let ip = parse_ip(&options.host)?;
    let bind = SocketAddr::new(ip, port(options.port)?);
    let creds =
        LocalCredentials::from_pem(&options.cert_pem, &options.key_pem).map_err(identity_err)?;
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
    Ok(cfg)
}
