//! The owner's commands and the control stream: draining the command
//! channel, queueing frames, starting shutdown, and reading/writing stream 0.

use super::Io;
use crate::conn::{Chunk, Conn, OutChunk, CONTROL_STREAM};
use crate::{Command, Event};
use cribcall_core::codes;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a close waits for the frames queued before it.
const CLOSE_FLUSH_DEADLINE: Duration = Duration::from_secs(2);

/// A queued frame (the rest of it) shorter than this is written to quiche
/// together with the short frames queued after it.
const GATHER_BELOW: usize = 4096;
/// The most bytes gathered into one write.
const GATHER_MAX: usize = 64 * 1024;

/// Copies the unsent bytes of the short frames at the front of `outq` into
/// `scratch`, up to [`GATHER_MAX`]; false (and `scratch` untouched) when the
/// front frame is long or alone, which is written from where it is.
fn gather(scratch: &mut Vec<u8>, outq: &VecDeque<OutChunk>) -> bool {
    let rest = |oc: &OutChunk| oc.chunk.bytes().len() - oc.offset;
    if outq.len() < 2 || outq.front().is_none_or(|f| rest(f) >= GATHER_BELOW) {
        return false;
    }
    scratch.clear();
    for oc in outq {
        let bytes = &oc.chunk.bytes()[oc.offset..];
        if bytes.len() >= GATHER_BELOW || scratch.len() + bytes.len() > GATHER_MAX {
            break;
        }
        scratch.extend_from_slice(bytes);
    }
    true
}

/// Marks `n` bytes from the front of `outq` as handed to quiche; returns how
/// many frames that completed (they leave the queue).
fn advance(outq: &mut VecDeque<OutChunk>, mut n: usize) -> u64 {
    let mut frames = 0;
    while n > 0 {
        let Some(front) = outq.front_mut() else {
            break;
        };
        let rest = front.chunk.bytes().len() - front.offset;
        if n < rest {
            front.offset += n;
            break;
        }
        n -= rest;
        outq.pop_front();
        frames += 1;
    }
    frames
}

/// Hands the frames queued on `c` to quiche's stream 0 as far as its buffer
/// takes them (short ones gathered, see [`gather`]); returns the bytes and
/// the frames handed over. A stream error closes the connection.
pub(super) fn write_queued(c: &mut Conn, scratch: &mut Vec<u8>) -> (usize, u64) {
    let (mut bytes, mut frames) = (0usize, 0u64);
    while let Some(front) = c.outq.front() {
        let offered = if gather(scratch, &c.outq) {
            scratch.as_slice()
        } else {
            &front.chunk.bytes()[front.offset..]
        };
        let len = offered.len();
        match c.q.stream_send(CONTROL_STREAM, offered, false) {
            Ok(n) => {
                bytes += n;
                frames += advance(&mut c.outq, n);
                if n < len {
                    break; // stream buffer full
                }
            }
            Err(quiche::Error::Done) => break,
            Err(e) => {
                c.app_close(
                    codes::INTERNAL_ERROR,
                    &format!("control stream write failed: {e}"),
                    None,
                );
                break;
            }
        }
    }
    (bytes, frames)
}

/// The owner asked to close `c`: at once when nothing is queued (or the
/// owner never saw the connection), else once the frames queued before the
/// close have gone out ([`close_if_flushed`]), at the latest at `now` +
/// [`CLOSE_FLUSH_DEADLINE`].
pub(super) fn request_close(c: &mut Conn, code: u64, reason: String, now: Instant) {
    if c.outq.is_empty() || !c.reported {
        c.app_close(code, &reason, None);
    } else if c.pending_close.is_none() {
        c.pending_close = Some((code, reason, now + CLOSE_FLUSH_DEADLINE));
    }
}

/// After a flush: a close waiting for the queued frames happens now if they
/// are all handed over and the peer has acknowledged all of stream 0 — quiche
/// sends no stream data once closing, so bytes still in its buffer (beyond the
/// congestion window, or lost and due again) would be dropped. True if it did.
pub(super) fn close_if_flushed(c: &mut Conn) -> bool {
    // Cheapest first: this runs after every flush of every connection.
    if c.pending_close.is_none() || !c.outq.is_empty() || !c.q.stream_send_acked(CONTROL_STREAM) {
        return false;
    }
    match c.pending_close.take() {
        Some((code, reason, _)) => {
            c.app_close(code, &reason, None);
            true
        }
        None => false,
    }
}

