//! Defaults and bounds. Every buffer a peer can grow is bounded by one of these.

use std::time::Duration;

/// Default handshake deadline.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default QUIC idle timeout.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default cap on connections per endpoint (incoming and outgoing).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default cap on bytes queued natively for sending on one connection.
pub const DEFAULT_MAX_SEND_BUFFER: usize = 16 << 20;
/// Initial per-stream receive window we advertise.
pub const STREAM_WINDOW: u64 = 256 * 1024;
/// Initial connection receive window we advertise.
pub const CONNECTION_WINDOW: u64 = 1 << 20;
/// Largest window quiche may auto-tune a stream to (bounds peer-growable memory).
pub const MAX_STREAM_WINDOW: u64 = 4 << 20;
/// Largest window quiche may auto-tune a connection to.
pub const MAX_CONNECTION_WINDOW: u64 = 8 << 20;
/// Events the IO thread may have handed to JS that JS has not processed yet,
/// before it stops reading streams (QUIC flow control then pushes back).
pub const EVENT_HIGH_WATER: usize = 8192;
/// Payload bytes likewise.
pub const EVENT_BYTES_HIGH_WATER: usize = 32 << 20;
/// Size of a UDP receive buffer.
pub const MAX_DATAGRAM: usize = 65_535;
/// Largest UDP payload we send.
pub const MAX_SEND_UDP_PAYLOAD: usize = 1350;
/// Length of the connection IDs we issue.
pub const CONN_ID_LEN: usize = 16;
