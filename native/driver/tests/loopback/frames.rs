//! Frames and closes: order and size limits, close codes, frames queued before
//! a close, the idle timeout.

use crate::common::Ep;
use crate::{pair, PING};
use cribcall_core::identity::{generate_identity, KeyType};
use cribcall_driver::Event;
use std::time::{Duration, Instant};

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
