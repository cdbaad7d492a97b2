//! The connection core without sockets, threads or sleeps: a monitor's and a
//! listener's quiche connections, built with our TLS contexts and quiche
//! configuration, exchange datagrams in memory, and our deadline policy
//! (`on_deadlines`) is driven with a fake clock.

use super::base_quiche_config;
use super::lifecycle::{on_deadlines, Expiry};
use crate::conn::{Conn, ConnInit};
use crate::{ConnShared, EndpointConfig, Shared};
use cribcall_core::codes;
use cribcall_core::identity::{fingerprint_bytes, generate_identity, KeyType};
use cribcall_core::tls::{self, LocalCredentials, PinRecord};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MONITOR: &str = "10.0.0.1:48080";
const LISTENER: &str = "10.0.0.2:50000";
const REBOUND: &str = "10.0.0.2:50123";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a test address")
}

fn credentials() -> (LocalCredentials, [u8; 32]) {
    let id = generate_identity(KeyType::P256, None).expect("an identity");
    let creds = LocalCredentials::from_pem(&id.cert_pem, &id.key_pem).expect("credentials");
    (creds, fingerprint_bytes(&id.cert_der))
}

/// A monitor (server) and a listener (client) in memory, at fake time `t0`.
struct Pair {
    monitor: Conn,
    listener: Conn,
    shared: Shared,
    config: EndpointConfig,
    t0: Instant,
    /// Where the listener's datagrams appear to come from (a NAT may rebind it).
    listener_addr: SocketAddr,
}

impl Pair {
    /// The listener's first flight reaches the monitor, which creates its
    /// connection; nothing more is exchanged yet.
    fn new(tweak: impl FnOnce(&mut EndpointConfig)) -> Pair {
        Pair::with(true, None, tweak)
    }

