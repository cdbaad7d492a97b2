//! The handshake: key types, pinning, admission, the handshake deadline, a
//! client without a certificate, IPv6.

use crate::common::Ep;
use crate::{pair, PING};
use cribcall_core::identity::{generate_identity, Identity, KeyType};
use cribcall_driver::Event;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

#[test]
fn all_four_key_combinations_handshake_and_carry_the_ping_frame() {
    for (sk, ck) in [
        (KeyType::P256, KeyType::P256),
        (KeyType::P256, KeyType::Ed25519),
        (KeyType::Ed25519, KeyType::P256),
        (KeyType::Ed25519, KeyType::Ed25519),
    ] {
        let (server, client, _, _, s, c) = pair(sk, ck);
        client.handle.send(c, PING).unwrap();
        let got = server.wait("frame", |e| matches!(e, Event::Frame { .. }));
        match got {
            Event::Frame { payload, conn_id } => {
                assert_eq!(conn_id, s);
                assert_eq!(payload, PING);
            }
            _ => unreachable!(),
        }
        // Exactly header + body crossed the stream.
        assert_eq!(
            server.handle.stats().stream_bytes_received,
            4 + PING.len() as u64
        );
    }
}

#[test]
fn wrong_pin_fails_inside_the_handshake_with_zero_stream_bytes() {
    let sid = generate_identity(KeyType::P256, None).unwrap();
    let cid = generate_identity(KeyType::P256, None).unwrap();
    let other = generate_identity(KeyType::P256, None).unwrap();
    let server = Ep::new(&sid);
    server.handle.listen(true);
    let client = Ep::new(&cid);
    client
        .handle
        .connect(server.addr(), &other.fingerprint)
        .unwrap();
    match client.wait("failure", |e| {
        matches!(e, Event::ConnectFailed { .. } | Event::Connected { .. })
    }) {
        Event::ConnectFailed { failure, .. } => {
            assert_eq!(failure.code, "ERR_PIN_MISMATCH");
            assert_eq!(
                failure.expected.as_deref(),
                Some(other.fingerprint.as_str())
            );
            assert_eq!(failure.actual.as_deref(), Some(sid.fingerprint.as_str()));
        }
        other => panic!("expected failure, got {other:?}"),
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(server.handle.stats().stream_bytes_received, 0);
    assert_eq!(client.handle.stats().stream_bytes_sent, 0);
    assert!(server.rx.try_recv().is_err(), "server saw no connection");
}

#[test]
fn unknown_client_refused_in_handshake_unless_known_or_pairing_open() {
    let sid = generate_identity(KeyType::P256, None).unwrap();
    let cid = generate_identity(KeyType::Ed25519, None).unwrap();
    let server = Ep::new(&sid);
    server.handle.listen(false);
    let client = Ep::new(&cid);
    client
        .handle
        .connect(server.addr(), &sid.fingerprint)
        .unwrap();
    match client.wait("failure", |e| {
        matches!(e, Event::ConnectFailed { .. } | Event::Connected { .. })
    }) {
        Event::ConnectFailed { failure, .. } => {
            assert_eq!(failure.code, "ERR_PEER_REJECTED", "{failure:?}")
        }
        other => panic!("a refused client must not see 'connected': {other:?}"),
    }
    assert_eq!(server.handle.stats().handshakes_rejected, 1);
    server
        .handle
        .set_known_peers(&[cid.fingerprint.as_str()])
        .unwrap();
    client
        .handle
        .connect(server.addr(), &sid.fingerprint)
        .unwrap();
    client.wait("connected", |e| matches!(e, Event::Connected { .. }));
    match server.wait("connection", |e| matches!(e, Event::Connection { .. })) {
        Event::Connection { peer_known, .. } => assert!(peer_known),
        _ => unreachable!(),
    }
}

#[test]
fn handshake_deadline_to_a_silent_port() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let cid = generate_identity(KeyType::P256, None).unwrap();
    let client = Ep::with(&cid, |c| c.handshake_timeout = Duration::from_millis(300));
    let t0 = Instant::now();
    client
        .handle
        .connect(silent.local_addr().unwrap(), &"00".repeat(32))
        .unwrap();
    match client.wait("timeout", |e| matches!(e, Event::ConnectFailed { .. })) {
        Event::ConnectFailed { failure, .. } => assert_eq!(failure.code, "ERR_HANDSHAKE_TIMEOUT"),
        _ => unreachable!(),
    }
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

/// A bare quiche client without any certificate: the monitor must refuse it
/// inside the handshake.
#[test]
fn client_without_certificate_fails_the_handshake() {
    let sid = generate_identity(KeyType::P256, None).unwrap();
    let server = Ep::new(&sid);
    server.handle.listen(true);

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let local = sock.local_addr().unwrap();
    let peer = server.addr();
    let mut cfg = quiche::Config::new(quiche::PROTOCOL_VERSION).unwrap();
    cfg.set_application_protos(&[b"cribcall-ctrl"]).unwrap();
    cfg.verify_peer(false);
    cfg.set_initial_max_data(1 << 20);
    cfg.set_initial_max_stream_data_bidi_local(1 << 16);
    cfg.set_initial_max_streams_bidi(1);
    cfg.set_max_idle_timeout(5000);
    let scid = quiche::ConnectionId::from_vec(vec![7u8; 16]);
    let mut conn = quiche::connect(None, &scid, local, peer, &mut cfg).unwrap();
    let mut out = [0u8; 1500];
    let mut buf = [0u8; 65535];
    let deadline = Instant::now() + Duration::from_secs(5);
    while !conn.is_closed() && Instant::now() < deadline {
        while let Ok((n, info)) = conn.send(&mut out) {
            sock.send_to(&out[..n], info.to).unwrap();
        }
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                let _ = conn.recv(&mut buf[..n], quiche::RecvInfo { from, to: local });
            }
            Err(_) => conn.on_timeout(),
        }
        if conn.is_established() {
            // Even if the client thinks it is done, nothing may be accepted.
            let _ = conn.stream_send(0, b"\0\0\0\x05hello", false);
        }
    }
    let err = conn.peer_error().expect("server must close the handshake");
    assert!(!err.is_app);
    // TLS alert certificate_required (116) => CRYPTO_ERROR 0x100 + 116.
    assert_eq!(err.error_code, 0x100 + 116, "{err:?}");
    assert_eq!(server.handle.stats().stream_bytes_received, 0);
    assert!(server.rx.try_recv().is_err(), "no connection event");
}

