//! Fault injection: a UDP relay between a listener and a monitor that drops,
//! reorders and duplicates datagrams and rebinds its upstream port (as a NAT
//! would), plus a junk-datagram flood. Every test counts what arrived.

mod common;

use common::{Ep, Rng};
use cribcall_core::identity::{generate_identity, KeyType};
use cribcall_driver::Event;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Counters {
    forwarded: AtomicU64,
    dropped: AtomicU64,
    reordered: AtomicU64,
    duplicated: AtomicU64,
}

struct Relay {
    /// Where the listener sends (the "monitor address" it dials).
    front: SocketAddr,
    upstream: Arc<Mutex<UdpSocket>>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// What both directions of the relay share.
#[derive(Clone)]
struct Shared {
    front: Arc<UdpSocket>,
    upstream: Arc<Mutex<UdpSocket>>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    /// The listener's address, once it sent something.
    client: Arc<Mutex<Option<SocketAddr>>>,
}

/// Per cent of datagrams lost, held back (reordered) and duplicated.
#[derive(Clone, Copy)]
struct Faults {
    loss: u64,
    reorder: u64,
    dup: u64,
}

/// listener -> monitor
fn listener_to_monitor(
    sh: Shared,
    server: SocketAddr,
    f: Faults,
    seed: u64,
) -> std::thread::JoinHandle<()> {
    let Faults { loss, reorder, dup } = f;
    std::thread::spawn(move || {
        let mut rng = Rng(seed | 1);
        let mut held: Option<Vec<u8>> = None;
        let mut buf = [0u8; 65535];
        while !sh.stop.load(Ordering::Relaxed) {
            let Ok((n, from)) = sh.front.recv_from(&mut buf) else {
                continue;
            };
            *sh.client.lock().unwrap() = Some(from);
            let pkt = buf[..n].to_vec();
            forward(
                &sh.upstream,
                server,
                pkt,
                &mut held,
                &mut rng,
                &sh.counters,
                loss,
                reorder,
                dup,
            );
        }
    })
}

/// monitor -> listener
fn monitor_to_listener(sh: Shared, f: Faults, seed: u64) -> std::thread::JoinHandle<()> {
    let Faults { loss, reorder, dup } = f;
    std::thread::spawn(move || {
        let mut rng = Rng(seed.rotate_left(17) | 1);
        let mut held: Option<Vec<u8>> = None;
        let mut buf = [0u8; 65535];
        while !sh.stop.load(Ordering::Relaxed) {
            // Read from whatever the upstream socket currently is.
            let sock = sh.upstream.lock().unwrap().try_clone().unwrap();
            let Ok((n, _)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let Some(to) = *sh.client.lock().unwrap() else {
                continue;
            };
            let pkt = buf[..n].to_vec();
            let front_sock = Arc::new(Mutex::new(sh.front.try_clone().unwrap()));
            forward(
                &front_sock,
                to,
                pkt,
                &mut held,
                &mut rng,
                &sh.counters,
                loss,
                reorder,
                dup,
            );
        }
    })
}

impl Relay {
    fn start(server: SocketAddr, loss: u64, reorder: u64, dup: u64, seed: u64) -> Relay {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        front
            .set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let up = UdpSocket::bind("127.0.0.1:0").unwrap();
        up.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        let front_addr = front.local_addr().unwrap();
        let sh = Shared {
            front: Arc::new(front),
            upstream: Arc::new(Mutex::new(up)),
            stop: Arc::new(AtomicBool::new(false)),
            counters: Arc::new(Counters::default()),
            client: Arc::default(),
        };
        let f = Faults { loss, reorder, dup };
        let t1 = listener_to_monitor(sh.clone(), server, f, seed);
        let t2 = monitor_to_listener(sh.clone(), f, seed);
        Relay {
            front: front_addr,
            upstream: sh.upstream,
            stop: sh.stop,
            counters: sh.counters,
            threads: vec![t1, t2],
        }
    }

    /// The relay's upstream port changes, as after a NAT rebinding.
    fn rebind(&self) -> SocketAddr {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        let addr = s.local_addr().unwrap();
        *self.upstream.lock().unwrap() = s;
        addr
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn forward(
    sock: &Arc<Mutex<UdpSocket>>,
    to: SocketAddr,
    pkt: Vec<u8>,
    held: &mut Option<Vec<u8>>,
    rng: &mut Rng,
    c: &Counters,
    loss: u64,
    reorder: u64,
    dup: u64,
) {
    let s = sock.lock().unwrap().try_clone().unwrap();
    if rng.chance(loss) {
        c.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if held.is_none() && rng.chance(reorder) {
        // Hold this one back; it goes out after the next datagram.
        *held = Some(pkt);
        c.reordered.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let _ = s.send_to(&pkt, to);
    c.forwarded.fetch_add(1, Ordering::Relaxed);
    if rng.chance(dup) {
        let _ = s.send_to(&pkt, to);
        c.duplicated.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(h) = held.take() {
        let _ = s.send_to(&h, to);
        c.forwarded.fetch_add(1, Ordering::Relaxed);
    }
}

/// A 400-byte payload numbered `i`, so the traffic spans many datagrams.
fn body(prefix: &str, i: usize) -> Vec<u8> {
    format!("{prefix}{i:>06}{}", ".".repeat(393)).into_bytes()
}

/// Reads frames `from..n` (numbered as `body` makes them) in order; returns how far it got.
fn frames_until(ep: &Ep, n: usize, prefix: &str, deadline: Instant) -> usize {
    frames_from(ep, 0, n, prefix, deadline)
}

fn frames_from(ep: &Ep, from: usize, n: usize, prefix: &str, deadline: Instant) -> usize {
    let mut next = from;
    while next < n {
        match ep.next(deadline) {
            Some(Event::Frame { payload, .. }) => {
                assert_eq!(payload, body(prefix, next), "in order, nothing lost");
                next += 1;
            }
            Some(Event::Close { info, .. }) => panic!("connection closed: {info:?}"),
            Some(_) => {}
            None => break,
        }
    }
    next
}

#[test]
fn loss_reordering_and_duplication_lose_nothing() {
    transfer_through_relay(false);
}

/// NAT rebinding in the middle of a bulk transfer under loss: stream data the
/// monitor sent to the old address is retransmitted on the new path (quiche
/// patch, native/vendor/README.md), so nothing is lost and nothing stalls.
#[test]
fn nat_rebinding_during_a_transfer_loses_nothing() {
    transfer_through_relay(true);
}

fn transfer_through_relay(rebind: bool) {
    let sid = generate_identity(KeyType::P256, None).unwrap();
    let cid = generate_identity(KeyType::Ed25519, None).unwrap();
    let server = Ep::new(&sid);
    server.handle.listen(true);
    let client = Ep::new(&cid);
    let relay = Relay::start(server.handle.local_addr(), 5, 5, 2, 0x5eed);
    let deadline = Instant::now() + Duration::from_secs(60);

    let c = client
        .handle
        .connect(relay.front, &sid.fingerprint)
        .unwrap();
    let mut s = None;
    let mut connected = false;
    while !(connected && s.is_some()) {
        if !connected {
            match client.next(deadline) {
                Some(Event::Connected { .. }) => connected = true,
                Some(Event::ConnectFailed { failure, .. }) => panic!("{failure:?}"),
                Some(_) => {}
                None => panic!("no handshake through the lossy relay"),
            }
        }
        if s.is_none() {
            if let Some(Event::Connection { conn_id, .. }) =
                server.next(Instant::now() + Duration::from_millis(50))
            {
                s = Some(conn_id);
            }
        }
    }
    let s = s.unwrap();
    const N: usize = 2000;
    for i in 0..N / 2 {
        client.handle.send(c, &body("c", i)).unwrap();
        server.handle.send(s, &body("s", i)).unwrap();
    }
    let got_s1 = frames_until(&server, N / 2, "c", deadline);
    let got_c1 = frames_until(&client, N / 2, "s", deadline);
    assert_eq!((got_s1, got_c1), (N / 2, N / 2));

    // NAT rebinding: the monitor now sees the listener from another port.
    let new_addr = if rebind {
        relay.rebind().to_string()
    } else {
        "(no rebinding)".to_owned()
    };
    for i in N / 2..N {
        client.handle.send(c, &body("c", i)).unwrap();
        server.handle.send(s, &body("s", i)).unwrap();
    }
    assert_eq!(
        frames_from(&server, N / 2, N, "c", deadline),
        N,
        "listener→monitor after {new_addr}"
    );
    assert_eq!(
        frames_from(&client, N / 2, N, "s", deadline),
        N,
        "monitor→listener after {new_addr}"
    );
    let k = &relay.counters;
    println!(
        "fault relay: {N} frames each way delivered in order; datagrams forwarded {} dropped {} reordered {} duplicated {}; upstream now {new_addr}",
        k.forwarded.load(Ordering::Relaxed),
        k.dropped.load(Ordering::Relaxed),
        k.reordered.load(Ordering::Relaxed),
        k.duplicated.load(Ordering::Relaxed)
    );
    assert!(
        k.dropped.load(Ordering::Relaxed) >= 10,
        "faults were injected"
    );
    assert!(k.reordered.load(Ordering::Relaxed) >= 10 && k.duplicated.load(Ordering::Relaxed) >= 2);
    assert_eq!(server.handle.stats().frames_received, N as u64);
}

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
