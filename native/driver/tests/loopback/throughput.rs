//! Throughput: flow control towards a slow owner, bulk transfers with and
//! without UDP offload, broadcast, inline and deferred sends.

use crate::common::Ep;
use crate::{pair, PING};
use cribcall_core::identity::{generate_identity, KeyType};
use cribcall_core::limits;
use cribcall_driver::Event;
use std::time::{Duration, Instant};

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
        // GSO sends bursts of full-size packets in one call each: 64 KiB per
        // call at most, more than two of the largest packets (which path MTU
        // discovery reaches on loopback) on average.
        let per_call = c.stream_bytes_sent / c.send_calls;
        assert!(
            per_call >= 2 * limits::PMTUD_MAX_UDP_PAYLOAD as u64,
            "GSO: {} packets in {} calls, {per_call} bytes per call",
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
