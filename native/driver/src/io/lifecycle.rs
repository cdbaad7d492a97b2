//! Connection lifecycle: per-connection deadlines (handshake, pending close,
//! pairing, frame timeout, keep-alive), the per-turn processing of touched
//! connections, and the end of connections (reaping, final events).

use super::Io;
use crate::conn::{Conn, CONTROL_STREAM};
use crate::{lock, CloseInfo, Command, ConnectFailure, EndpointConfig, Event, Shared};
use cribcall_core::codes;
use std::collections::HashMap;
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

    /// Drops a server connection that was never reported, without a word.
    pub(super) fn forget(&mut self, id: u32) {
        let Some(c) = self.conns.remove(&id) else {
            return;
        };
        self.sched.remove(id);
        self.starved.remove(&id);
        for cid in &c.cids {
            self.cid_map.remove(cid);
        }
        if c.half_open {
            self.half_open -= 1;
            self.publish_half_open();
        }
        self.unregister(id);
        debug_log!("conn {id}: handshake from {} abandoned", c.remote);
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

    /// Reports finished connections at once and forgets them once quiche is
    /// done with them (a closing connection lingers for its draining period so
    /// a lost CONNECTION_CLOSE is repeated to the peer).
    pub(super) fn reap(&mut self, ids: &[u32]) {
        let shutting_down = self.shutting_down;
        let mut reports = Vec::new();
        let mut remove = Vec::new();
        for id in ids {
            let Some(c) = self.conns.get_mut(id) else {
                continue;
            };
            // Draining (a close was sent or received) is the end as far as the
            // owner is concerned; the state lingers only to absorb late packets.
            let finished =
                c.q.is_closed() || c.q.is_draining() || (c.local_close.is_some() && shutting_down);
            if finished && !c.done {
                c.done = true;
                reports.push(*id);
            }
            if c.q.is_closed() || (c.done && shutting_down) {
                remove.push(*id);
            }
        }
        for id in reports {
            // Still registered until removed below: a send racing with the
            // close is accepted and dropped, and the owner learns of the
            // close from its event, not from a failed send.
            let Some(c) = self.conns.get(&id) else {
                continue;
            };
            let ended_by_shutdown = shutting_down
                && c.local_close
                    .as_ref()
                    .is_some_and(|l| l.1 == "endpoint closed");
            if c.reset {
                self.shared
                    .stats
                    .stateless_resets_received
                    .fetch_add(1, Ordering::Relaxed);
            }
            if c.reported {
                self.shared
                    .stats
                    .connections
                    .fetch_sub(1, Ordering::Relaxed);
                let mut info = c.close_info();
                if ended_by_shutdown {
                    info.error_code = Some("ERR_ENDPOINT_CLOSED");
                }
                self.events.push(Event::Close { conn_id: id, info });
            } else if c.is_server {
                debug_log!(
                    "conn {id}: handshake from {} refused or abandoned ({:?})",
                    c.remote,
                    c.q.local_error().or(c.q.peer_error()).map(|e| e.error_code)
                );
                // A refused or abandoned handshake is never surfaced to the owner.
                // Certificates refused by the policy are counted by the verify
                // callback; a client that sent none is counted here.
                let tls_alert =
                    c.q.local_error()
                        .is_some_and(|e| (0x100..0x200).contains(&e.error_code));
                if tls_alert && c.q.peer_cert().is_none() {
                    self.shared
                        .stats
                        .handshakes_rejected
                        .fetch_add(1, Ordering::Relaxed);
                }
            } else {
                let mut failure = c.connect_failure();
                debug_log!(
                    "conn {id}: connect failed: {} {}",
                    failure.code,
                    failure.message
                );
                if ended_by_shutdown {
                    failure.code = "ERR_ENDPOINT_CLOSED";
                }
                self.events.push(Event::ConnectFailed {
                    conn_id: id,
                    failure,
                });
            }
        }
        for id in remove {
            self.unregister(id);
            self.sched.remove(id);
            self.starved.remove(&id);
            if let Some(c) = self.conns.remove(&id) {
                for cid in &c.cids {
                    self.cid_map.remove(cid);
                }
                if c.half_open {
                    self.half_open -= 1;
                    self.publish_half_open();
                }
                if c.pairing_only {
                    self.pairing_only = self.pairing_only.saturating_sub(1);
                }
            }
        }
    }

    /// Emits the final events for whatever is left (after a panic or shutdown).
    pub(super) fn final_events(&mut self, reason: &str, error_code: &'static str) {
        let leftover: Vec<(u32, bool, bool)> = self
            .conns
            .values()
            .map(|c| (c.id, c.reported, c.is_server))
            .collect();
        for (id, reported, is_server) in leftover {
            if reported {
                self.events.push(Event::Close {
                    conn_id: id,
                    info: CloseInfo {
                        code: codes::OK,
                        reason: reason.to_owned(),
                        by_peer: false,
                        application: false,
                        error_code: Some(error_code),
                    },
                });
            } else if !is_server {
                self.events.push(Event::ConnectFailed {
                    conn_id: id,
                    failure: ConnectFailure {
                        code: "ERR_ENDPOINT_CLOSED",
                        message: reason.to_owned(),
                        expected: None,
                        actual: None,
                    },
                });
            }
        }
        self.conns.clear();
        self.sched.clear();
        // Connects queued but never started.
        while let Ok(cmd) = self.rx.try_recv() {
            if let Command::Connect { conn_id, .. } = cmd {
                self.events.push(Event::ConnectFailed {
                    conn_id,
                    failure: ConnectFailure {
                        code: "ERR_ENDPOINT_CLOSED",
                        message: reason.to_owned(),
                        expected: None,
                        actual: None,
                    },
                });
            }
        }
        lock(&self.shared.registry).clear();
        self.shared.stats.connections.store(0, Ordering::Relaxed);
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

/// Counts the pairing-only connections still open whose peer is not known by
/// now (a connection that completed pairing stops counting).
pub(super) fn recount_pairing_only(conns: &mut HashMap<u32, Conn>, shared: &Shared) -> usize {
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