    /// `paired`: the monitor knows the listener's certificate. `pin`: the
    /// fingerprint the listener expects, when not the monitor's.
    fn with(paired: bool, pin: Option<[u8; 32]>, tweak: impl FnOnce(&mut EndpointConfig)) -> Pair {
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
            base_quiche_config(server_builder, &config, true).expect("server config");
        let record: PinRecord = Arc::default();
        let client_builder =
            tls::client_context(&listener_creds, pin.unwrap_or(monitor_fp), record.clone())
                .expect("client context");
        let mut client_cfg =
            base_quiche_config(client_builder, &config, false).expect("client config");
        let t0 = Instant::now();
        let client_scid = quiche::ConnectionId::from_vec(vec![1; 16]);
        let q = quiche::connect(
            None,
            &client_scid,
            addr(LISTENER),
            addr(MONITOR),
            &mut client_cfg,
        )
        .expect("connect");
        let listener = Conn::new(ConnInit {
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
        });
        let server_scid = quiche::ConnectionId::from_vec(vec![2; 16]);
        let q = quiche::accept(
            &server_scid,
            None,
            addr(MONITOR),
            addr(LISTENER),
            &mut server_cfg,
        )
        .expect("accept");
        let monitor = Conn::new(ConnInit {
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
        });
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
    fn flight(&mut self, from_listener: bool) -> usize {
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
    fn pump(&mut self) {
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
    fn established() -> Pair {
        let mut p = Pair::new(|_| {});
        p.pump();
        assert!(p.listener.ready() && p.monitor.ready(), "handshake");
        p.listener.reported = true;
        p.monitor.reported = true;
        p.monitor.half_open = false;
        p
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    /// The monitor's deadlines at `now`.
    fn monitor_at(&mut self, now: Instant, congested: bool) -> Expiry {
        on_deadlines(
            &mut self.monitor,
            &self.shared,
            &self.config,
            now,
            congested,
        )
    }

    /// The listener's deadlines at `now`.
    fn listener_at(&mut self, now: Instant) -> Expiry {
        on_deadlines(&mut self.listener, &self.shared, &self.config, now, false)
    }
}

fn local_close(c: &Conn) -> Option<(u64, String, Option<&'static str>)> {
    c.local_close.clone()
}

#[test]
fn the_handshake_completes_in_memory_with_our_tls_and_quiche_configuration() {
    let p = Pair::established();
    assert!(p.listener.q.is_handshake_confirmed());
    assert!(p
        .listener
        .pin_record
        .as_ref()
        .is_some_and(|r| r.lock().is_ok_and(|f| f.is_none())));
}

#[test]
fn a_server_handshake_that_never_finishes_is_forgotten_at_its_deadline_and_not_before() {
    let mut p = Pair::new(|c| c.handshake_timeout = Duration::from_secs(10));
    let mut buf = vec![0u8; 65_535];
    let (n, _) = p.listener.q.send(&mut buf).expect("an Initial");
    let info = quiche::RecvInfo {
        from: addr(LISTENER),
        to: addr(MONITOR),
    };
    p.monitor
        .q
        .recv(&mut buf[..n], info)
        .expect("the monitor takes it");
    // The listener goes silent: its Handshake flight never arrives.
    let before = p.at(9_999);
    let due = p.at(10_000);
    assert_eq!(p.monitor_at(before, false), Expiry::Keep);
    assert_eq!(p.monitor_at(due, false), Expiry::Forget);
    assert!(
        local_close(&p.monitor).is_none(),
        "forgotten without a word"
    );
}

#[test]
fn a_client_whose_server_never_answers_times_out_with_err_handshake_timeout() {
    let mut p = Pair::new(|c| c.handshake_timeout = Duration::from_millis(1500));
    assert_eq!(p.listener_at(p.at(1_499)), Expiry::Keep);
    assert!(local_close(&p.listener).is_none());
    assert_eq!(p.listener_at(p.at(1_500)), Expiry::Keep);
    let (code, reason, error) = local_close(&p.listener).expect("closed");
    assert_eq!((code, error), (0, Some("ERR_HANDSHAKE_TIMEOUT")));
    assert!(reason.contains("1500 ms"), "{reason}");
}

#[test]
fn a_close_waiting_for_queued_frames_happens_at_its_deadline() {
    let mut p = Pair::established();
    p.monitor.pending_close = Some((codes::UNAUTHORIZED, "revoked".into(), p.at(2_000)));
    p.monitor_at(p.at(1_999), false);
    assert!(local_close(&p.monitor).is_none());
    p.monitor_at(p.at(2_000), false);
    assert_eq!(
        local_close(&p.monitor),
        Some((codes::UNAUTHORIZED, "revoked".into(), None))
    );
    // The close reaches the listener as an application close.
    p.pump();
    let err = p
        .listener
        .q
        .peer_error()
        .expect("the listener got the close");
    assert!(err.is_app && err.error_code == codes::UNAUTHORIZED);
}

#[test]
fn a_pairing_only_connection_is_closed_at_its_deadline_unless_paired_by_then() {
    for paired in [false, true] {
        let mut p = Pair::established();
        let fp = [7u8; 32];
        p.monitor.pairing_only = true;
        p.monitor.peer_fp = Some(fp);
        p.monitor.pairing_deadline = Some(p.at(180_000));
        if paired {
            p.shared
                .policy
                .write()
                .expect("policy lock")
                .known
                .insert(fp);
        }
        p.monitor_at(p.at(179_999), false);
        assert!(local_close(&p.monitor).is_none());
        p.monitor_at(p.at(180_000), false);
        if paired {
            assert!(local_close(&p.monitor).is_none(), "paired in time");
            assert!(!p.monitor.pairing_only);
        } else {
            let (code, reason, _) = local_close(&p.monitor).expect("closed");
            assert_eq!(code, codes::UNAUTHORIZED);
            assert!(reason.contains("pairing did not complete"), "{reason}");
        }
    }
}

#[test]
fn the_frame_timeout_closes_a_stalled_frame_but_not_while_we_are_the_slow_reader() {
    let mut p = Pair::established();
    let timeout = p.config.frame_timeout;
    p.monitor.frame_started = Some(p.at(0));
    let due = p.t0 + timeout;
    // Congested: we stopped reading, so the peer's clock restarts.
    p.monitor_at(due, true);
    assert!(local_close(&p.monitor).is_none());
    assert_eq!(p.monitor.frame_started, Some(due));
    p.monitor_at(due + timeout - Duration::from_millis(1), false);
    assert!(local_close(&p.monitor).is_none());
    p.monitor_at(due + timeout, false);
    let (code, reason, _) = local_close(&p.monitor).expect("closed");
    assert_eq!(code, codes::PROTOCOL_ERROR);
    assert!(reason.contains("did not complete"), "{reason}");
}

#[test]
fn keep_alive_sends_an_ack_eliciting_packet_when_due_and_not_before() {
    let mut p = Pair::established();
    let ka = p.config.keep_alive.expect("keep-alive on by default");
    let due = p
        .listener
        .keep_alive_due(Some(ka))
        .expect("a keep-alive deadline");
    assert!(due > p.t0 && due <= p.t0 + ka + ka / 8, "{:?}", due - p.t0);
    let last = p.listener.last_send;
    p.listener_at(due - Duration::from_millis(1));
    assert_eq!(p.listener.last_send, last);
    let mut buf = vec![0u8; 65_535];
    assert!(
        p.listener.q.send(&mut buf).is_err(),
        "nothing to send before"
    );
    p.listener_at(due);
    assert_eq!(p.listener.last_send, due);
    assert!(p.listener.q.send(&mut buf).is_ok(), "a PING is queued");
}

#[test]
fn a_nat_rebinding_of_the_listener_keeps_the_connection_and_its_stream() {
    let mut p = Pair::established();
    p.listener
        .q
        .stream_send(0, b"before", false)
        .expect("stream 0");
    p.pump();
    // The NAT gives the listener a new port: the monitor validates the new
    // path and keeps the connection; data flows both ways.
    p.listener_addr = addr(REBOUND);
    p.listener
        .q
        .stream_send(0, b"after", false)
        .expect("stream 0");
    p.pump();
    let mut got = vec![0u8; 64];
    let (n, _) = p.monitor.q.stream_recv(0, &mut got).expect("stream data");
    assert_eq!(&got[..n], b"beforeafter");
    p.monitor.q.stream_send(0, b"reply", false).expect("reply");
    p.pump();
    let (n, _) = p.listener.q.stream_recv(0, &mut got).expect("the reply");
    assert_eq!(&got[..n], b"reply");
    assert!(p.monitor.q.is_established() && !p.monitor.q.is_closed());
    let to_new = p.monitor.q.path_stats().any(|s| {
        s.peer_addr == addr(REBOUND)
            && s.active
            && format!("{:?}", s.validation_state) == "Validated"
    });
    assert!(to_new, "the monitor validated the new path and uses it");
}

#[test]
fn a_listener_is_ready_only_once_the_monitor_confirmed_the_handshake() {
    let mut p = Pair::new(|_| {});
    assert!(p.flight(true) > 0, "Initial");
    assert!(p.flight(false) > 0, "the monitor's flight");
    // The listener has its 1-RTT keys but the monitor has not judged its
    // certificate yet (RFC 9001 §4.1.2): not ready.
    assert!(p.listener.q.is_established());
    assert!(!p.listener.ready());
    assert!(!p.monitor.ready());
    assert!(p.flight(true) > 0, "the listener's Finished");
    assert!(p.monitor.ready(), "the monitor admitted the listener");
    assert!(p.flight(false) > 0, "HANDSHAKE_DONE");
    assert!(p.listener.ready());
}

#[test]
fn a_listener_the_monitor_does_not_know_fails_with_err_peer_rejected() {
    let mut p = Pair::with(false, None, |_| {});
    p.pump();
    assert!(!p.listener.ready() && !p.monitor.ready());
    let failure = p.listener.connect_failure();
    assert_eq!(failure.code, "ERR_PEER_REJECTED", "{failure:?}");
}

#[test]
fn a_monitor_with_another_certificate_fails_with_err_pin_mismatch_naming_both() {
    let pinned = [0xab; 32];
    let mut p = Pair::with(true, Some(pinned), |_| {});
    p.pump();
    assert!(!p.listener.ready());
    let failure = p.listener.connect_failure();
    assert_eq!(failure.code, "ERR_PIN_MISMATCH", "{failure:?}");
    assert_eq!(failure.expected.as_deref(), Some("ab".repeat(32).as_str()));
    let actual = failure.actual.expect("the presented fingerprint");
    assert_eq!(actual.len(), 64);
    assert_ne!(actual, "ab".repeat(32));
}
