//! Defaults and bounds. Every buffer a peer can grow is bounded by one of these.

use std::time::Duration;

/// Default handshake deadline.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default QUIC idle timeout.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default cap on connections per endpoint (incoming and outgoing): one monitor
/// serving 10,000 listeners (README, Transport: about 42 KiB each).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_240;
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
/// Largest UDP payload we send where the path MTU is not discovered (the
/// socket cannot set Don't Fragment): it fits any LAN's 1,500-byte MTU, IPv6
/// included.
pub const MAX_SEND_UDP_PAYLOAD: usize = 1350;
/// Largest UDP payload path MTU discovery (DPLPMTUD, RFC 9000 §14.3) probes
/// for — quiche's largest packet (its length is a 2-byte varint). On a LAN
/// with a 1,500-byte MTU it settles at 1,472 bytes (IPv6: 1,452); on loopback
/// and jumbo-frame LANs higher. Never above the peer's max_udp_payload_size.
pub const PMTUD_MAX_UDP_PAYLOAD: usize = 16_383;
/// Length of the connection IDs we issue.
pub const CONN_ID_LEN: usize = 16;
/// Default keep-alive: a QUIC PING after this long without sending, so a quiet
/// channel never reaches the idle timeout and a NAT mapping stays fresh.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(5);
/// Unsolicited replies (stateless resets, version negotiation, refusals of a
/// full endpoint) sent per second, endpoint-wide (and the burst allowed).
pub const UNSOLICITED_REPLIES_PER_SEC: u32 = 100;
/// Default cap on handshakes in progress (server side), apart from established
/// connections: when full, the oldest handshake of the source holding the
/// most gives way.
pub const DEFAULT_MAX_HALF_OPEN: usize = 128;
/// Default: Retry (address validation) once this many handshakes are in
/// progress; below it, clients skip the extra round trip.
pub const DEFAULT_RETRY_THRESHOLD: usize = 16;
/// How long a Retry token stays valid.
pub const RETRY_TOKEN_LIFETIME: Duration = Duration::from_secs(10);
/// Default lifetime of a pairing-only connection (an unknown certificate
/// admitted while pairing is open): it must finish pairing within it.
pub const DEFAULT_PAIRING_DEADLINE: Duration = Duration::from_secs(180);
/// Default cap on pairing-only connections at once.
pub const DEFAULT_MAX_PAIRING_CONNECTIONS: usize = 8;
/// Default: a frame must be complete this long after its first byte arrived.
pub const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// Socket buffer size asked of the kernel (it may grant less).
pub const SOCKET_BUFFER: usize = 4 << 20;
/// A send is refused when the queue would exceed max_send_buffer; 'drain'
/// is signalled once the queue is empty again after a refusal or after it
/// rose above this fraction (1/DRAIN_FRACTION) of max_send_buffer.
pub const DRAIN_FRACTION: usize = 2;

/// A flush of at most this many bytes is sent from the owner's thread when the
/// IO thread is idle (one hand-off less per message); more goes to the IO thread.
pub const INLINE_SEND_MAX_BYTES: usize = 64 * 1024;
