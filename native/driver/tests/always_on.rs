//! The always-on channel at the driver level, over loopback through a seeded
//! fault relay that acts as the listener's NAT: NAT rebinding of the
//! listener's port or address in every traffic pattern (20 runs each), ten
//! rebindings of one connection, a monitor restarted behind the same address
//! (stateless reset), keep-alive through silence. Every fault is counted.

mod common;

use common::{Ep, Rng};
use cribcall_core::identity::{generate_identity, Identity, KeyType};
use cribcall_driver::{EndpointConfig, Event};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Counters {
    forwarded: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    rebinds: AtomicU64,
}

/// Listener ⇄ [front | NAT | upstream] ⇄ monitor. The listener dials `front`;
/// the monitor sees the relay's `upstream` socket, whose port or address
/// changes on `rebind` as a NAT's mapping would. Packets still in flight to
/// the old mapping are lost with it. The monitor behind it can be swapped
/// (a restart on another port behind the same address).
struct Relay {
    front: SocketAddr,
    upstream: Arc<Mutex<Arc<UdpSocket>>>,
    server: Arc<Mutex<SocketAddr>>,
    /// While set, datagrams to and from the monitor vanish (it is down).
    blackhole: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    threads: Vec<std::thread::JoinHandle<()>>,
    next_host: Mutex<u8>,
}

