//! Before the client's address is validated: the amplification limit and
//! version negotiation.

use crate::common::Ep;
use crate::{drain_replies, heavy, InitialMaker};
use cribcall_core::identity::{generate_identity, KeyType};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// RFC 9000 §8.1: before the client's address is validated, at most three
/// times the bytes received go back — probes and timeouts included.
#[test]
fn an_unvalidated_client_gets_at_most_three_times_what_it_sent() {
    let _turn = heavy();
    let mid = generate_identity(KeyType::P256, None).unwrap();
    // Default settings: the handshake deadline (10 s) forgets the state, so
    // nothing can come back after it; the observation covers it with margin.
    let monitor = Ep::with(&mid, |_| {});
    monitor.handle.listen(true);
    let target = monitor.addr();
    let mut maker = InitialMaker::new();

    // One silent Initial.
    let one = UdpSocket::bind("127.0.0.1:0").unwrap();
    let pkt = maker.make(one.local_addr().unwrap(), target);
    one.send_to(&pkt, target).unwrap();
    // 100 silent Initials from 100 sockets.
    let many: Vec<UdpSocket> = (0..100)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let mut sent_many = 0;
    for s in &many {
        let p = maker.make(s.local_addr().unwrap(), target);
        sent_many += s.send_to(&p, target).unwrap();
    }
    // Past the handshake deadline and every probe.
    let until = Instant::now() + Duration::from_secs(12);
    let many_thread = std::thread::spawn(move || {
        let mut total = 0;
        for s in &many {
            let left = until.saturating_duration_since(Instant::now());
            total += drain_replies(s, Instant::now() + left.min(Duration::from_millis(1))).0;
        }
        // Then keep collecting until the end on all of them.
        while Instant::now() < until {
            for s in &many {
                total += drain_replies(s, Instant::now() + Duration::from_millis(1)).0;
            }
        }
        total
    });
    let (bytes, datagrams) = drain_replies(&one, until);
    let back_many = many_thread.join().unwrap();
    println!(
        "amplification: 1 Initial of {} bytes → {bytes} bytes in {datagrams} datagrams; \
         100 Initials ({sent_many} bytes) → {back_many} bytes",
        pkt.len()
    );
    assert!(bytes > 0, "the server answered");
    assert!(
        bytes <= 3 * pkt.len(),
        "{bytes} bytes back for {}",
        pkt.len()
    );
    assert!(
        back_many <= 3 * sent_many,
        "{back_many} bytes back for {sent_many}"
    );
}

/// RFC 9000 §5.2.2: a datagram shorter than 1200 bytes with an unknown version
/// gets no Version Negotiation; a full-size one does, within a rate limit.
#[test]
fn version_negotiation_only_for_full_size_datagrams_and_rate_limited() {
    let mid = generate_identity(KeyType::P256, None).unwrap();
    let monitor = Ep::with(&mid, |_| {});
    monitor.handle.listen(true);
    let target = monitor.addr();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let packet = |len: usize| {
        let mut p = vec![0u8; len];
        p[0] = 0xc0;
        p[1..5].copy_from_slice(&0x1a2a_3a4au32.to_be_bytes());
        p[5] = 8;
        p[6..14].copy_from_slice(b"dcid0001");
        p[14] = 8;
        p[15..23].copy_from_slice(b"scid0001");
        p
    };
    for len in [30, 48, 100, 600, 1199] {
        for _ in 0..400 {
            sock.send_to(&packet(len), target).unwrap();
        }
    }
    let (small_back, _) = drain_replies(&sock, Instant::now() + Duration::from_millis(500));
    assert_eq!(small_back, 0, "no reply to datagrams under 1200 bytes");
    for _ in 0..1000 {
        sock.send_to(&packet(1200), target).unwrap();
    }
    let (_, vn) = drain_replies(&sock, Instant::now() + Duration::from_millis(500));
    println!("version negotiation: 2,000 short datagrams → 0 replies; 1,000 full-size → {vn} VN");
    assert!(vn >= 1, "a full-size datagram gets a VN");
    assert!(vn <= 150, "VN is rate-limited ({vn} replies)");
    assert!(monitor.handle.stats().unsolicited_replies >= vn as u64);
}
