//! The client side: starting a connection pinned to the server's fingerprint.

use super::setup::base_quiche_config;
use super::Io;
use crate::conn::{Conn, ConnInit};
use crate::{ConnectFailure, Event};
use cribcall_core::tls::{self, PinRecord};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

impl Io {
    /// Starts a client connection to `addr` pinned to the server certificate
    /// `fingerprint`; one that cannot start is reported as failed at once.
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
        let mut cfg = match base_quiche_config(builder, &self.config, false, self.pmtud) {
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
        self.conns.insert(conn_id, Box::new(conn));
        self.sched.mark(conn_id);
    }
}