/// Bytes read from one connection per loop turn, so a fast peer cannot
/// starve the others and a congested owner is noticed within one turn.
const READ_BUDGET_PER_TURN: usize = 256 * 1024;

impl Io {
    pub(super) fn drain_commands(&mut self) {
        self.shared.wake_pending.store(false, Ordering::Release);
        loop {
            let cmd = match self.rx.try_recv() {
                Ok(c) => c,
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    // The handle is gone: nobody can close us any more.
                    self.begin_shutdown();
                    break;
                }
            };
            match cmd {
                Command::Connect {
                    conn_id,
                    addr,
                    fingerprint,
                } => self.connect(conn_id, addr, fingerprint),
                Command::Send { conn_id, frame } => {
                    self.enqueue(conn_id, Chunk::Owned(frame));
                }
                Command::Broadcast { conn_ids, frame } => {
                    for id in conn_ids {
                        self.enqueue(id, Chunk::Shared(frame.clone()));
                    }
                }
                Command::Close {
                    conn_id,
                    code,
                    reason,
                } => {
                    self.sched.mark(conn_id);
                    if let Some(c) = self.conns.get_mut(&conn_id) {
                        request_close(c, code, reason, Instant::now());
                    }
                }
                Command::Shutdown => self.begin_shutdown(),
                Command::Panic => panic!("panic injected by a test"),
            }
        }
    }

    pub(super) fn enqueue(&mut self, conn_id: u32, chunk: Chunk) {
        match self.conns.get_mut(&conn_id) {
            Some(c) if c.local_close.is_none() && c.pending_close.is_none() && !c.q.is_closed() => {
                c.outq.push_back(OutChunk { chunk, offset: 0 });
                self.sched.mark(conn_id);
            }
            Some(c) => {
                let n = chunk.bytes().len();
                let _ = c
                    .shared
                    .queued
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                        Some(q.saturating_sub(n))
                    });
            }
            None => {}
        }
    }

    fn begin_shutdown(&mut self) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        self.shared.listening.store(false, Ordering::Release);
        for c in self.conns.values_mut() {
            c.app_close(codes::OK, "endpoint closed", None);
            self.sched.mark(c.id);
        }
    }

    /// Reads stream 0 within the turn's budget and decodes its frames.
    pub(super) fn read_control_stream(&mut self, id: u32) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let mut budget = READ_BUDGET_PER_TURN;
        while let Some(sid) = c.q.stream_readable_next() {
            if sid != CONTROL_STREAM {
                // Cannot happen within our stream limits; refuse anything else.
                c.app_close(codes::PROTOCOL_ERROR, "only stream 0 is allowed", None);
                return;
            }
            c.stream_open = true;
            while budget > 0 {
                let (n, fin) = match c.q.stream_recv(sid, &mut self.read_buf) {
                    Ok(v) => v,
                    Err(quiche::Error::Done) => break,
                    Err(quiche::Error::StreamReset(_)) => {
                        c.app_close(
                            codes::PROTOCOL_ERROR,
                            "control stream reset by the peer",
                            None,
                        );
                        return;
                    }
                    Err(_) => break,
                };
                budget = budget.saturating_sub(n);
                self.shared
                    .stats
                    .stream_bytes_received
                    .fetch_add(n as u64, Ordering::Relaxed);
                let events = &mut self.events;
                let stats = &self.shared.stats;
                let res = c.decoder.push(&self.read_buf[..n], |payload| {
                    stats.frames_received.fetch_add(1, Ordering::Relaxed);
                    events.push(Event::Frame {
                        conn_id: id,
                        payload,
                    });
                });
                if let Err(e) = res {
                    c.app_close(codes::PROTOCOL_ERROR, &e.to_string(), None);
                    return;
                }
                // Server side: a frame that has begun must complete within
                // the frame timeout. Not on the client side: there the peer is
                // the pinned monitor, and its retransmissions after a pause of
                // ours (a stopped or starved process, a phone's radio asleep)
                // may take longer than the timeout without any ill intent.
                if c.decoder.is_idle() {
                    c.frame_started = None;
                } else if c.frame_started.is_none() && c.is_server {
                    c.frame_started = Some(Instant::now());
                }
                if fin {
                    if c.decoder.is_idle() {
                        c.app_close(codes::OK, "control stream finished by the peer", None);
                    } else {
                        c.app_close(
                            codes::PROTOCOL_ERROR,
                            "control stream ended inside a frame",
                            None,
                        );
                    }
                    return;
                }
            }
            if budget == 0 {
                self.more_to_read = true;
                self.sched.mark(id); // the rest next turn
                break;
            }
        }
    }

    /// Moves queued frames into quiche's stream buffer as capacity allows.
    /// Small frames queued together (a broadcast burst, messages sent in one
    /// tick) go in one `stream_send` (see [`gather`]): quiche allocates a
    /// buffer per call, and a monitor fanning NOISE_EVENTs out to many
    /// listeners otherwise spends much of its IO thread in malloc and free.
    pub(super) fn write_stream(&mut self, id: u32) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if !c.reported || !c.stream_open || c.local_close.is_some() || c.q.is_closed() {
            return;
        }
        let (bytes, frames) = write_queued(c, &mut self.scratch);
        if bytes > 0 {
            let stats = &self.shared.stats;
            stats
                .stream_bytes_sent
                .fetch_add(bytes as u64, Ordering::Relaxed);
            stats.frames_sent.fetch_add(frames, Ordering::Relaxed);
            let _ = c
                .shared
                .queued
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                    Some(q.saturating_sub(bytes))
                });
        }
        if c.outq.is_empty()
            && c.shared.queued.load(Ordering::Acquire) == 0
            && c.shared.need_drain.swap(false, Ordering::AcqRel)
        {
            self.events.push(Event::Drain { conn_id: id });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Queued frames as (length, bytes already sent).
    type Frames = [(usize, usize)];

    fn queue(frames: &Frames) -> VecDeque<OutChunk> {
        // (length, bytes already sent); frame i is filled with byte i.
        frames
            .iter()
            .enumerate()
            .map(|(i, &(len, offset))| OutChunk {
                chunk: Chunk::Owned(vec![i as u8; len]),
                offset,
            })
            .collect()
    }

    #[test]
    fn gather_takes_the_unsent_bytes_of_the_short_frames_in_front() {
        // (queue, gathered?, gathered length)
        let cases: &[(&Frames, bool, usize)] = &[
            (&[(100, 0)], false, 0),                      // alone: written in place
            (&[(5000, 0), (10, 0)], false, 0),            // long front frame
            (&[(100, 0), (200, 0), (300, 0)], true, 600), // all short
            (&[(100, 40), (200, 0)], true, 260),          // partly sent front
            (&[(100, 0), (5000, 0), (10, 0)], true, 100), // stops at a long frame
            (&[(4000, 0); 20], true, 16 * 4000),          // at most GATHER_MAX
        ];
        let mut scratch = Vec::new();
        for &(frames, gathered, len) in cases {
            let q = queue(frames);
            assert_eq!(gather(&mut scratch, &q), gathered, "{frames:?}");
            if gathered {
                assert_eq!(scratch.len(), len, "{frames:?}");
                let first = frames[0];
                assert!(scratch[..first.0 - first.1].iter().all(|&b| b == 0));
            }
        }
    }

    #[test]
    fn advance_pops_what_quiche_took_and_keeps_the_offset_of_a_partial_frame() {
        let mut q = queue(&[(100, 40), (200, 0), (300, 0)]);
        assert_eq!(advance(&mut q, 60), 1);
        assert_eq!((q.len(), q[0].offset), (2, 0));
        assert_eq!(advance(&mut q, 250), 1);
        assert_eq!((q.len(), q[0].offset), (1, 50));
        assert_eq!(advance(&mut q, 250), 1);
        assert!(q.is_empty());
        assert_eq!(advance(&mut q, 10), 0);
    }
}
