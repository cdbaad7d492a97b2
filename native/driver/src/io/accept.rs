//! Server-side admission of new connections: Initials for no known
//! connection (version negotiation, Retry, refusal when full, eviction of a
//! half-open handshake, see `half_open`) become server connections.

use super::Io;
use crate::conn::{Conn, ConnInit, CONNECTION_REFUSED};
use crate::retry::TokenError;
use cribcall_core::limits;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// What the token of an Initial says about the client's address.
enum TokenCheck {
    /// No token, or one that is not ours: the address is not validated.
    Unvalidated,
    /// Our Retry token, valid for this address: the connection ID the client
    /// first chose (the original destination connection ID).
    Validated(quiche::ConnectionId<'static>),
    /// Ours, but forged, for another address or expired: drop the datagram.
    Invalid,
}

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
            self.negotiate_version(hdr, from, now);
            return None;
        }
        let odcid = match self.check_token(hdr, from, now) {
            TokenCheck::Invalid => return None,
            TokenCheck::Validated(odcid) => Some(odcid),
            TokenCheck::Unvalidated => None,
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
        let conn_id = self.start_server_conn(hdr, from, odcid, now)?;
        self.note_half_open(conn_id);
        self.shared
            .stats
            .handshakes_started
            .fetch_add(1, Ordering::Relaxed);
        Some(conn_id)
    }

    /// Answers an Initial of a version we do not speak with a version
    /// negotiation packet, within the budget of unsolicited replies.
    fn negotiate_version(&mut self, hdr: &quiche::Header<'_>, from: SocketAddr, now: Instant) {
        if self.unsolicited_budget.allow(now) {
            if let Ok(n) = quiche::negotiate_version(&hdr.scid, &hdr.dcid, &mut self.send_buf) {
                let pkt = self.send_buf[..n].to_vec();
                self.count_unsolicited();
                self.send_datagram(&pkt, from);
            }
        }
    }

    /// Checks the token of an Initial (see [`TokenCheck`]); an invalid one of
    /// ours is counted.
    fn check_token(&self, hdr: &quiche::Header<'_>, from: SocketAddr, now: Instant) -> TokenCheck {
        let Some(token) = hdr.token.as_deref().filter(|t| !t.is_empty()) else {
            return TokenCheck::Unvalidated;
        };
        match self.retry_tokens.validate(token, &from, now) {
            Ok(odcid) => TokenCheck::Validated(quiche::ConnectionId::from_vec(odcid)),
            Err(TokenError::Foreign) => TokenCheck::Unvalidated,
            Err(e) => {
                debug_log!("Initial from {from} dropped: retry token {e:?}");
                self.shared
                    .stats
                    .invalid_tokens
                    .fetch_add(1, Ordering::Relaxed);
                TokenCheck::Invalid
            }
        }
    }

    /// Creates the server connection of an admitted Initial and routes its
    /// connection IDs to it: ours (after a Retry, the one we chose in it;
    /// else a new one) and, without a Retry, the one the client chose.
    fn start_server_conn(
        &mut self,
        hdr: &quiche::Header<'_>,
        from: SocketAddr,
        odcid: Option<quiche::ConnectionId<'static>>,
        now: Instant,
    ) -> Option<u32> {
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
        self.conns.insert(conn_id, Box::new(conn));
        self.sched.mark(conn_id);
        Some(conn_id)
    }

    /// Whether to ask for address validation: enough handshakes are in progress.
    fn retry_wanted(&self) -> bool {
        self.config
            .retry_threshold
            .is_some_and(|t| self.half_open >= t)
    }

    /// Counts an unsolicited reply (version negotiation, Retry, reset, refusal).
    pub(super) fn count_unsolicited(&self) {
        self.shared
            .stats
            .unsolicited_replies
            .fetch_add(1, Ordering::Relaxed);
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
}
