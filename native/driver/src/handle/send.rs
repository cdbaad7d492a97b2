//! Sending: frames reserve room in the connection's native send buffer, wait
//! in the outbox until a flush, and go onto the wire from the owner's thread
//! when the IO thread is idle, or through the command queue.

use super::EndpointHandle;
use crate::shared::{lock, Command, ConnShared};
use crate::DriverError;
use cribcall_core::framing;
use cribcall_core::limits;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Frames accepted and not yet flushed, in order, and their bytes.
#[derive(Default)]
pub(super) struct Outbox {
    frames: Vec<(u32, Vec<u8>)>,
    bytes: usize,
}

impl EndpointHandle {
    fn reserve(&self, conn_id: u32, len: usize) -> Result<(), DriverError> {
        let conn = lock(&self.shared.registry)
            .get(&conn_id)
            .cloned()
            .ok_or(DriverError::NotConnected(conn_id))?;
        self.reserve_on(&conn, len)
    }

    /// Reserves `len` bytes in one connection's send buffer.
    fn reserve_on(&self, conn: &ConnShared, len: usize) -> Result<(), DriverError> {
        // Only the owner's thread adds to `queued` (the IO thread subtracts),
        // so the check and the add cannot race with another add.
        let queued = conn.queued.load(Ordering::Acquire);
        if queued + len > self.max_send_buffer {
            conn.need_drain.store(true, Ordering::Release);
            return Err(DriverError::SendBufferFull {
                queued,
                max: self.max_send_buffer,
            });
        }
        let now = conn.queued.fetch_add(len, Ordering::AcqRel) + len;
        if now > self.max_send_buffer / limits::DRAIN_FRACTION {
            conn.need_drain.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Gives back a reservation whose command could not be queued.
    fn unreserve(&self, conn_id: u32, len: usize) {
        if let Some(conn) = lock(&self.shared.registry).get(&conn_id) {
            let _ = conn
                .queued
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                    Some(q.saturating_sub(len))
                });
        }
    }

    /// Sends one frame at once (`send_deferred` + `flush`). Returns the bytes
    /// now queued natively for the connection. A refused frame is not copied.
    pub fn send(&self, conn_id: u32, payload: &[u8]) -> Result<usize, DriverError> {
        let queued = self.send_deferred(conn_id, payload)?;
        self.flush();
        Ok(queued)
    }

