//! Datagrams in: draining the socket (GRO batches included), routing each
//! datagram by destination connection ID, and answering short-header packets
//! for unknown connection IDs (stateless resets, both directions).

use super::Io;
use crate::udp;
use crate::Event;
use cribcall_core::limits;
use cribcall_core::reset as sreset;
use ring::rand::SecureRandom;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Io {
    pub(super) fn read_socket(&mut self) {
        loop {
            let buf = if self.offload.gro {
                &mut self.gro_buf
            } else {
                &mut self.recv_buf
            };
            let (len, from, segment) = match udp::recv(&self.socket, &self.offload, buf) {
                Ok(v) => v,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // ICMP errors surface here on some platforms; they are not fatal.
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    self.events.push(Event::Error {
                        code: "ERR_SOCKET",
                        message: format!("recv failed: {e}"),
                    });
                    break;
                }
            };
            self.shared.stats.recv_calls.fetch_add(1, Ordering::Relaxed);
            if !self.offload.gro {
                self.count_received(1);
                self.handle_datagram(len, from);
                continue;
            }
            // A GRO batch: datagrams of `segment` bytes (the last may be shorter).
            let mut at = 0;
            while at < len {
                let end = (at + segment.max(1)).min(len);
                let n = end - at;
                self.recv_buf[..n].copy_from_slice(&self.gro_buf[at..end]);
                self.count_received(1);
                self.handle_datagram(n, from);
                at = end;
            }
        }
    }

    fn count_received(&self, n: u64) {
        self.shared
            .stats
            .packets_received
            .fetch_add(n, Ordering::Relaxed);
    }

    fn handle_datagram(&mut self, len: usize, from: SocketAddr) {
        let hdr = match quiche::Header::from_slice(&mut self.recv_buf[..len], limits::CONN_ID_LEN) {
            Ok(h) => h,
            Err(_) => return, // not QUIC: drop
        };
        let conn_id = match self.cid_map.get(&hdr.dcid) {
            Some(id) => *id,
            None if hdr.ty == quiche::Type::Short => {
                self.unknown_short_packet(&hdr.dcid.clone().into_owned(), from, len);
                return;
            }
            None => match self.accept(&hdr, from, len) {
                Some(id) => id,
                None => return,
            },
        };
        self.recv_on(conn_id, from, len);
    }

    /// Feeds the datagram in `recv_buf` to one connection.
    fn recv_on(&mut self, conn_id: u32, from: SocketAddr, len: usize) {
        let local = self.local;
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        let info = quiche::RecvInfo { from, to: local };
        // quiche closes the connection itself on fatal errors; a single
        // undecryptable or duplicate packet is simply dropped.
        let _ = conn.q.recv(&mut self.recv_buf[..len], info);
        // Heard from the peer only if quiche authenticated a packet of it
        // (its count of packets received grew; one stats() call per datagram).
        let received = conn.q.stats().recv;
        if received > conn.recv_seen {
            conn.recv_seen = received;
            conn.last_recv = Instant::now();
        }
        conn.note_reset_after_recv();
        self.sched.mark(conn_id);
    }

    /// A short-header packet for a connection ID we do not know. It may be a
    /// stateless reset from the server of one of our client connections
    /// (RFC 9000 §10.3.1: its "connection ID" is random): each client
    /// connection to that address checks it against the server's token. Else,
    /// if we serve, the sender may be a client of a connection we lost (we
    /// restarted): we answer with a stateless reset so it learns at once.
    fn unknown_short_packet(
        &mut self,
        dcid: &quiche::ConnectionId<'static>,
        from: SocketAddr,
        len: usize,
    ) {
        let clients: Vec<u32> = self
            .conns
            .values()
            .filter(|c| !c.is_server && c.remote == from)
            .map(|c| c.id)
            .collect();
        if !clients.is_empty() {
            for id in clients {
                // recv decrypts in place: give each candidate the original bytes.
                let datagram = self.recv_buf[..len].to_vec();
                self.recv_on(id, from, len);
                self.recv_buf[..len].copy_from_slice(&datagram);
            }
            return;
        }
        if self.shutting_down || !self.shared.listening.load(Ordering::Acquire) {
            return;
        }
        let Some(n) = sreset::reset_len(len) else {
            return;
        };
        if !self.unsolicited_budget.allow(Instant::now()) {
            return;
        }
        let mut random = [0u8; sreset::PREFERRED_RESET_LEN];
        if self.rng.fill(&mut random).is_err() {
            return;
        }
        let mut pkt = [0u8; sreset::PREFERRED_RESET_LEN];
        if sreset::write_reset(&mut pkt[..n], &random, self.reset_key.token(dcid)) {
            debug_log!("stateless reset to {from} ({n} bytes)");
            self.shared
                .stats
                .stateless_resets_sent
                .fetch_add(1, Ordering::Relaxed);
            self.count_unsolicited();
            self.send_datagram(&pkt[..n], from);
        }
    }
}
