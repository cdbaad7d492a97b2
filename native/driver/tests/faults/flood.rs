//! A junk-datagram flood beside a live connection.

use crate::body;
use crate::common::{Ep, Rng};
use crate::frames_until;
use cribcall_core::identity::{generate_identity, KeyType};
use cribcall_driver::Event;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

#[test]
fn junk_flood_does_not_disturb_a_live_connection() {
    let sid = generate_identity(KeyType::P256, None).unwrap();
    let cid = generate_identity(KeyType::P256, None).unwrap();
    let server = Ep::new(&sid);
    server.handle.listen(true);
    let client = Ep::new(&cid);
    let deadline = Instant::now() + Duration::from_secs(30);
    let c = client
        .handle
        .connect(server.handle.local_addr(), &sid.fingerprint)
        .unwrap();
    loop {
        match client.next(deadline) {
            Some(Event::Connected { .. }) => break,
            Some(Event::ConnectFailed { failure, .. }) => panic!("{failure:?}"),
            Some(_) => {}
            None => panic!("no handshake"),
        }
    }
    let s = loop {
        if let Some(Event::Connection { conn_id, .. }) = server.next(deadline) {
            break conn_id;
        }
    };
    // 20,000 hostile datagrams: random bytes, short-header garbage, truncated and
    // full-size fake Initials with random connection IDs.
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = server.handle.local_addr();
    let mut rng = Rng(42);
    let flood = std::thread::spawn(move || {
        let mut sent = 0u64;
        for i in 0..20_000u32 {
            let len = match i % 4 {
                0 => (rng.next() % 64 + 1) as usize,
                1 => 1200,
                2 => (rng.next() % 1500 + 1) as usize,
                _ => 40,
            };
            let mut pkt: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            match i % 4 {
                1 => {
                    // Long header, Initial, version 1, random 8-byte DCID.
                    pkt[0] = 0xc0;
                    pkt[1..5].copy_from_slice(&1u32.to_be_bytes());
                    pkt[5] = 8;
                }
                3 => pkt[0] = 0x40 | (pkt[0] & 0x3f), // short header
                _ => {}
            }
            if attacker.send_to(&pkt, target).is_ok() {
                sent += 1;
            }
        }
        sent
    });
    const N: usize = 500;
    for i in 0..N {
        client.handle.send(c, &body("c", i)).unwrap();
    }
    let got = frames_until(&server, N, "c", deadline);
    let sent = flood.join().unwrap();
    assert_eq!(got, N);
    server.handle.send(s, b"still here").unwrap();
    loop {
        match client.next(deadline) {
            Some(Event::Frame { payload, .. }) => {
                assert_eq!(payload, b"still here");
                break;
            }
            Some(Event::Close { info, .. }) => panic!("{info:?}"),
            Some(_) => {}
            None => panic!("no answer after the flood"),
        }
    }
    // Junk Initials may create half-open server connections; they never surface
    // as 'connection' and expire with the handshake deadline.
    assert_eq!(server.handle.stats().connections, 1);
    println!("junk flood: {sent} datagrams sent, {N} frames delivered in order during it");
}