    /// Accepts one frame into the outbox without waking anyone; it goes out at
    /// the next [`flush`](Self::flush) (or before any other command, so the
    /// order of everything the owner asked for is kept). An owner that sends
    /// several frames in one go (a JavaScript tick) flushes once after them,
    /// so they share packets. Returns the bytes now queued natively for the
    /// connection; a refused frame is not copied.
    pub fn send_deferred(&self, conn_id: u32, payload: &[u8]) -> Result<usize, DriverError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(DriverError::Closed);
        }
        let header = framing::frame_header(payload.len(), self.max_frame_payload)
            .map_err(DriverError::Frame)?;
        let len = framing::HEADER_LEN + payload.len();
        self.reserve(conn_id, len)?;
        let frame = framing::encode_frame_with_header(&header, payload);
        let pending = {
            let mut outbox = lock(&self.outbox);
            outbox.bytes += frame.len();
            outbox.frames.push((conn_id, frame));
            outbox.bytes
        };
        if pending > limits::INLINE_SEND_MAX_BYTES {
            // Bulk: the IO thread starts on it now, while the owner produces more.
            self.flush();
        }
        Ok(self.queued(conn_id))
    }

    /// Sends what the outbox holds. When the IO thread is not busy (its lock
    /// is free) and no command of ours waits for it, the frames go onto the
    /// wire from the calling thread: one thread hand-off and one wake-up less
    /// on the way out. Otherwise they are queued for the IO thread.
    pub fn flush(&self) {
        let outbox = std::mem::take(&mut *lock(&self.outbox));
        if outbox.frames.is_empty() {
            return;
        }
        if let Some(frames) = self.flush_inline(outbox) {
            self.queue_frames(frames);
            self.wake();
        }
    }

    /// The inline part of `flush`; gives the frames back when they must be queued.
    fn flush_inline(&self, outbox: Outbox) -> Option<Vec<(u32, Vec<u8>)>> {
        let Outbox { frames, bytes } = outbox;
        // Bulk goes to the IO thread, which sends it while the owner produces
        // more; the owner's thread only takes what is quick to send.
        if bytes > limits::INLINE_SEND_MAX_BYTES
            || self.shared.wake_pending.load(Ordering::Acquire)
            || self.shared.closed.load(Ordering::Acquire)
        {
            return Some(frames);
        }
        let Some(core) = self.core.upgrade() else {
            return Some(frames);
        };
        let Ok(mut io) = core.try_lock() else {
            return Some(frames);
        };
        match catch_unwind(AssertUnwindSafe(|| io.send_inline(frames))) {
            Ok(wake) => {
                drop(io);
                self.shared
                    .stats
                    .inline_flushes
                    .fetch_add(1, Ordering::Relaxed);
                if wake {
                    self.wake();
                }
            }
            Err(_) => {
                // The IO state may be half-updated: the endpoint ends.
                self.shared.inline_panicked.store(true, Ordering::Release);
                drop(io);
                self.shared.wake_now();
            }
        }
        None
    }

    /// Queues bytes on the control stream exactly as given, without framing
    /// or limits: for conformance tests that must produce hostile input.
    #[doc(hidden)]
    pub fn send_raw(&self, conn_id: u32, bytes: &[u8]) -> Result<usize, DriverError> {
        if bytes.is_empty() {
            return Err(DriverError::InvalidArgument("nothing to send".into()));
        }
        self.reserve(conn_id, bytes.len())?;
        self.command(Command::Send {
            conn_id,
            frame: bytes.to_vec(),
        })?;
        Ok(self.queued(conn_id))
    }

    /// Bytes queued natively for a connection (0 if unknown).
    pub fn queued(&self, conn_id: u32) -> usize {
        lock(&self.shared.registry)
            .get(&conn_id)
            .map(|c| c.queued.load(Ordering::Acquire))
            .unwrap_or(0)
    }

    /// Queues one frame, serialized once, on each connection. Connections that
    /// are not open or whose buffer is full are skipped. Returns how many got it.
    pub fn broadcast(&self, conn_ids: &[u32], payload: &[u8]) -> Result<usize, DriverError> {
        let header = framing::frame_header(payload.len(), self.max_frame_payload)
            .map_err(DriverError::Frame)?;
        let frame: Arc<[u8]> = framing::encode_frame_with_header(&header, payload).into();
        // One registry lookup under one lock for all connections (a monitor
        // broadcasts every NOISE_EVENT to all its listeners).
        let accepted: Vec<u32> = {
            let registry = lock(&self.shared.registry);
            conn_ids
                .iter()
                .copied()
                .filter(|id| {
                    registry
                        .get(id)
                        .is_some_and(|conn| self.reserve_on(conn, frame.len()).is_ok())
                })
                .collect()
        };
        let n = accepted.len();
        if n > 0 {
            self.command(Command::Broadcast {
                conn_ids: accepted,
                frame,
            })?;
        }
        Ok(n)
    }

    /// Moves the outbox onto the command queue (without waking).
    pub(super) fn queue_outbox(&self) {
        let frames = std::mem::take(&mut *lock(&self.outbox)).frames;
        self.queue_frames(frames);
    }

    /// Queues frames for the IO thread in order (without waking it); a frame
    /// the queue no longer takes (the thread is gone) gives its room back.
    fn queue_frames(&self, frames: Vec<(u32, Vec<u8>)>) {
        for (conn_id, frame) in frames {
            let len = frame.len();
            if self.tx.send(Command::Send { conn_id, frame }).is_err() {
                self.unreserve(conn_id, len);
            }
        }
    }
}
