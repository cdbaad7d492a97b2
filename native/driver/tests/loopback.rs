//! Driver tests over real loopback UDP (no JS involved).

mod common;

use common::Ep;
use cribcall_core::identity::{generate_identity, Identity, KeyType};
use cribcall_driver::Event;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

const PING: &[u8] = br#"{"type":"PING","timestamp":123}"#;

fn conn_id_of(e: &Event) -> u32 {
    match e {
        Event::Connection { conn_id, .. }
        | Event::Connected { conn_id, .. }
        | Event::ConnectFailed { conn_id, .. }
        | Event::Frame { conn_id, .. }
        | Event::Close { conn_id, .. } => *conn_id,
        _ => panic!("no conn id in {e:?}"),
    }
}

/// Server + connected client; returns (server, client, server conn id, client conn id).
fn pair(sk: KeyType, ck: KeyType) -> (Ep, Ep, Identity, Identity, u32, u32) {
    let sid = generate_identity(sk, None).unwrap();
    let cid = generate_identity(ck, None).unwrap();
    let server = Ep::new(&sid);
    server.handle.listen(true);
    let client = Ep::new(&cid);
    let c = client
        .handle
        .connect(server.addr(), &sid.fingerprint)
        .unwrap();
    let ev = client.wait("connected", |e| {
        matches!(e, Event::Connected { .. } | Event::ConnectFailed { .. })
    });
    match &ev {
        Event::Connected {
            peer_fingerprint, ..
        } => assert_eq!(peer_fingerprint, &sid.fingerprint),
        other => panic!("{sk:?}->{ck:?}: expected connected, got {other:?}"),
    }
    let sev = server.wait("connection", |e| matches!(e, Event::Connection { .. }));
    let s = conn_id_of(&sev);
    if let Event::Connection {
        peer_fingerprint,
        peer_known,
        ..
    } = &sev
    {
        assert_eq!(peer_fingerprint, &cid.fingerprint);
        assert!(!peer_known);
    }
    (server, client, sid, cid, s, c)
}

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
fn thousand_frames_each_way_in_order_and_size_limits() {
    let (server, client, _, _, s, c) = pair(KeyType::P256, KeyType::P256);
    for i in 0..1000u32 {
        client.handle.send(c, format!("c{i}").as_bytes()).unwrap();
        server.handle.send(s, format!("s{i}").as_bytes()).unwrap();
    }
    let mut next = 0;
    while next < 1000 {
        if let Event::Frame { payload, .. } =
            server.wait("frame", |e| matches!(e, Event::Frame { .. }))
        {
            assert_eq!(payload, format!("c{next}").as_bytes());
            next += 1;
        }
    }
    let mut next = 0;
    while next < 1000 {
        if let Event::Frame { payload, .. } =
            client.wait("frame", |e| matches!(e, Event::Frame { .. }))
        {
            assert_eq!(payload, format!("s{next}").as_bytes());
            next += 1;
        }
    }
    let big = vec![b'x'; 65_536];
    client.handle.send(c, &big).unwrap();
    match server.wait("big", |e| matches!(e, Event::Frame { .. })) {
        Event::Frame { payload, .. } => assert_eq!(payload.len(), 65_536),
        _ => unreachable!(),
    }
    let err = client.handle.send(c, &[b'x'; 65_537]).unwrap_err();
    assert_eq!(err.code(), "ERR_FRAME_TOO_LARGE");
    assert_eq!(
        client.handle.send(c, b"").unwrap_err().code(),
        "ERR_FRAME_EMPTY"
    );
}

#[test]
fn oversized_length_from_peer_closes_with_protocol_error_before_buffering() {
    for header in [65_537u32, 0, u32::MAX] {
        let (server, client, _, _, _, c) = pair(KeyType::P256, KeyType::P256);
        client.handle.send_raw(c, &header.to_be_bytes()).unwrap();
        match server.wait("close", |e| matches!(e, Event::Close { .. })) {
            Event::Close { info, .. } => {
                assert_eq!(info.code, 1, "PROTOCOL_ERROR for L={header}");
                assert!(!info.by_peer);
            }
            _ => unreachable!(),
        }
        match client.wait("close", |e| matches!(e, Event::Close { .. })) {
            Event::Close { info, .. } => {
                assert_eq!(info.code, 1);
                assert!(info.by_peer);
                assert!(info.application);
            }
            _ => unreachable!(),
        }
    }
}

