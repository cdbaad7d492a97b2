//! Connection lifecycle: per-connection deadlines (handshake, pending close,
//! pairing, frame timeout, keep-alive) and the per-turn processing of touched
//! connections. Their end (reaping, final events) is in `reap`.

use super::Io;
use crate::conn::{Conn, CONTROL_STREAM};
use crate::{EndpointConfig, Shared};
use cribcall_core::codes;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Io {
    /// A connection's deadline came: quiche's timers, the handshake deadline,
    /// a pending close, the pairing deadline, the frame timeout, keep-alive.
    pub(super) fn handle_timeout(&mut self, id: u32, now: Instant) {
        let congested = self.shared.paused.load(Ordering::Acquire);
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.q.timeout_instant().is_some_and(|t| t <= now) {
            c.q.on_timeout();
        }
        if on_deadlines(c, &self.shared, &self.config, now, congested) == Expiry::Forget {
            self.forget(id);
        }
    }

    /// Looks at this turn's connections; returns them.
    pub(super) fn process_conns(&mut self) -> Vec<u32> {
        let congested = self.shared.flow.congested();
        self.shared.paused.store(congested, Ordering::Release);
        if !congested {
            // The owner caught up: read what was left unread.
            for id in std::mem::take(&mut self.starved) {
                self.sched.mark(id);
            }
        }
        self.more_to_read = false;
        let ids = self.sched.take_dirty();
        for &id in &ids {
            self.process_conn(id, congested);
        }
        ids
    }

    fn process_conn(&mut self, id: u32, congested: bool) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.done {
            return;
        }
        let finishing = c.q.is_closed() || c.q.is_draining();
        if !c.reported && c.local_close.is_none() && !finishing && c.ready() {
            self.report_ready(id);
        }
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        while let Some(ev) = c.q.path_event_next() {
            debug_log!("conn {id}: path event {ev:?}");
        }
        if !c.reported || c.local_close.is_some() {
            return;
        }
        // RFC 9000 allows STOP_SENDING on any stream; on the one control
        // stream it leaves a connection that can never carry a frame again.
        if c.stream_open {
            if let Err(quiche::Error::StreamStopped(_)) = c.q.stream_capacity(CONTROL_STREAM) {
                c.app_close(
                    codes::PROTOCOL_ERROR,
                    "control stream stopped by the peer",
                    None,
                );
                return;
            }
        }
        if congested {
            self.starved.insert(id);
            return;
        }
        self.read_control_stream(id);
    }
}

/// What became of a connection whose deadlines were looked at.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Expiry {
    Keep,
    /// A server handshake that did not finish in time: dropped without a word.
    Forget,
}

/// Our deadlines of one connection at `now` (quiche's own timers aside): the
/// handshake deadline, a pending close, the pairing deadline, the frame
/// timeout and keep-alive. Sans IO: it changes `c` (closes, PINGs queued in
/// quiche) and says whether to forget it; time is only what it is given.
pub(super) fn on_deadlines(
    c: &mut Conn,
    shared: &Shared,
    config: &EndpointConfig,
    now: Instant,
    congested: bool,
) -> Expiry {
    if !c.reported && now >= c.handshake_deadline && !c.q.is_closed() {
        if c.is_server && c.local_close.is_none() {
            // Nothing is owed to an unvalidated peer that did not finish:
            // forget it without sending (no amplification).
            return Expiry::Forget;
        }
        let reason = format!(
            "handshake did not complete within {} ms",
            config.handshake_timeout.as_millis()
        );
        c.local_close = Some((0, reason, Some("ERR_HANDSHAKE_TIMEOUT")));
        let _ = c.q.close(false, 0x0, b"handshake timeout");
    }
    if let Some((code, reason, deadline)) = c.pending_close.clone() {
        if now >= deadline {
            c.app_close(code, &reason, None);
        }
    }
    deadlines(c, shared, config, now, congested);
    if c.keep_alive_due(config.keep_alive)
        .is_some_and(|t| now >= t)
    {
        let _ = c.q.send_ack_eliciting();
        // Counts as sent even if congestion control holds the PING
        // back: the next one is due an interval later, never at once.
        c.last_send = now;
    }
    Expiry::Keep
}

/// The pairing deadline of a pairing-only connection and the frame timeout.
fn deadlines(
    c: &mut Conn,
    shared: &Shared,
    config: &EndpointConfig,
    now: Instant,
    congested: bool,
) {
    if c.pairing_deadline.is_some_and(|t| now >= t) {
        c.pairing_deadline = None;
        if c.peer_fp.is_some_and(|fp| shared.is_known(&fp)) {
            c.pairing_only = false; // paired in time
        } else {
            debug_log!("conn {}: pairing deadline passed", c.id);
            let reason = format!(
                "pairing did not complete within {} s",
                config.pairing_deadline.as_secs()
            );
            close_by_deadline(c, shared, codes::UNAUTHORIZED, &reason);
        }
    }
    if let Some(started) = c.frame_started {
        if now >= started + config.frame_timeout {
            if congested {
                // We stopped reading, not the peer: restart its clock.
                c.frame_started = Some(now);
            } else {
                c.frame_started = None;
                debug_log!("conn {}: frame timeout", c.id);
                let reason = format!(
                    "a frame did not complete within {} ms of its first byte",
                    config.frame_timeout.as_millis()
                );
                close_by_deadline(c, shared, codes::PROTOCOL_ERROR, &reason);
            }
        }
    }
}

/// Closes a connection whose deadline passed, and counts it.
fn close_by_deadline(c: &mut Conn, shared: &Shared, code: u64, reason: &str) {
    c.app_close(code, reason, None);
    shared
        .stats
        .closed_by_deadline
        .fetch_add(1, Ordering::Relaxed);
}
