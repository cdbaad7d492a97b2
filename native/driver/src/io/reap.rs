//! The end of connections: reporting finished ones ('close', 'connectFailed'
//! or, for a server handshake, nothing), dropping them once quiche is done
//! with them, forgetting abandoned handshakes, and the final events when the
//! endpoint ends.

use super::Io;
use crate::{lock, CloseInfo, Command, ConnectFailure, Event};
use cribcall_core::codes;
use std::sync::atomic::Ordering;

impl Io {
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

    /// Reports finished connections at once and forgets them once quiche is
    /// done with them (a closing connection lingers for its draining period so
    /// a lost CONNECTION_CLOSE is repeated to the peer).
    pub(super) fn reap(&mut self, ids: &[u32]) {
        let (reports, remove) = self.finished(ids);
        for id in reports {
            // Still registered until removed below: a send racing with the
            // close is accepted and dropped, and the owner learns of the
            // close from its event, not from a failed send.
            self.report_end(id);
        }
        for id in remove {
            self.remove_conn(id);
        }
    }

    /// Of `ids`, the connections that finished now (marked done; their end
    /// is to be reported) and those quiche is done with (to be removed). A
    /// draining connection (a close was sent or received) is finished as far
    /// as the owner is concerned; its state lingers only to absorb late
    /// packets. When shutting down, nothing lingers.
    fn finished(&mut self, ids: &[u32]) -> (Vec<u32>, Vec<u32>) {
        let shutting_down = self.shutting_down;
        let mut reports = Vec::new();
        let mut remove = Vec::new();
        for id in ids {
            let Some(c) = self.conns.get_mut(id) else {
                continue;
            };
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
        (reports, remove)
    }

    /// Reports the end of one connection: 'close' for a reported one,
    /// 'connectFailed' for a client one that never came up, nothing for a
    /// server handshake (refused or abandoned; a client that sent no
    /// certificate is counted as rejected here). A close made by the
    /// endpoint's shutdown reads ERR_ENDPOINT_CLOSED.
    fn report_end(&mut self, id: u32) {
        let Some(c) = self.conns.get(&id) else {
            return;
        };
        let ended_by_shutdown = self.shutting_down
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

    /// Drops a finished connection: its registration, timers, connection
    /// IDs, and its place among the half-open or pairing-only ones.
    fn remove_conn(&mut self, id: u32) {
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
