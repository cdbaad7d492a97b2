//! Endpoint settings and their defaults.

use crate::DriverError;
use cribcall_core::framing;
use cribcall_core::limits;
use cribcall_core::tls::LocalCredentials;
use std::net::SocketAddr;
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

    /// Refuses settings the endpoint cannot run with: a frame limit outside
    /// what framing allows, and zero capacities or deadlines.
    pub(crate) fn validate(&self) -> Result<(), DriverError> {
        framing::validate_max_payload(self.max_frame_payload)
            .map_err(DriverError::InvalidArgument)?;
        if self.max_connections == 0 {
            return Err(DriverError::InvalidArgument(
                "maxConnections must be at least 1".into(),
            ));
        }
        if self.max_half_open == 0 || self.max_pairing_connections == 0 {
            return Err(DriverError::InvalidArgument(
                "maxHalfOpen and maxPairingConnections must be at least 1".into(),
            ));
        }
        if self.frame_timeout.is_zero() || self.pairing_deadline.is_zero() {
            return Err(DriverError::InvalidArgument(
                "frameTimeoutMs and pairingDeadlineMs must be positive".into(),
            ));
        }
        Ok(())
    }
}
