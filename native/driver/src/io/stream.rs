//! The owner's commands and the control stream: draining the command
//! channel, queueing frames, starting shutdown, and reading/writing stream 0.

use super::Io;
use crate::conn::{Chunk, OutChunk, CONTROL_STREAM};
use crate::{Command, Event};
use cribcall_core::codes;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a close waits for the frames queued before it.
const CLOSE_FLUSH_DEADLINE: Duration = Duration::from_secs(2);

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
                        if c.outq.is_empty() || !c.reported {
                            c.app_close(code, &reason, None);
                        } else if c.pending_close.is_none() {
                            // Let the frames queued before this close go first.
                            c.pending_close =
                                Some((code, reason, Instant::now() + CLOSE_FLUSH_DEADLINE));
                        }
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
    pub(super) fn write_stream(&mut self, id: u32) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if !c.reported || !c.stream_open || c.local_close.is_some() || c.q.is_closed() {
            return;
        }
        while let Some(front) = c.outq.front_mut() {
            let bytes = &front.chunk.bytes()[front.offset..];
            match c.q.stream_send(CONTROL_STREAM, bytes, false) {
                Ok(n) => {
                    self.shared
                        .stats
                        .stream_bytes_sent
                        .fetch_add(n as u64, Ordering::Relaxed);
                    front.offset += n;
                    let _ =
                        c.shared
                            .queued
                            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                                Some(q.saturating_sub(n))
                            });
                    if front.offset == front.chunk.bytes().len() {
                        c.outq.pop_front();
                        self.shared
                            .stats
                            .frames_sent
                            .fetch_add(1, Ordering::Relaxed);
                    } else {
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
        if c.outq.is_empty()
            && c.shared.queued.load(Ordering::Acquire) == 0
            && c.shared.need_drain.swap(false, Ordering::AcqRel)
        {
            self.events.push(Event::Drain { conn_id: id });
        }
    }
}
