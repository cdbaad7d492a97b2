//! A connection whose handshake completed: admission (ALPN, the peer's
//! certificate, the cap on pairing-only connections) and its report to the
//! owner as 'connection' (server) or 'connected' (client).

use super::Io;
use crate::conn::Conn;
use crate::{Event, Shared};
use cribcall_core::codes;
use cribcall_core::identity::{fingerprint_bytes, fingerprint_hex};
use cribcall_core::tls;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// The peer of a completed handshake, as reported.
struct Peer {
    fingerprint: String,
    fingerprint_bytes: [u8; 32],
    /// Its certificate DER exactly as received in the handshake.
    cert: Vec<u8>,
}

impl Io {
    /// Admission after the handshake, then 'connection' / 'connected'.
    pub(super) fn report_ready(&mut self, id: u32) {
        let now = Instant::now();
        self.leave_half_open(id);
        let Some(peer) = self.checked_peer(id) else {
            return;
        };
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        c.peer_fp = Some(peer.fingerprint_bytes);
        let is_server = c.is_server;
        let known = is_server && self.shared.is_known(&peer.fingerprint_bytes);
        if is_server && !known && !self.admit_pairing_only(id, now) {
            return;
        }
        self.emit_ready(id, peer, known);
    }

    /// A completed server handshake no longer counts as in progress.
    fn leave_half_open(&mut self, id: u32) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.half_open {
            c.half_open = false;
            self.half_open -= 1;
        }
        self.publish_half_open();
    }

    /// The peer, if the handshake agreed on our ALPN and the peer presented a
    /// certificate; otherwise the connection is closed (PROTOCOL_ERROR).
    fn checked_peer(&mut self, id: u32) -> Option<Peer> {
        let c = self.conns.get_mut(&id)?;
        if c.q.application_proto() != tls::ALPN {
            c.app_close(codes::PROTOCOL_ERROR, "ALPN mismatch", None);
            return None;
        }
        let Some(cert) = c.q.peer_cert() else {
            c.app_close(codes::PROTOCOL_ERROR, "no peer certificate", None);
            return None;
        };
        Some(Peer {
            fingerprint: fingerprint_hex(cert),
            fingerprint_bytes: fingerprint_bytes(cert),
            cert: cert.to_vec(),
        })
    }

    /// Server, a client with an unknown certificate: admitted as
    /// pairing-only (closed at the pairing deadline unless paired by then)
    /// while fewer than maxPairingConnections are; otherwise refused before
    /// HANDSHAKE_DONE goes out. Returns whether it was admitted.
    fn admit_pairing_only(&mut self, id: u32, now: Instant) -> bool {
        let max_pairing = self.config.max_pairing_connections;
        if self.pairing_only >= max_pairing {
            self.pairing_only = recount_pairing_only(&mut self.conns, &self.shared);
        }
        let Some(c) = self.conns.get_mut(&id) else {
            return false;
        };
        if self.pairing_only >= max_pairing {
            // Closed before HANDSHAKE_DONE goes out: the client sees a
            // failed handshake (code 5, busy), never a connection.
            debug_log!("conn {id}: refused: {max_pairing} pairing-only connections already");
            c.app_close(
                codes::INTERNAL_ERROR,
                "busy: too many pairing connections",
                None,
            );
            self.shared
                .stats
                .handshakes_refused
                .fetch_add(1, Ordering::Relaxed);
            return false;
        }
        c.pairing_only = true;
        c.pairing_deadline = Some(now + self.config.pairing_deadline);
        self.pairing_only += 1;
        true
    }

    /// Marks the connection reported, counts it and emits 'connection'
    /// (server) or 'connected' (client).
    fn emit_ready(&mut self, id: u32, peer: Peer, known: bool) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        debug_log!(
            "conn {id}: {} with {} (peer {})",
            if c.is_server { "accepted" } else { "connected" },
            c.remote,
            &peer.fingerprint[..16]
        );
        c.reported = true;
        self.shared
            .stats
            .connections
            .fetch_add(1, Ordering::Relaxed);
        let event = if c.is_server {
            Event::Connection {
                conn_id: id,
                peer_fingerprint: peer.fingerprint,
                peer_cert: peer.cert,
                peer_known: known,
                remote: c.remote,
            }
        } else {
            Event::Connected {
                conn_id: id,
                peer_fingerprint: peer.fingerprint,
                peer_cert: peer.cert,
                remote: c.remote,
            }
        };
        self.events.push(event);
    }
}

/// Counts the pairing-only connections still open whose peer is not known by
/// now (a connection that completed pairing stops counting).
fn recount_pairing_only(conns: &mut HashMap<u32, Box<Conn>>, shared: &Shared) -> usize {
    let mut n = 0;
    for c in conns.values_mut() {
        if !c.pairing_only || c.done {
            continue;
        }
        if c.peer_fp.is_some_and(|fp| shared.is_known(&fp)) {
            c.pairing_only = false;
            c.pairing_deadline = None;
        } else {
            n += 1;
        }
    }
    n
}
