//! Datagrams out: flushing connections (in GSO batches where the socket
//! takes them), one-off datagrams, and the queue of datagrams the socket
//! refused until it is writable again.

use super::setup::max_payload;
use super::stream::close_if_flushed;
use super::{Io, SOCKET};
use crate::conn::{Chunk, OutChunk};
use crate::udp;
use mio::Interest;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// The GSO batch being filled in `send_buf`: packets of `segment` bytes (the
/// last may be shorter) to one address. It may hold packets of several
/// connections (a fan-out to connections behind one peer socket).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Batch {
    len: usize,
    segment: usize,
    count: usize,
    to: Option<SocketAddr>,
}

impl Io {
    pub(super) fn flush(&mut self, ids: &[u32]) {
        for (k, &id) in ids.iter().enumerate() {
            self.write_stream(id);
            let mut sent = self.flush_conn(id);
            // A pending close goes out right after the frames queued before it.
            if sent && self.conns.get_mut(&id).is_some_and(|c| close_if_flushed(c)) {
                sent = self.flush_conn(id);
            }
            if !sent {
                // The socket is full: these go on once it is writable.
                self.blocked_ids.extend_from_slice(&ids[k..]);
                break;
            }
        }
        self.finish_batch();
    }

    /// Appends every packet quiche has for this connection to the batch,
    /// sending it whenever it is full or the next packet does not fit it (the
    /// caller sends the rest with `finish_batch`). False if the socket blocked.
    pub(super) fn flush_conn(&mut self, id: u32) -> bool {
        if !self.blocked.is_empty() {
            return false;
        }
        // The buffer quiche may fill (it limits packets to the path's size),
        // and the bytes a GSO batch may hold.
        let max = max_payload(self.pmtud);
        let room = if self.offload.gso {
            udp::MAX_BATCH_BYTES
        } else {
            0
        };
        while let Some(c) = self.conns.get_mut(&id) {
            let b = self.batch;
            let (n, info) = match c.q.send(&mut self.send_buf[b.len..b.len + max]) {
                Ok(v) => v,
                // Done, or quiche closed it (reaped below).
                Err(_) => break,
            };
            // The size of this connection's next packet at most.
            let next = c.q.max_send_udp_payload_size().min(max);
            c.last_send = Instant::now();
            let fits = b.to == Some(info.to) && n <= b.segment;
            if b.to.is_some() && !fits {
                // Another address, or larger than the batch's segments: the
                // batch goes out and this packet starts the next one.
                if !self.send_batch(b) {
                    self.batch = Batch::default();
                    self.blocked
                        .push_back((self.send_buf[b.len..b.len + n].to_vec(), info.to, n));
                    return false;
                }
                self.send_buf.copy_within(b.len..b.len + n, 0);
                self.batch = Batch::default();
            }
            let b = &mut self.batch;
            if b.to.is_none() {
                (b.segment, b.to) = (n, Some(info.to));
            }
            b.len += n;
            b.count += 1;
            // A shorter packet ends a batch (only the last segment may be short).
            let full = n < b.segment || b.count == udp::MAX_SEGMENTS || b.len + next > room;
            if full && !self.finish_batch() {
                return false;
            }
        }
        true
    }

    /// Sends what the batch holds. False if the socket blocked (the batch is
    /// kept in `blocked`).
    pub(super) fn finish_batch(&mut self) -> bool {
        let b = std::mem::take(&mut self.batch);
        if b.len == 0 {
            return true;
        }
        if let (false, Some(to)) = (self.blocked.is_empty(), b.to) {
            // Datagrams wait already: this batch goes after them, in order.
            self.blocked
                .push_back((self.send_buf[..b.len].to_vec(), to, b.segment));
            return false;
        }
        self.send_batch(b)
    }

    /// Sends the batch `b` from `send_buf`. False if the socket blocked (the
    /// batch is kept in `blocked`).
    fn send_batch(&mut self, b: Batch) -> bool {
        let Batch {
            len,
            segment,
            count,
            to,
        } = b;
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
            .registry
            .reregister(&mut self.socket, SOCKET, interest)
            .is_ok()
        {
            self.writable_interest = on;
        }
    }
}

impl Io {
    /// Frames sent on the owner's thread, straight onto the wire while the IO
    /// thread sleeps (no hand-off to it, no wake-up on the way out). A frame
    /// for a connection that is not ready for it (not reported yet, stream not
    /// open, closing) is queued as the IO thread would have. Returns whether
    /// the IO thread must still be woken: something to report, a deadline
    /// earlier than the one it sleeps until, work left for it.
    pub(crate) fn send_inline(&mut self, frames: Vec<(u32, Vec<u8>)>) -> bool {
        let mut ids: Vec<u32> = Vec::new();
        for (conn_id, frame) in frames {
            let chunk = Chunk::Owned(frame);
            match self.conns.get_mut(&conn_id) {
                Some(c)
                    if c.reported
                        && c.stream_open
                        && c.local_close.is_none()
                        && c.pending_close.is_none()
                        && !c.q.is_closed()
                        && !c.q.is_draining() =>
                {
                    c.outq.push_back(OutChunk { chunk, offset: 0 });
                    if !ids.contains(&conn_id) {
                        ids.push(conn_id);
                    }
                }
                // Marks the connection for the IO thread (or gives the bytes back).
                _ => self.enqueue(conn_id, chunk),
            }
        }
        if !self.blocked.is_empty() {
            // The socket is full: the IO thread sends once it is writable.
            for id in ids {
                self.sched.mark(id);
            }
            return true;
        }
        self.flush(&ids);
        self.reschedule(&ids);
        let earlier = match (self.sched.next_deadline(), self.planned_wake) {
            (Some(next), Some(planned)) => next < planned,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let unsettled = ids.iter().any(|id| {
            self.conns
                .get(id)
                .is_none_or(|c| !c.outq.is_empty() || c.q.is_closed() || c.q.is_draining())
        });
        earlier
            || unsettled
            || !self.events.is_empty()
            || !self.blocked.is_empty()
            || !self.blocked_ids.is_empty()
            || self.sched.has_dirty()
    }
}
