//! A bare quiche client, driven by hand.

use cribcall_core::identity::Identity;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// A bare quiche client, driven by hand, so a test can do what our own
/// driver never does (reset or stop the control stream).
pub(crate) struct RawClient {
    sock: UdpSocket,
    pub(crate) conn: quiche::Connection,
    server: SocketAddr,
}

impl RawClient {
    pub(crate) fn connect(id: &Identity, server: SocketAddr, dir: &std::path::Path) -> RawClient {
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, &id.cert_pem).unwrap();
        std::fs::write(&key, &id.key_pem).unwrap();
        let mut cfg = quiche::Config::new(quiche::PROTOCOL_VERSION).unwrap();
        cfg.set_application_protos(&[b"cribcall-ctrl"]).unwrap();
        cfg.verify_peer(false);
        cfg.load_cert_chain_from_pem_file(cert.to_str().unwrap())
            .unwrap();
        cfg.load_priv_key_from_pem_file(key.to_str().unwrap())
            .unwrap();
        cfg.set_initial_max_data(1 << 20);
        cfg.set_initial_max_stream_data_bidi_local(1 << 18);
        cfg.set_initial_max_stream_data_bidi_remote(1 << 18);
        cfg.set_max_idle_timeout(30_000);
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        let scid = quiche::ConnectionId::from_ref(&[7u8; 16]);
        let conn =
            quiche::connect(None, &scid, sock.local_addr().unwrap(), server, &mut cfg).unwrap();
        let mut c = RawClient { sock, conn, server };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !c.conn.is_established() {
            assert!(Instant::now() < deadline, "raw client handshake");
            c.pump();
        }
        c
    }

    /// Sends what quiche has, then reads what arrives for a moment.
    pub(crate) fn pump(&mut self) {
        let mut out = [0u8; 1500];
        while let Ok((n, info)) = self.conn.send(&mut out) {
            let _ = self.sock.send_to(&out[..n], info.to);
        }
        let mut buf = [0u8; 65535];
        if let Ok((n, from)) = self.sock.recv_from(&mut buf) {
            let info = quiche::RecvInfo {
                from,
                to: self.sock.local_addr().unwrap(),
            };
            let _ = self.conn.recv(&mut buf[..n], info);
        }
        if self.conn.timeout().is_some_and(|t| t.is_zero()) {
            self.conn.on_timeout();
        }
        let _ = self.server;
    }
}
