//! The harness: a monitor (server) and a listener (client) in memory.

use super::super::lifecycle::{on_deadlines, Expiry};
use super::super::setup::base_quiche_config;
use crate::conn::{Conn, ConnInit};
use crate::{ConnShared, EndpointConfig, Shared};
use cribcall_core::identity::{fingerprint_bytes, generate_identity, KeyType};
use cribcall_core::tls::{self, LocalCredentials, PinRecord};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) const MONITOR: &str = "10.0.0.1:48080";
pub(super) const LISTENER: &str = "10.0.0.2:50000";
pub(super) const REBOUND: &str = "10.0.0.2:50123";

pub(super) fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a test address")
}

fn credentials() -> (LocalCredentials, [u8; 32]) {
    let id = generate_identity(KeyType::P256, None).expect("an identity");
    let creds = LocalCredentials::from_pem(&id.cert_pem, &id.key_pem).expect("credentials");
    (creds, fingerprint_bytes(&id.cert_der))
}

/// The close we initiated on `c`, if any.
pub(super) fn local_close(c: &Conn) -> Option<(u64, String, Option<&'static str>)> {
    c.local_close.clone()
}

/// A monitor (server) and a listener (client) in memory, at fake time `t0`.
pub(super) struct Pair {
    pub(super) monitor: Conn,
    pub(super) listener: Conn,
    pub(super) shared: Shared,
    pub(super) config: EndpointConfig,
    pub(super) t0: Instant,
    /// Where the listener's datagrams appear to come from (a NAT may rebind it).
    pub(super) listener_addr: SocketAddr,
}

/// The listener's connection (id 1) to the monitor, started at `t0`, its pin
/// check recorded in `record`.
fn listener_conn(
    cfg: &mut quiche::Config,
    config: &EndpointConfig,
    record: PinRecord,
    t0: Instant,
) -> Conn {
    let client_scid = quiche::ConnectionId::from_vec(vec![1; 16]);
    let q =
        quiche::connect(None, &client_scid, addr(LISTENER), addr(MONITOR), cfg).expect("connect");
    Conn::new(ConnInit {
        id: 1,
        q,
        is_server: false,
        now: t0,
        handshake_timeout: config.handshake_timeout,
        max_frame_payload: config.max_frame_payload,
        pin_record: Some(record),
        cids: vec![client_scid],
        shared: ConnShared::new(),
        remote: addr(MONITOR),
    })
}

/// The monitor's connection (id 2) for the listener, created at `t0`.
fn monitor_conn(cfg: &mut quiche::Config, config: &EndpointConfig, t0: Instant) -> Conn {
    let server_scid = quiche::ConnectionId::from_vec(vec![2; 16]);
    let q = quiche::accept(&server_scid, None, addr(MONITOR), addr(LISTENER), cfg).expect("accept");
    Conn::new(ConnInit {
        id: 2,
        q,
        is_server: true,
        now: t0,
        handshake_timeout: config.handshake_timeout,
        max_frame_payload: config.max_frame_payload,
        pin_record: None,
        cids: vec![server_scid],
        shared: ConnShared::new(),
        remote: addr(LISTENER),
    })
}

impl Pair {
    /// The listener's first flight reaches the monitor, which creates its
    /// connection; nothing more is exchanged yet.
    pub(super) fn new(tweak: impl FnOnce(&mut EndpointConfig)) -> Pair {
        Pair::with(true, None, tweak)
    }

    /// `paired`: the monitor knows the listener's certificate. `pin`: the
    /// fingerprint the listener expects, when not the monitor's.
    pub(super) fn with(
        paired: bool,
        pin: Option<[u8; 32]>,
        tweak: impl FnOnce(&mut EndpointConfig),
    ) -> Pair {
        Pair::build(paired, pin, tweak, false, |_, _| {})
    }

    /// Both sides with path MTU discovery; `quiche_tweak` changes the
    /// monitor's and the listener's quiche configurations.
    pub(super) fn with_pmtud(
        quiche_tweak: impl FnOnce(&mut quiche::Config, &mut quiche::Config),
    ) -> Pair {
        Pair::build(true, None, |_| {}, true, quiche_tweak)
    }

