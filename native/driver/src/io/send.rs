//! Datagrams out: flushing connections (in GSO batches where the socket
//! takes them), one-off datagrams, and the queue of datagrams the socket
//! refused until it is writable again.

use super::{Io, SOCKET};
use crate::udp;
use cribcall_core::limits;
use mio::Interest;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Io {
    pub(super) fn flush(&mut self, ids: &[u32]) {
        for (k, &id) in ids.iter().enumerate() {
            self.write_stream(id);
            let mut sent = self.flush_conn(id);
            // A pending close goes out right after the frames queued before it.
            if sent {
                if let Some(c) = self.conns.get_mut(&id) {
                    if c.outq.is_empty() {
                        if let Some((code, reason, _)) = c.pending_close.take() {
                            c.app_close(code, &reason, None);
                            sent = self.flush_conn(id);
                        }
                    }
                }
            }
            if !sent {
                // The socket is full: these go on once it is writable.
                self.blocked_ids.extend_from_slice(&ids[k..]);
                break;
            }
        }
    }

    /// Sends every packet quiche has for this connection, in GSO batches where
    /// the socket takes them. False if the socket blocked.
    pub(super) fn flush_conn(&mut self, id: u32) -> bool {
        if !self.blocked.is_empty() {
            return false;
        }
        let max = limits::MAX_SEND_UDP_PAYLOAD;
        let room = if self.offload.gso {
            self.send_buf.len()
        } else {
            max
        };
        // The batch being filled: bytes, segment size, packets, address.
        let (mut len, mut segment, mut count, mut to) = (0usize, 0usize, 0usize, None);
        while let Some(c) = self.conns.get_mut(&id) {
            let (n, info) = match c.q.send(&mut self.send_buf[len..len + max]) {
                Ok(v) => v,
                // Done, or quiche closed it (reaped below).
                Err(_) => break,
            };
            c.last_send = Instant::now();
            let fits = to == Some(info.to) && n <= segment;
            if to.is_some() && !fits {
                // Another address, or larger than the batch's segments: the
                // batch goes out and this packet starts the next one.
                if !self.send_batch(len, segment, count, to) {
                    self.blocked
                        .push_back((self.send_buf[len..len + n].to_vec(), info.to, n));
                    return false;
                }
                self.send_buf.copy_within(len..len + n, 0);
                (len, segment, count, to) = (0, 0, 0, None);
            }
            if to.is_none() {
                (segment, to) = (n, Some(info.to));
            }
            len += n;
            count += 1;
            // A shorter packet ends a batch (only the last segment may be short).
            let full = n < segment || count == udp::MAX_SEGMENTS || len + max > room;
            if full {
                if !self.send_batch(len, segment, count, to) {
                    return false;
                }
                (len, segment, count, to) = (0, 0, 0, None);
            }
        }
        len == 0 || self.send_batch(len, segment, count, to)
    }

    /// Sends `send_buf[..len]` (`count` packets of `segment` bytes, the last
    /// maybe shorter) to `to`. False if the socket blocked (the batch is kept).
    fn send_batch(
        &mut self,
        len: usize,
        segment: usize,
        count: usize,
        to: Option<SocketAddr>,
    ) -> bool {
        let Some(to) = to else {
            return true;
        };
        match udp::send(
            &self.socket,
            &mut self.offload,
            &self.send_buf[..len],
            segment,
            to,
        ) {
            Ok(calls) => {
                let stats = &self.shared.stats;
                stats
                    .packets_sent
                    .fetch_add(count as u64, Ordering::Relaxed);
                stats.send_calls.fetch_add(calls, Ordering::Relaxed);
                true
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                self.blocked
                    .push_back((self.send_buf[..len].to_vec(), to, segment));
                self.want_writable(true);
                false
            }
            // Unreachable or similar: quiche's loss recovery and timeouts deal with it.
            Err(_) => true,
        }
    }

    pub(super) fn send_datagram(&mut self, pkt: &[u8], to: SocketAddr) {
        if !self.blocked.is_empty() {
            return;
        }
        if let Err(e) = self.socket.send_to(pkt, to) {
            if e.kind() == ErrorKind::WouldBlock {
                self.blocked.push_back((pkt.to_vec(), to, pkt.len()));
                self.want_writable(true);
            }
        }
    }

    pub(super) fn flush_blocked(&mut self) {
        while let Some((pkt, to, segment)) = self.blocked.pop_front() {
            match udp::send(&self.socket, &mut self.offload, &pkt, segment, to) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.blocked.push_front((pkt, to, segment));
                    return;
                }
                _ => {}
            }
        }
        self.want_writable(false);
    }

    fn want_writable(&mut self, on: bool) {
        if self.writable_interest == on {
            return;
        }
        let interest = if on {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if self
            .poll
            .registry()
            .reregister(&mut self.socket, SOCKET, interest)
            .is_ok()
        {
            self.writable_interest = on;
        }
    }
}