impl Relay {
    fn start(server: SocketAddr, loss_per_mille: u64, seed: u64) -> Relay {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        front
            .set_read_timeout(Some(Duration::from_millis(2)))
            .unwrap();
        let up = UdpSocket::bind("127.0.0.1:0").unwrap();
        up.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
        let front_addr = front.local_addr().unwrap();
        let upstream = Arc::new(Mutex::new(Arc::new(up)));
        let server = Arc::new(Mutex::new(server));
        let blackhole = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let t1 = {
            let (front, upstream, server, blackhole, stop, counters, client) = (
                front.clone(),
                upstream.clone(),
                server.clone(),
                blackhole.clone(),
                stop.clone(),
                counters.clone(),
                client.clone(),
            );
            std::thread::spawn(move || {
                let mut rng = Rng(seed | 1);
                let mut buf = [0u8; 65535];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = front.recv_from(&mut buf) else {
                        continue;
                    };
                    *client.lock().unwrap() = Some(from);
                    if blackhole.load(Ordering::Relaxed) {
                        continue;
                    }
                    let sock = upstream.lock().unwrap().clone();
                    let to = *server.lock().unwrap();
                    pass(&sock, to, &buf[..n], &mut rng, &counters, loss_per_mille);
                }
            })
        };
        let t2 = {
            let (front, upstream, blackhole, stop, counters, client) = (
                front.clone(),
                upstream.clone(),
                blackhole.clone(),
                stop.clone(),
                counters.clone(),
                client.clone(),
            );
            std::thread::spawn(move || {
                let mut rng = Rng(seed.rotate_left(17) | 1);
                let mut buf = [0u8; 65535];
                while !stop.load(Ordering::Relaxed) {
                    // Whatever reaches an abandoned mapping is lost with it.
                    let sock = upstream.lock().unwrap().clone();
                    let Ok((n, _)) = sock.recv_from(&mut buf) else {
                        continue;
                    };
                    let Some(to) = *client.lock().unwrap() else {
                        continue;
                    };
                    if blackhole.load(Ordering::Relaxed) {
                        continue;
                    }
                    pass(&front, to, &buf[..n], &mut rng, &counters, loss_per_mille);
                }
            })
        };
        Relay {
            front: front_addr,
            upstream,
            server,
            blackhole,
            stop,
            counters,
            threads: vec![t1, t2],
            next_host: Mutex::new(2),
        }
    }

    /// A new NAT mapping: another port, or another address (127.0.0.2, .3, …).
    fn rebind(&self, new_address: bool) -> SocketAddr {
        let bind = if new_address {
            let mut h = self.next_host.lock().unwrap();
            *h = if *h >= 250 { 2 } else { *h + 1 };
            format!("127.0.0.{}:0", *h)
        } else {
            "127.0.0.1:0".to_owned()
        };
        let s = UdpSocket::bind(bind).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
        let addr = s.local_addr().unwrap();
        *self.upstream.lock().unwrap() = Arc::new(s);
        self.counters.rebinds.fetch_add(1, Ordering::Relaxed);
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

fn pass(sock: &UdpSocket, to: SocketAddr, pkt: &[u8], rng: &mut Rng, c: &Counters, loss: u64) {
    if rng.per_mille(loss) {
        c.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let _ = sock.send_to(pkt, to);
    c.forwarded.fetch_add(1, Ordering::Relaxed);
    if rng.per_mille(loss / 2) {
        let _ = sock.send_to(pkt, to);
        c.duplicated.fetch_add(1, Ordering::Relaxed);
    }
}

fn body(prefix: &str, i: usize, len: usize) -> Vec<u8> {
    let mut b = format!("{prefix}{i:>06}").into_bytes();
    b.resize(len.max(b.len()), b'.');
    b
}

/// Listener (client) and monitor (server) connected through a fresh relay.
struct Link {
    monitor: Ep,
    listener: Ep,
    relay: Relay,
    /// Connection ids: the monitor's, the listener's.
    m: u32,
    l: u32,
    monitor_id: Identity,
}

fn link(loss_per_mille: u64, seed: u64, listener_keep_alive: Option<Duration>) -> Link {
    let monitor_id = generate_identity(KeyType::P256, None).unwrap();
    let listener_id = generate_identity(KeyType::Ed25519, None).unwrap();
    let monitor = Ep::bind(&monitor_id, "127.0.0.1:0", |_| {});
    monitor.handle.listen(true);
    let listener = Ep::bind(&listener_id, "127.0.0.1:0", |c| {
        c.keep_alive = listener_keep_alive
    });
    let relay = Relay::start(monitor.handle.local_addr(), loss_per_mille, seed);
    let deadline = Instant::now() + Duration::from_secs(20);
    let l = listener
        .handle
        .connect(relay.front, &monitor_id.fingerprint)
        .unwrap();
    loop {
        match listener.next(deadline) {
            Some(Event::Connected { .. }) => break,
            Some(Event::ConnectFailed { failure, .. }) => panic!("{failure:?}"),
            Some(_) => {}
            None => panic!("no handshake through the relay"),
        }
    }
    // The monitor learns of the connection when the listener opens the stream.
    listener.handle.send(l, b"hello").unwrap();
    let m = loop {
        match monitor.next(deadline) {
            Some(Event::Connection { conn_id, .. }) => break conn_id,
            Some(_) => {}
            None => panic!("the monitor saw no connection"),
        }
    };
    loop {
        match monitor.next(deadline) {
            Some(Event::Frame { payload, .. }) if payload == b"hello" => break,
            Some(Event::Close { info, .. }) => panic!("{info:?}"),
            Some(_) => {}
            None => panic!("no hello"),
        }
    }
    Link {
        monitor,
        listener,
        relay,
        m,
        l,
        monitor_id,
    }
}

/// Receives frames numbered `from..to` in order (anything else fails the test).
fn expect_frames(ep: &Ep, prefix: &str, from: usize, to: usize, len: usize, deadline: Instant) {
    let mut next = from;
    while next < to {
        match ep.next(deadline) {
            Some(Event::Frame { payload, .. }) => {
                assert_eq!(payload, body(prefix, next, len), "in order, nothing lost");
                next += 1;
            }
            Some(Event::Close { info, .. }) => {
                panic!("connection closed at frame {next}: {info:?}")
            }
            Some(_) => {}
            None => panic!("stalled at frame {next} of {to} ({prefix})"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Traffic {
    MonitorToListenerBulk,
    SmallBothWays,
    ListenerToMonitorBulk,
}

/// One run: traffic in four phases with a rebinding between each, so one
/// connection is rebound three times while data is in flight.
fn rebinding_run(new_address: bool, traffic: Traffic, seed: u64) {
    let k = link(10, seed, Some(Duration::from_secs(1)));
    let deadline = Instant::now() + Duration::from_secs(60);
    let (n, len) = match traffic {
        Traffic::SmallBothWays => (200, 24),
        _ => (240, 1000),
    };
    let phase = n / 4;
    for p in 0..4 {
        let range = p * phase..(p + 1) * phase;
        for i in range.clone() {
            match traffic {
                Traffic::MonitorToListenerBulk => {
                    k.monitor.handle.send(k.m, &body("m", i, len)).unwrap();
                }
                Traffic::ListenerToMonitorBulk => {
                    k.listener.handle.send(k.l, &body("l", i, len)).unwrap();
                }
                Traffic::SmallBothWays => {
                    k.monitor.handle.send(k.m, &body("m", i, len)).unwrap();
                    k.listener.handle.send(k.l, &body("l", i, len)).unwrap();
                    if i % 10 == 0 {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
            }
            // Rebind while this phase's data is still in flight.
            if p > 0 && i == range.start + phase / 3 {
                k.relay.rebind(new_address);
            }
        }
        if !matches!(traffic, Traffic::ListenerToMonitorBulk) {
            expect_frames(&k.listener, "m", range.start, range.end, len, deadline);
        }
        if !matches!(traffic, Traffic::MonitorToListenerBulk) {
            expect_frames(&k.monitor, "l", range.start, range.end, len, deadline);
        }
    }
    assert_eq!(k.relay.counters.rebinds.load(Ordering::Relaxed), 3);
    assert!(k.relay.counters.dropped.load(Ordering::Relaxed) > 0 || n < 300);
}

fn rebinding_runs(new_address: bool, traffic: Traffic) {
    let started = Instant::now();
    for run in 0..20u64 {
        rebinding_run(new_address, traffic, 0x5eed_0000 + run * 7919);
    }
    println!(
        "rebinding ({}, {traffic:?}): 20 runs × 3 rebindings, 0 stalls, 0 lost frames in {:?}",
        if new_address { "address" } else { "port" },
        started.elapsed()
    );
}

#[test]
fn port_rebinding_monitor_to_listener_bulk() {
    rebinding_runs(false, Traffic::MonitorToListenerBulk);
}

#[test]
fn port_rebinding_small_frames_both_ways() {
    rebinding_runs(false, Traffic::SmallBothWays);
}

#[test]
fn port_rebinding_listener_to_monitor_bulk() {
    rebinding_runs(false, Traffic::ListenerToMonitorBulk);
}

#[test]
fn address_rebinding_monitor_to_listener_bulk() {
    rebinding_runs(true, Traffic::MonitorToListenerBulk);
}

#[test]
fn address_rebinding_small_frames_both_ways() {
    rebinding_runs(true, Traffic::SmallBothWays);
}

#[test]
fn address_rebinding_listener_to_monitor_bulk() {
    rebinding_runs(true, Traffic::ListenerToMonitorBulk);
}

/// Twelve rebindings, alternately port and address, of one connection with a
/// receive-only listener: after each, frames still arrive, on the same
/// connection (no close, no new connection at the monitor).
#[test]
fn twelve_rebindings_of_one_connection_keep_the_same_connection() {
    let k = link(0, 42, Some(Duration::from_secs(1)));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = 0;
    for r in 0..12 {
        k.relay.rebind(r % 2 == 1);
        for _ in 0..20 {
            k.monitor.handle.send(k.m, &body("m", sent, 300)).unwrap();
            sent += 1;
        }
        expect_frames(&k.listener, "m", sent - 20, sent, 300, deadline);
    }
    // Still the one connection on both sides.
    while let Ok(e) = k.monitor.rx.try_recv() {
        assert!(
            !matches!(e, Event::Close { .. } | Event::Connection { .. }),
            "{e:?}"
        );
    }
    assert_eq!(k.monitor.handle.stats().connections, 1);
    assert_eq!(k.relay.counters.rebinds.load(Ordering::Relaxed), 12);
}

/// The monitor dies without a word (its packets vanish) and comes back with the
/// same identity on another port behind the same address: the listener's next
/// keep-alive draws a stateless reset and the connection ends with
/// ERR_CONNECTION_RESET within about a second of the monitor's return.
#[test]
fn a_restarted_monitor_resets_its_old_connections_at_once() {
    let mut worst = Duration::ZERO;
    for run in 0..5u64 {
        let k = link(0, 7 + run, Some(Duration::from_secs(1)));
        // Crash: from now on nothing passes; the old monitor is gone.
        k.relay.blackhole.store(true, Ordering::Relaxed);
        let Link {
            monitor,
            listener,
            relay,
            monitor_id,
            l,
            ..
        } = k;
        drop(monitor);
        std::thread::sleep(Duration::from_millis(300 + run * 400));
        let restarted = Ep::bind(&monitor_id, "127.0.0.1:0", |_| {});
        restarted.handle.listen(false);
        *relay.server.lock().unwrap() = restarted.handle.local_addr();
        let back = Instant::now();
        relay.blackhole.store(false, Ordering::Relaxed);
        let deadline = back + Duration::from_secs(10);
        loop {
            match listener.next(deadline) {
                Some(Event::Close { conn_id, info }) => {
                    assert_eq!(conn_id, l);
                    assert_eq!(info.error_code, Some("ERR_CONNECTION_RESET"), "{info:?}");
                    break;
                }
                Some(_) => {}
                None => panic!("the listener never noticed the restart"),
            }
        }
        let noticed = back.elapsed();
        worst = worst.max(noticed);
        assert!(
            noticed < Duration::from_millis(1500),
            "noticed after {noticed:?}"
        );
        assert!(restarted.handle.stats().stateless_resets_sent >= 1);
        assert_eq!(listener.handle.stats().stateless_resets_received, 1);
    }
    println!("restart noticed within {worst:?} of the monitor's return (5 runs)");
}

/// Silence: with keep-alive a quiet connection outlives several idle timeouts.
#[test]
fn keep_alive_carries_a_silent_connection_past_the_idle_timeout() {
    let monitor_id = generate_identity(KeyType::P256, None).unwrap();
    let listener_id = generate_identity(KeyType::P256, None).unwrap();
    let short = |c: &mut EndpointConfig| {
        c.idle_timeout = Duration::from_millis(600);
        c.keep_alive = Some(Duration::from_millis(200));
    };
    let monitor = Ep::bind(&monitor_id, "127.0.0.1:0", short);
    monitor.handle.listen(true);
    let listener = Ep::bind(&listener_id, "127.0.0.1:0", short);
    let l = listener
        .handle
        .connect(monitor.handle.local_addr(), &monitor_id.fingerprint)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match listener.next(deadline) {
            Some(Event::Connected { .. }) => break,
            Some(e) => assert!(!matches!(e, Event::ConnectFailed { .. }), "{e:?}"),
            None => panic!("no handshake"),
        }
    }
    let quiet_until = Instant::now() + Duration::from_secs(3);
    if let Some(e) = listener.next(quiet_until) {
        panic!("unexpected event during the silence: {e:?}");
    }
    listener.handle.send(l, b"still here").unwrap();
    loop {
        match monitor.next(deadline) {
            Some(Event::Frame { payload, .. }) => {
                assert_eq!(payload, b"still here");
                break;
            }
            Some(Event::Close { info, .. }) => panic!("{info:?}"),
            Some(_) => {}
            None => panic!("the connection did not survive the silence"),
        }
    }
}

/// The soak's network at the driver level: 5 % loss (and duplication) with
/// the listener's mapping rebinding every second, alternately port and
/// address, for 30 s, small frames both ways every 20 ms. The connection must
/// survive every rebinding (no close, no reset) and deliver everything in
/// order. Regression: a lost probe on a verified path used to fail the path
/// validation at once and, with it, the connection (quiche patch, path.rs).
#[test]
fn rebinding_every_second_under_loss_keeps_the_connection() {
    let k = link(50, 0xfeed, Some(Duration::from_secs(1)));
    let started = Instant::now();
    let mut next_rebind = started + Duration::from_secs(1);
    let mut sent = 0usize;
    let (mut got_l, mut got_m) = (0usize, 0usize);
    let mut rebinds = 0;
    let drain = |ep: &Ep, prefix: &str, got: &mut usize, until: Instant| {
        while let Some(e) = ep.next(until) {
            match e {
                Event::Frame { payload, .. } => {
                    assert_eq!(payload, body(prefix, *got, 24), "in order, nothing lost");
                    *got += 1;
                }
                Event::Close { info, .. } => {
                    panic!(
                        "the connection closed after {:?}: {info:?}",
                        started.elapsed()
                    )
                }
                _ => {}
            }
            if Instant::now() >= until {
                break;
            }
        }
    };
    while started.elapsed() < Duration::from_secs(30) {
        if Instant::now() >= next_rebind {
            k.relay.rebind(rebinds % 2 == 1);
            rebinds += 1;
            next_rebind += Duration::from_secs(1);
        }
        // A send refused because the connection is gone shows up as the
        // Close event the drains below report.
        let _ = k.monitor.handle.send(k.m, &body("m", sent, 24));
        let _ = k.listener.handle.send(k.l, &body("l", sent, 24));
        sent += 1;
        let until = Instant::now() + Duration::from_millis(20);
        drain(&k.listener, "m", &mut got_l, until);
        drain(&k.monitor, "l", &mut got_m, Instant::now());
    }
    // Everything sent arrives (losses are retransmitted), within a bound.
    let deadline = Instant::now() + Duration::from_secs(15);
    while (got_l < sent || got_m < sent) && Instant::now() < deadline {
        drain(
            &k.listener,
            "m",
            &mut got_l,
            Instant::now() + Duration::from_millis(50),
        );
        drain(
            &k.monitor,
            "l",
            &mut got_m,
            Instant::now() + Duration::from_millis(50),
        );
    }
    let c = &k.relay.counters;
    println!(
        "rebinding every second under 5 % loss: {rebinds} rebindings, {sent} frames each way, \
         {} dropped, {} duplicated; delivered {got_l}/{got_m}",
        c.dropped.load(Ordering::Relaxed),
        c.duplicated.load(Ordering::Relaxed)
    );
    assert_eq!((got_l, got_m), (sent, sent));
    assert!(rebinds >= 29);
    assert_eq!(k.monitor.handle.stats().connections, 1);
}
