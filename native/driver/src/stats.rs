//! Endpoint counters: the atomics the IO thread bumps and the plain copy the
//! owner reads.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Counters readable from any thread.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicUsize,
    pub stateless_resets_sent: AtomicU64,
    pub stateless_resets_received: AtomicU64,
    pub handshakes_started: AtomicU64,
    pub handshakes_refused: AtomicU64,
    pub handshakes_retried: AtomicU64,
    pub invalid_tokens: AtomicU64,
    pub half_open: AtomicUsize,
    pub closed_by_deadline: AtomicU64,
    pub unsolicited_replies: AtomicU64,
    pub handshakes_rejected: AtomicU64,
    pub stream_bytes_received: AtomicU64,
    pub stream_bytes_sent: AtomicU64,
    pub frames_received: AtomicU64,
    pub frames_sent: AtomicU64,
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    pub send_calls: AtomicU64,
    pub recv_calls: AtomicU64,
    pub inline_flushes: AtomicU64,
    pub io_wakeups: AtomicU64,
}

/// A plain copy of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub connections: usize,
    /// Stateless resets sent for packets of unknown connections.
    pub stateless_resets_sent: u64,
    /// Connections ended by a stateless reset from the peer.
    pub stateless_resets_received: u64,
    /// Server handshakes started (a connection state was created).
    pub handshakes_started: u64,
    /// Handshakes refused for capacity (maxConnections, pairing-only cap) or
    /// given up to make room for a newer one (half-open cap).
    pub handshakes_refused: u64,
    /// Retry packets sent (address validation).
    pub handshakes_retried: u64,
    /// Initials dropped for a forged, foreign-address or expired Retry token.
    pub invalid_tokens: u64,
    /// Server handshakes in progress now.
    pub half_open: usize,
    /// Connections closed by a deadline (pairing deadline, frame timeout).
    pub closed_by_deadline: u64,
    /// Unsolicited replies sent: version negotiation, Retry, stateless
    /// resets, refusals.
    pub unsolicited_replies: u64,
    pub handshakes_rejected: u64,
    pub stream_bytes_received: u64,
    pub stream_bytes_sent: u64,
    pub frames_received: u64,
    pub frames_sent: u64,
    pub packets_received: u64,
    pub packets_sent: u64,
    /// System calls that sent packets (fewer than packets with GSO).
    pub send_calls: u64,
    /// System calls that received packets (fewer than packets with GRO).
    pub recv_calls: u64,
    /// Flushes whose frames went onto the wire from the owner's thread.
    pub inline_flushes: u64,
    /// Turns of the IO thread's loop: how often it woke (a datagram, a
    /// command, a timer).
    pub io_wakeups: u64,
}

impl Stats {
    /// A copy of the counters; `tls_rejected` (certificates the TLS verify
    /// callback refused) is added to `handshakes_rejected`.
    pub(crate) fn snapshot(&self, tls_rejected: u64) -> StatsSnapshot {
        let s = self;
        StatsSnapshot {
            connections: s.connections.load(Ordering::Relaxed),
            stateless_resets_sent: s.stateless_resets_sent.load(Ordering::Relaxed),
            stateless_resets_received: s.stateless_resets_received.load(Ordering::Relaxed),
            handshakes_started: s.handshakes_started.load(Ordering::Relaxed),
            handshakes_refused: s.handshakes_refused.load(Ordering::Relaxed),
            handshakes_retried: s.handshakes_retried.load(Ordering::Relaxed),
            invalid_tokens: s.invalid_tokens.load(Ordering::Relaxed),
            half_open: s.half_open.load(Ordering::Relaxed),
            closed_by_deadline: s.closed_by_deadline.load(Ordering::Relaxed),
            unsolicited_replies: s.unsolicited_replies.load(Ordering::Relaxed),
            handshakes_rejected: s.handshakes_rejected.load(Ordering::Relaxed) + tls_rejected,
            stream_bytes_received: s.stream_bytes_received.load(Ordering::Relaxed),
            stream_bytes_sent: s.stream_bytes_sent.load(Ordering::Relaxed),
            frames_received: s.frames_received.load(Ordering::Relaxed),
            frames_sent: s.frames_sent.load(Ordering::Relaxed),
            packets_received: s.packets_received.load(Ordering::Relaxed),
            packets_sent: s.packets_sent.load(Ordering::Relaxed),
            send_calls: s.send_calls.load(Ordering::Relaxed),
            recv_calls: s.recv_calls.load(Ordering::Relaxed),
            inline_flushes: s.inline_flushes.load(Ordering::Relaxed),
            io_wakeups: s.io_wakeups.load(Ordering::Relaxed),
        }
    }
}
