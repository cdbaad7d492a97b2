//! Admission of new connections: server-side acceptance of Initials (version
//! negotiation, Retry, refusal when full, eviction of a half-open handshake)
//! and the client-side `connect`.

use super::{base_quiche_config, Io};
use crate::conn::{Conn, ConnInit, CONNECTION_REFUSED};
use crate::retry::TokenError;
use crate::{ConnectFailure, Event};
use cribcall_core::limits;
use cribcall_core::tls::{self, PinRecord};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

impl Io {
    /// A datagram for no known connection: maybe a new client. In order:
    /// version (negotiation only for full-size datagrams, rate-limited), size,
    /// address validation (Retry above the half-open threshold; a token that
    /// is ours but invalid drops the datagram), capacity (a full endpoint
    /// refuses with CONNECTION_REFUSED; a full half-open table gives up a
    /// handshake of the source holding the most).
    pub(super) fn accept(
        &mut self,
        hdr: &quiche::Header<'_>,
        from: SocketAddr,
        len: usize,
    ) -> Option<u32> {
        if hdr.ty != quiche::Type::Initial
            || self.shutting_down
            || !self.shared.listening.load(Ordering::Acquire)
        {
            return None;
        }
        // RFC 9000 §14.1: a client Initial is at least 1200 bytes, and
        // §5.2.2: a server drops smaller datagrams, VN included.
        if len < 1200 {
            return None;
        }
        let now = Instant::now();
        if !quiche::version_is_supported(hdr.version) {
            if self.unsolicited_budget.allow(now) {
                if let Ok(n) = quiche::negotiate_version(&hdr.scid, &hdr.dcid, &mut self.send_buf) {
                    let pkt = self.send_buf[..n].to_vec();
                    self.count_unsolicited();
                    self.send_datagram(&pkt, from);
                }
            }
            return None;
        }
        let odcid = match hdr.token.as_deref().filter(|t| !t.is_empty()) {
            None => None,
            Some(token) => match self.retry_tokens.validate(token, &from, now) {
                Ok(odcid) => Some(quiche::ConnectionId::from_vec(odcid)),
                Err(TokenError::Foreign) => None,
                Err(e) => {
                    debug_log!("Initial from {from} dropped: retry token {e:?}");
                    self.shared
                        .stats
                        .invalid_tokens
                        .fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            },
        };
        if odcid.is_none() && self.retry_wanted() {
            self.send_retry(hdr, from, now);
            return None;
        }
        if self.conns.len() >= self.config.max_connections {
            self.refuse(from, len, now);
            return None;
        }
        if self.half_open >= self.config.max_half_open {
            self.evict_half_open();
        }
        // After a Retry the client addresses us with the connection ID we
        // chose in it; else we choose one now.
        let scid = match &odcid {
            Some(_) => hdr.dcid.clone().into_owned(),
            None => self.new_cid().ok()?,
        };
        self.server_config
            .set_stateless_reset_token(Some(self.reset_key.token(&scid)));
        let mut q = quiche::accept(
            &scid,
            odcid.as_ref(),
            self.local,
            from,
            &mut self.server_config,
        )
        .ok()?;
        self.attach_keylog(&mut q, true);
        let conn_id = self.shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
        debug_log!(
            "conn {conn_id}: incoming handshake from {from}{}",
            if odcid.is_some() {
                " (address validated by Retry)"
            } else {
                ""
            }
        );
        let mut cids = vec![scid.clone()];
        self.cid_map.insert(scid, conn_id);
        if odcid.is_none() {
            let first_dcid = hdr.dcid.clone().into_owned();
            self.cid_map.insert(first_dcid.clone(), conn_id);
            cids.push(first_dcid);
        }
        let conn = Conn::new(ConnInit {
            id: conn_id,
            q,
            is_server: true,
            now,
            handshake_timeout: self.config.handshake_timeout,
            max_frame_payload: self.config.max_frame_payload,
            pin_record: None,
            cids,
            shared: self.conn_shared(conn_id),
            remote: from,
        });
        self.conns.insert(conn_id, conn);
        self.sched.mark(conn_id);
        self.half_open += 1;
        self.half_open_order.push_back(conn_id);
        // Handshakes that completed or ended leave their ID behind; compact
        // now and then so the order stays within twice the cap.
        if self.half_open_order.len() > 2 * self.config.max_half_open.max(1) {
            self.retain_half_open_order();
        }
        self.publish_half_open();
        self.shared
            .stats
            .handshakes_started
            .fetch_add(1, Ordering::Relaxed);
        Some(conn_id)
    }

    fn retry_wanted(&self) -> bool {
        self.config
            .retry_threshold
            .is_some_and(|t| self.half_open >= t)
    }

    pub(super) fn count_unsolicited(&self) {
        self.shared
            .stats
            .unsolicited_replies
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn publish_half_open(&self) {
        self.shared
            .stats
            .half_open
            .store(self.half_open, Ordering::Relaxed);
    }

    /// Answers an Initial with a Retry carrying a token for this address.
    /// Not rate-limited: a Retry answers a datagram of at least 1,200 bytes
    /// with about a tenth of that and keeps nothing, so it costs less than
    /// the flood that causes it, and a budget would leave a listener's
    /// Initial unanswered (a 1 s retransmission) whenever a flood exceeds it.
    fn send_retry(&mut self, hdr: &quiche::Header<'_>, from: SocketAddr, now: Instant) {
        let Ok(new_scid) = self.new_cid() else {
            return;
        };
        let token = self.retry_tokens.mint(&from, &hdr.dcid, now);
        if let Ok(n) = quiche::retry(
            &hdr.scid,
            &hdr.dcid,
            &new_scid,
            &token,
            hdr.version,
            &mut self.send_buf,
        ) {
            let pkt = self.send_buf[..n].to_vec();
            self.shared
                .stats
                .handshakes_retried
                .fetch_add(1, Ordering::Relaxed);
            self.count_unsolicited();
            self.send_datagram(&pkt, from);
        }
    }

    /// A full endpoint answers a new client at once with CONNECTION_CLOSE
    /// (CONNECTION_REFUSED), so it does not wait for its handshake timeout.
    /// Rate-limited like every unsolicited reply; nothing is kept.
    fn refuse(&mut self, from: SocketAddr, len: usize, now: Instant) {
        self.shared
            .stats
            .handshakes_refused
            .fetch_add(1, Ordering::Relaxed);
        if !self.unsolicited_budget.allow(now) {
            return;
        }
        let Ok(scid) = self.new_cid() else {
            return;
        };
        let Ok(mut q) = quiche::accept(&scid, None, self.local, from, &mut self.server_config)
        else {
            return;
        };
        let info = quiche::RecvInfo {
            from,
            to: self.local,
        };
        if let Err(e) = q.recv(&mut self.recv_buf[..len], info) {
            debug_log!("refusing {from}: {e}");
        }
        debug_log!("refused {from}: maxConnections reached");
        self.count_unsolicited();
        let mut out = vec![0u8; limits::MAX_SEND_UDP_PAYLOAD];
        // quiche closes a handshake in progress only once its first flight
        // is out (closing earlier fails to seal): send the flight, then the
        // close, within the anti-amplification limit.
        for closing in [false, true] {
            if closing {
                let _ = q.close(false, CONNECTION_REFUSED, b"too many connections");
            }
            while let Ok((n, to)) = q.send(&mut out).map(|(n, i)| (n, i.to)) {
                self.send_datagram(&out[..n], to);
            }
        }
    }

    /// Gives up one handshake still in progress (without a word: it was
    /// never admitted), to make room for a new one: the oldest of the address
    /// holding the most (see [`half_open_victim`]), so a device that floods
    /// (its address validated by Retry) pushes out its own handshakes.
    fn evict_half_open(&mut self) {
        self.retain_half_open_order();
        let victim = half_open_victim(
            self.half_open_order
                .iter()
                .filter_map(|id| self.conns.get(id).map(|c| (*id, c.remote))),
        );
        if let Some(id) = victim {
            self.forget(id);
            self.shared
                .stats
                .handshakes_refused
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Keeps only the IDs of handshakes still in progress, in arrival order.
    fn retain_half_open_order(&mut self) {
        let conns = &self.conns;
        self.half_open_order
            .retain(|id| conns.get(id).is_some_and(|c| c.half_open));
    }

    pub(super) fn connect(&mut self, conn_id: u32, addr: SocketAddr, fingerprint: [u8; 32]) {
        let fail = |io: &mut Io, message: String| {
            io.unregister(conn_id);
            io.events.push(Event::ConnectFailed {
                conn_id,
                failure: ConnectFailure {
                    code: "ERR_HANDSHAKE_FAILED",
                    message,
                    expected: None,
                    actual: None,
                },
            });
        };
        if self.shutting_down {
            self.unregister(conn_id);
            self.events.push(Event::ConnectFailed {
                conn_id,
                failure: ConnectFailure {
                    code: "ERR_ENDPOINT_CLOSED",
                    message: "the endpoint is closing".into(),
                    expected: None,
                    actual: None,
                },
            });
            return;
        }
        if self.conns.len() >= self.config.max_connections {
            return fail(
                self,
                format!(
                    "too many connections (maxConnections = {})",
                    self.config.max_connections
                ),
            );
        }
        let record: PinRecord = Arc::default();
        let builder = match tls::client_context(self.credentials(), fingerprint, record.clone()) {
            Ok(b) => b,
            Err(e) => return fail(self, e.to_string()),
        };
        let mut cfg = match base_quiche_config(builder, &self.config, false) {
            Ok(c) => c,
            Err(e) => return fail(self, e.to_string()),
        };
        let scid = match self.new_cid() {
            Ok(c) => c,
            Err(e) => return fail(self, e.to_string()),
        };
        // No SNI: the pin, not a name, identifies the monitor.
        let mut q = match quiche::connect(None, &scid, self.local, addr, &mut cfg) {
            Ok(q) => q,
            Err(e) => return fail(self, format!("quiche connect: {e}")),
        };
        self.attach_keylog(&mut q, false);
        debug_log!("conn {conn_id}: connecting to {addr}");
        self.cid_map.insert(scid.clone(), conn_id);
        let conn = Conn::new(ConnInit {
            id: conn_id,
            q,
            is_server: false,
            now: Instant::now(),
            handshake_timeout: self.config.handshake_timeout,
            max_frame_payload: self.config.max_frame_payload,
            pin_record: Some(record),
            cids: vec![scid],
            shared: self.conn_shared(conn_id),
            remote: addr,
        });
        self.conns.insert(conn_id, conn);
        self.sched.mark(conn_id);
    }
}

/// The handshake to give up when the half-open table is full, from the
/// handshakes in progress in arrival order: among the addresses (IP) holding
/// the most, the source (IP and port) holding the most, and of that its
/// oldest; ties go to what arrived first. A device flooding from many ports
/// thus gives up its own handshakes before another device's, and before a
/// listener's single one beside it.
fn half_open_victim(in_progress: impl Iterator<Item = (u32, SocketAddr)>) -> Option<u32> {
    let entries: Vec<(u32, SocketAddr)> = in_progress.collect();
    let mut per_ip: HashMap<IpAddr, usize> = HashMap::new();
    let mut per_source: HashMap<SocketAddr, usize> = HashMap::new();
    for (_, from) in &entries {
        *per_ip.entry(from.ip()).or_default() += 1;
        *per_source.entry(*from).or_default() += 1;
    }
    let rank = |from: &SocketAddr| (per_ip[&from.ip()], per_source[from]);
    let most = entries.iter().map(|(_, from)| rank(from)).max()?;
    entries
        .iter()
        .find(|(_, from)| rank(from) == most)
        .map(|(id, _)| *id)
}

#[cfg(test)]
mod tests {
    use super::half_open_victim;
    use std::net::SocketAddr;

    #[test]
    fn the_source_holding_the_most_gives_up_its_oldest() {
        type Case<'a> = (&'a [(u32, &'a str)], Option<u32>);
        let cases: &[Case] = &[
            (&[], None),
            (&[(7, "10.0.0.1:5")], Some(7)),
            // One source: plain oldest-first.
            (
                &[(3, "10.0.0.1:5"), (4, "10.0.0.1:5"), (5, "10.0.0.1:5")],
                Some(3),
            ),
            // The flooder's oldest goes, although the listener's is older.
            (
                &[(1, "10.0.0.2:5"), (2, "10.0.0.9:5"), (3, "10.0.0.9:6")],
                Some(2),
            ),
            // Equal counts: the address whose oldest arrived first.
            (
                &[
                    (1, "10.0.0.2:5"),
                    (2, "10.0.0.9:5"),
                    (3, "10.0.0.9:6"),
                    (4, "10.0.0.2:6"),
                ],
                Some(1),
            ),
            // The address holding the most first, even if a source of another
            // address holds more on its own.
            (
                &[
                    (1, "10.0.0.2:5"),
                    (2, "10.0.0.2:5"),
                    (3, "10.0.0.9:5"),
                    (4, "10.0.0.9:6"),
                    (5, "10.0.0.9:7"),
                ],
                Some(3),
            ),
            // Within one address, the port holding the most: a listener's
            // single handshake beside a flood from the same address stays.
            (
                &[
                    (1, "10.0.0.9:5"),
                    (2, "10.0.0.9:6"),
                    (3, "10.0.0.9:7"),
                    (4, "10.0.0.9:6"),
                ],
                Some(2),
            ),
            // IPv6 too.
            (
                &[(1, "[::1]:5"), (2, "[fe80::1]:5"), (3, "[fe80::1]:6")],
                Some(2),
            ),
        ];
        for (entries, want) in cases {
            let got = half_open_victim(
                entries
                    .iter()
                    .map(|(id, a)| (*id, a.parse::<SocketAddr>().unwrap())),
            );
            assert_eq!(got, *want, "{entries:?}");
        }
    }
}