#[test]
fn ipv6_loopback_and_one_socket_serving_and_dialing() {
    let a = generate_identity(KeyType::P256, None).unwrap();
    let b = generate_identity(KeyType::Ed25519, None).unwrap();
    let mk = |id: &Identity| Ep::with(id, |c| c.bind = "[::1]:0".parse().unwrap());
    let (ea, eb) = (mk(&a), mk(&b));
    // Both endpoints listen and dial each other over the same sockets.
    ea.handle.listen(true);
    eb.handle.listen(true);
    ea.handle.connect(eb.addr(), &b.fingerprint).unwrap();
    eb.handle.connect(ea.addr(), &a.fingerprint).unwrap();
    for ep in [&ea, &eb] {
        ep.wait("connected", |e| matches!(e, Event::Connected { .. }));
    }
    // Each also accepted the other's connection: two live connections per socket.
    let deadline = Instant::now() + Duration::from_secs(5);
    while (ea.handle.stats().connections, eb.handle.stats().connections) != (2, 2) {
        assert!(
            Instant::now() < deadline,
            "both endpoints must hold 2 connections"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // An IPv6 endpoint cannot dial IPv4.
    let err = ea
        .handle
        .connect("127.0.0.1:9".parse().unwrap(), &b.fingerprint)
        .unwrap_err();
    assert_eq!(err.code(), "ERR_INVALID_ARG");
}