#[test]
fn close_codes_and_reasons_reach_the_peer() {
    let (server, client, _, _, s, _) = pair(KeyType::Ed25519, KeyType::P256);
    server
        .handle
        .close_connection(s, 4, "conflict here")
        .unwrap();
    match client.wait("close", |e| matches!(e, Event::Close { .. })) {
        Event::Close { info, .. } => {
            assert_eq!(
                (
                    info.code,
                    info.reason.as_str(),
                    info.by_peer,
                    info.application
                ),
                (4, "conflict here", true, true)
            );
        }
        _ => unreachable!(),
    }
    match server.wait("own close", |e| matches!(e, Event::Close { .. })) {
        Event::Close { info, .. } => assert!(!info.by_peer),
        _ => unreachable!(),
    }
}

#[test]
fn server_frames_wait_until_the_client_opened_the_stream() {
    let (server, client, _, _, s, c) = pair(KeyType::P256, KeyType::P256);
    server.handle.send(s, b"early").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        client.rx.try_recv().is_err(),
        "nothing before the client opens stream 0"
    );
    client.handle.send(c, b"hello").unwrap();
    match client.wait("early frame", |e| matches!(e, Event::Frame { .. })) {
        Event::Frame { payload, .. } => assert_eq!(payload, b"early"),
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

#[test]
fn idle_timeout_reports_a_vanished_peer() {
    let sid = generate_identity(KeyType::P256, None).unwrap();
    let cid = generate_identity(KeyType::P256, None).unwrap();
    let server = Ep::with(&sid, |c| c.idle_timeout = Duration::from_millis(400));
    server.handle.listen(true);
    let client = Ep::with(&cid, |c| c.idle_timeout = Duration::from_millis(400));
    client
        .handle
        .connect(server.addr(), &sid.fingerprint)
        .unwrap();
    client.wait("connected", |e| matches!(e, Event::Connected { .. }));
    server.wait("connection", |e| matches!(e, Event::Connection { .. }));
    // The client vanishes without a word: its thread panics (contained).
    client.handle.inject_panic().unwrap();
    match client.wait("error", |e| matches!(e, Event::Error { .. })) {
        Event::Error { code, message } => {
            assert_eq!(code, "ERR_INTERNAL");
            assert!(message.contains("panic"), "{message}");
        }
        _ => unreachable!(),
    }
    client.wait("closed", |e| matches!(e, Event::Closed));
    let t0 = Instant::now();
    match server.wait("idle close", |e| matches!(e, Event::Close { .. })) {
        Event::Close { info, .. } => {
            assert_eq!(info.error_code, Some("ERR_IDLE_TIMEOUT"));
            assert!(info.reason.contains("idle"));
        }
        _ => unreachable!(),
    }
    assert!(t0.elapsed() < Duration::from_secs(3));
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

/// When the owner stops processing events, the driver stops reading the
/// stream, QUIC flow control stalls the sender, and nothing is lost.
#[test]
fn slow_owner_pushes_back_through_flow_control_without_loss() {
    let (server, client, _, _, _, c) = pair(KeyType::P256, KeyType::P256);
    const N: usize = 30_000;
    let payload = |i: usize| format!("{i:0>96}");
    for i in 0..N {
        client.handle.send(c, payload(i).as_bytes()).unwrap();
    }
    // Do not release credit: let the events pile up.
    std::thread::sleep(Duration::from_millis(700));
    let stalled = server.handle.stats().frames_received;
    assert!(
        (8192..N as u64).contains(&stalled),
        "reading must stop near the high-water mark, got {stalled}"
    );
    assert!(
        client.handle.queued(c) > 0,
        "the sender is held back by flow control"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        server.handle.stats().frames_received,
        stalled,
        "no reading while congested"
    );
    // Now consume everything, in order.
    let mut next = 0;
    while next < N {
        if let Event::Frame { payload: p, .. } =
            server.wait("frame", |e| matches!(e, Event::Frame { .. }))
        {
            assert_eq!(p, payload(next).as_bytes(), "frame {next}");
            next += 1;
        }
    }
    assert_eq!(server.handle.stats().frames_received, N as u64);
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

/// Rough latency probe (run with `cargo test --release -- --ignored --nocapture pingpong`).
#[test]
#[ignore]
fn pingpong_latency_probe() {
    let (server, client, _, _, s, c) = pair(KeyType::P256, KeyType::P256);
    let n = 5000;
    let mut rtts = Vec::with_capacity(n);
    for i in 0..n + 200 {
        let t0 = Instant::now();
        client.handle.send(c, PING).unwrap();
        server.wait("f", |e| matches!(e, Event::Frame { .. }));
        server.handle.send(s, PING).unwrap();
        client.wait("f", |e| matches!(e, Event::Frame { .. }));
        if i >= 200 {
            rtts.push(t0.elapsed().as_micros() as u64);
        }
    }
    rtts.sort();
    println!(
        "rust-only RTT median {} us p99 {} us",
        rtts[n / 2],
        rtts[n * 99 / 100]
    );
}

/// Frames queued before a close reach the peer before the close does (an
/// in-band ERROR followed by the closing of the connection).
#[test]
fn frames_queued_before_a_close_arrive_before_it() {
    for round in 0..30 {
        let (server, client, _, _, s, c) = pair(KeyType::P256, KeyType::P256);
        client.handle.send(c, b"open").unwrap();
        server.wait("open", |e| matches!(e, Event::Frame { .. }));
        for i in 0..3 {
            server.handle.send(s, format!("err{i}").as_bytes()).unwrap();
        }
        server
            .handle
            .close_connection(s, 1, "PROTOCOL_ERROR")
            .unwrap();
        let mut frames = Vec::new();
        loop {
            match client.wait("frames then close", |e| {
                matches!(e, Event::Frame { .. } | Event::Close { .. })
            }) {
                Event::Frame { payload, .. } => frames.push(String::from_utf8(payload).unwrap()),
                Event::Close { info, .. } => {
                    assert_eq!((info.code, info.by_peer), (1, true));
                    break;
                }
                _ => unreachable!(),
            }
        }
        assert_eq!(frames, ["err0", "err1", "err2"], "round {round}");
    }
}

/// Sends `frames` frames of `size` bytes (each starting with its index) from
/// client to server; checks every one arrived, in order; returns the stats of
/// (client, server).
fn bulk(
    offload: bool,
    frames: u32,
    size: usize,
) -> (
    cribcall_driver::StatsSnapshot,
    cribcall_driver::StatsSnapshot,
) {
    let sid = generate_identity(KeyType::P256, None).unwrap();
    let cid = generate_identity(KeyType::P256, None).unwrap();
    let server = Ep::with(&sid, |c| c.udp_offload = offload);
    server.handle.listen(true);
    let client = Ep::with(&cid, |c| c.udp_offload = offload);
    let c = client
        .handle
        .connect(server.addr(), &sid.fingerprint)
        .unwrap();
    client.wait("connected", |e| matches!(e, Event::Connected { .. }));
    server.wait("connection", |e| matches!(e, Event::Connection { .. }));
    let mut sent = 0u32;
    let mut next = 0u32;
    let deadline = Instant::now() + Duration::from_secs(60);
    while next < frames {
        // Keep a few MiB in flight: the driver's send buffer bounds the rest.
        while sent < frames && sent - next < 64 {
            let mut frame = vec![0xa5u8; size];
            frame[..4].copy_from_slice(&sent.to_be_bytes());
            client.handle.send(c, &frame).unwrap();
            sent += 1;
        }
        // `next` returns each event's flow credit.
        match server.next(deadline) {
            Some(e) => {
                if let Event::Frame { payload, .. } = &e {
                    assert_eq!(payload.len(), size);
                    assert_eq!(
                        &payload[..4],
                        &next.to_be_bytes(),
                        "frame {next} out of order"
                    );
                    assert!(payload[4..].iter().all(|b| *b == 0xa5));
                    next += 1;
                }
            }
            None => panic!("offload {offload}: only {next}/{frames} frames within 60 s"),
        }
    }
    (client.handle.stats(), server.handle.stats())
}

#[test]
fn bulk_transfer_arrives_whole_and_in_order_with_and_without_udp_offload() {
    const FRAMES: u32 = 128; // 8 MiB in 64 KiB frames
    let (plain_c, plain_s) = bulk(false, FRAMES, 65_536);
    assert_eq!(plain_c.send_calls, plain_c.packets_sent);
    assert_eq!(plain_s.recv_calls, plain_s.packets_received);
    let (c, s) = bulk(true, FRAMES, 65_536);
    println!(
        "8 MiB: without offload {} packets in {} sendto calls, {} received in {} calls; \
         with offload {} packets in {} sendmsg calls, {} received in {} calls",
        plain_c.packets_sent,
        plain_c.send_calls,
        plain_s.packets_received,
        plain_s.recv_calls,
        c.packets_sent,
        c.send_calls,
        s.packets_received,
        s.recv_calls
    );
    if cfg!(target_os = "linux") {
        // GSO sends bursts of full-size packets in one call each.
        assert!(
            c.send_calls * 4 <= c.packets_sent,
            "GSO: {} packets in {} calls",
            c.packets_sent,
            c.send_calls
        );
        // GRO hands a burst from one sender over in one call.
        assert!(
            s.recv_calls * 2 <= s.packets_received,
            "GRO: {} packets in {} calls",
            s.packets_received,
            s.recv_calls
        );
    }
}

/// A fan-out to many connections behind one peer socket: the packets of
/// different connections go out together (one GSO batch per destination), and
/// every connection still gets every frame in order.
#[test]
fn broadcast_to_connections_behind_one_socket_batches_across_connections() {
    const CONNS: usize = 20;
    const FRAMES: u32 = 50;
    let sid = generate_identity(KeyType::P256, None).unwrap();
    let cid = generate_identity(KeyType::P256, None).unwrap();
    let server = Ep::new(&sid);
    // Known peers: unknown ones would be pairing-only connections, capped at 8.
    server.handle.set_known_peers(&[&cid.fingerprint]).unwrap();
    server.handle.listen(false);
    let client = Ep::new(&cid);
    let mut client_ids = Vec::new();
    for _ in 0..CONNS {
        let c = client
            .handle
            .connect(server.addr(), &sid.fingerprint)
            .unwrap();
        client.wait("connected", |e| matches!(e, Event::Connected { .. }));
        // The client opens the stream: the server may write once it did.
        client.handle.send(c, PING).unwrap();
        client_ids.push(c);
    }
    // Each connection is reported, then its PING arrives (`wait` skips the rest).
    let mut server_ids = Vec::new();
    let mut pings = 0;
    while server_ids.len() < CONNS || pings < CONNS {
        match server.wait("connections and pings", |e| {
            matches!(e, Event::Connection { .. } | Event::Frame { .. })
        }) {
            Event::Connection { conn_id, .. } => server_ids.push(conn_id),
            _ => pings += 1,
        }
    }
    let before = server.handle.stats();
    for i in 0..FRAMES {
        let mut frame = vec![0x5au8; 200];
        frame[..4].copy_from_slice(&i.to_be_bytes());
        assert_eq!(server.handle.broadcast(&server_ids, &frame).unwrap(), CONNS);
    }
    let mut next = std::collections::HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = 0;
    while got < CONNS * FRAMES as usize {
        match client.next(deadline) {
            Some(Event::Frame { conn_id, payload }) => {
                let n = next.entry(conn_id).or_insert(0u32);
                assert_eq!(&payload[..4], &n.to_be_bytes(), "conn {conn_id}");
                *n += 1;
                got += 1;
            }
            Some(_) => {}
            None => panic!("{got} of {} frames within 20 s", CONNS * FRAMES as usize),
        }
    }
    let after = server.handle.stats();
    let packets = after.packets_sent - before.packets_sent;
    let calls = after.send_calls - before.send_calls;
    println!("fan-out to {CONNS} connections: {packets} packets in {calls} send calls");
    if cfg!(target_os = "linux") {
        assert!(calls * 3 <= packets, "{packets} packets in {calls} calls");
    }
}

/// Frames sent one at a time while the IO thread is idle go onto the wire from
/// the sender's thread (no hand-off); frames accepted with `send_deferred` go
/// out at `flush` or before any later command, in the order they were given.
#[test]
fn idle_sends_go_out_inline_and_deferred_frames_keep_their_order() {
    let (server, client, _, _, s, c) = pair(KeyType::P256, KeyType::P256);
    // Open the stream, then a ping-pong: the client sends while its IO thread sleeps.
    client.handle.send(c, PING).unwrap();
    server.wait("ping", |e| matches!(e, Event::Frame { .. }));
    let before = client.handle.stats().inline_flushes;
    for i in 0..200u32 {
        client.handle.send(c, &i.to_be_bytes()).unwrap();
        match server.wait("frame", |e| matches!(e, Event::Frame { .. })) {
            Event::Frame { payload, .. } => assert_eq!(payload, i.to_be_bytes()),
            _ => unreachable!(),
        }
        server.handle.send(s, b"pong").unwrap();
        client.wait("pong", |e| matches!(e, Event::Frame { .. }));
    }
    let inline = client.handle.stats().inline_flushes - before;
    println!("{inline} of 200 sends went out from the sender's thread");
    assert!(inline >= 100, "only {inline} of 200 sends inline");

    // Deferred frames, then a close: the frames arrive first, then the close.
    for i in 0..50u32 {
        client.handle.send_deferred(c, &i.to_be_bytes()).unwrap();
    }
    client.handle.close_connection(c, 0, "done").unwrap();
    let mut next = 0u32;
    loop {
        match server.wait("frames then close", |e| {
            matches!(e, Event::Frame { .. } | Event::Close { .. })
        }) {
            Event::Frame { payload, .. } => {
                assert_eq!(payload, next.to_be_bytes());
                next += 1;
            }
            Event::Close { info, .. } => {
                assert_eq!(next, 50, "close before all deferred frames");
                assert_eq!(info.reason, "done");
                break;
            }
            _ => unreachable!(),
        }
    }
}