    fn build(
        paired: bool,
        pin: Option<[u8; 32]>,
        tweak: impl FnOnce(&mut EndpointConfig),
        pmtud: bool,
        quiche_tweak: impl FnOnce(&mut quiche::Config, &mut quiche::Config),
    ) -> Pair {
        let (monitor_creds, monitor_fp) = credentials();
        let (listener_creds, listener_fp) = credentials();
        let mut config = EndpointConfig::new(addr(MONITOR), monitor_creds.clone());
        tweak(&mut config);
        let shared = Shared::new();
        // A paired listener: the handshake admits it as trusted.
        if paired {
            shared
                .policy
                .write()
                .expect("policy lock")
                .known
                .insert(listener_fp);
        }
        let server_builder = tls::server_context(
            &monitor_creds,
            shared.policy.clone(),
            shared.tls_counters.clone(),
        )
        .expect("server context");
        let mut server_cfg =
            base_quiche_config(server_builder, &config, true, pmtud).expect("server config");
        let record: PinRecord = Arc::default();
        let client_builder =
            tls::client_context(&listener_creds, pin.unwrap_or(monitor_fp), record.clone())
                .expect("client context");
        let mut client_cfg =
            base_quiche_config(client_builder, &config, false, pmtud).expect("client config");
        quiche_tweak(&mut server_cfg, &mut client_cfg);
        let t0 = Instant::now();
        let listener = listener_conn(&mut client_cfg, &config, record, t0);
        let monitor = monitor_conn(&mut server_cfg, &config, t0);
        Pair {
            monitor,
            listener,
            shared,
            config,
            t0,
            listener_addr: addr(LISTENER),
        }
    }

    /// One flight: every datagram one side has, delivered to the other.
    /// Returns how many there were.
    pub(super) fn flight(&mut self, from_listener: bool) -> usize {
        let mut buf = vec![0u8; 65_535];
        let mut n_sent = 0;
        let (src, dst, info) = if from_listener {
            let info = quiche::RecvInfo {
                from: self.listener_addr,
                to: addr(MONITOR),
            };
            (&mut self.listener, &mut self.monitor, info)
        } else {
            let info = quiche::RecvInfo {
                from: addr(MONITOR),
                to: addr(LISTENER),
            };
            (&mut self.monitor, &mut self.listener, info)
        };
        while let Ok((n, _)) = src.q.send(&mut buf) {
            let _ = dst.q.recv(&mut buf[..n], info);
            n_sent += 1;
        }
        n_sent
    }

    /// Datagrams from one side to the other until neither has anything to send.
    pub(super) fn pump(&mut self) {
        let mut buf = vec![0u8; 65_535];
        for _ in 0..64 {
            let mut moved = false;
            while let Ok((n, _)) = self.listener.q.send(&mut buf) {
                let info = quiche::RecvInfo {
                    from: self.listener_addr,
                    to: addr(MONITOR),
                };
                let _ = self.monitor.q.recv(&mut buf[..n], info);
                moved = true;
            }
            while let Ok((n, _)) = self.monitor.q.send(&mut buf) {
                // Through the NAT: the listener's own address never changes.
                let info = quiche::RecvInfo {
                    from: addr(MONITOR),
                    to: addr(LISTENER),
                };
                let _ = self.listener.q.recv(&mut buf[..n], info);
                moved = true;
            }
            if !moved {
                return;
            }
        }
        panic!("the two sides never went quiet");
    }

    /// A completed handshake, as the driver reports it.
    pub(super) fn established() -> Pair {
        let mut p = Pair::new(|_| {});
        p.pump();
        assert!(p.listener.ready() && p.monitor.ready(), "handshake");
        p.listener.reported = true;
        p.monitor.reported = true;
        p.monitor.half_open = false;
        p
    }

    /// The fake time `ms` milliseconds after `t0`.
    pub(super) fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    /// The monitor's deadlines at `now`.
    pub(super) fn monitor_at(&mut self, now: Instant, congested: bool) -> Expiry {
        on_deadlines(
            &mut self.monitor,
            &self.shared,
            &self.config,
            now,
            congested,
        )
    }

    /// The listener's deadlines at `now`.
    pub(super) fn listener_at(&mut self, now: Instant) -> Expiry {
        on_deadlines(&mut self.listener, &self.shared, &self.config, now, false)
    }
}
