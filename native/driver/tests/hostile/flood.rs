//! Initial floods: paired listeners still get in, and every Initial received
//! gets its Retry.

use crate::common::Ep;
use crate::{connect_and_wait, dial, drain_replies, heavy, p95, pace, InitialMaker};
use cribcall_core::identity::{generate_identity, KeyType};
use cribcall_driver::Event;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const FLOOD: Duration = Duration::from_secs(20);

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The flood: 2,000 client Initials a second to `target` from 64 source
/// ports, never completed, until `stop` or for `FLOOD`; `sent` counts them.
fn spawn_initial_flood(
    target: SocketAddr,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let socks: Vec<UdpSocket> = (0..64)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let mut maker = InitialMaker::new();
        let start = Instant::now();
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) && start.elapsed() < FLOOD {
            // Pace to 2,000 a second.
            let due = start + Duration::from_micros(i * 500);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let s = &socks[(i % 64) as usize];
            let pkt = maker.make(s.local_addr().unwrap(), target);
            if s.send_to(&pkt, target).is_ok() {
                sent.fetch_add(1, Ordering::Relaxed);
            }
            i += 1;
        }
    })
}

/// One round trip on the established channel `c` of `chan`, started at `t`:
/// ping `n` goes out and the monitor echoes it. False when a direction took
/// more than 5 s.
fn echo_round_trip(monitor: &Ep, chan: &Ep, c: u32, n: usize, t: Instant) -> bool {
    chan.handle.send(c, format!("ping {n}").as_bytes()).unwrap();
    let echoed = loop {
        match monitor.next(t + Duration::from_secs(5)) {
            Some(Event::Frame { conn_id, payload }) => {
                monitor.handle.send(conn_id, &payload).unwrap();
                break true;
            }
            Some(_) => {}
            None => break false,
        }
    };
    echoed
        && loop {
            match chan.next(t + Duration::from_secs(5)) {
                Some(Event::Frame { .. }) => break true,
                Some(_) => {}
                None => break false,
            }
        }
}

/// What the paired listener and the established channel saw during the flood.
struct DuringFlood {
    handshakes: Vec<Duration>,
    failures: Vec<String>,
    pings: Vec<Duration>,
}

/// For `FLOOD`: the paired listener dials every 500 ms (each dial a fresh
/// handshake), and after each dial one round trip on the established channel.
fn dial_and_ping(monitor: &Ep, chan: &Ep, c: u32, listener: &Ep, fp: &str) -> DuringFlood {
    let target = monitor.addr();
    let mut handshakes = Vec::new();
    let mut failures = Vec::new();
    let mut pings = Vec::new();
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < FLOOD {
        dial(listener, target, fp, &mut handshakes, &mut failures);
        // One round trip on the established channel: the monitor echoes.
        let t = Instant::now();
        let back = echo_round_trip(monitor, chan, c, n, t);
        n += 1;
        assert!(back, "the established channel stalled during the flood");
        pings.push(t.elapsed());
        pace(started, handshakes.len() + failures.len());
    }
    DuringFlood {
        handshakes,
        failures,
        pings,
    }
}

/// 2,000 client Initials a second from 64 source ports for 20 s, never
/// completed, while a paired listener dials every 500 ms and an established
/// channel measures round trips.
#[test]
fn an_initial_flood_does_not_lock_out_paired_listeners() {
    let _turn = heavy();
    let mid = generate_identity(KeyType::P256, None).unwrap();
    let lid = generate_identity(KeyType::P256, None).unwrap();
    let monitor = Ep::with(&mid, |_| {});
    monitor.handle.set_known_peers(&[&lid.fingerprint]).unwrap();
    monitor.handle.listen(false);
    let target = monitor.addr();
    let rss0 = rss_kib();

    // An established channel, pinged throughout.
    let chan = Ep::with(&lid, |_| {});
    let deadline = Instant::now() + Duration::from_secs(10);
    let c = connect_and_wait(&chan, target, &mid.fingerprint, deadline).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flood = spawn_initial_flood(target, stop.clone(), sent.clone());

    // The paired listener dials every 500 ms; each dial is a fresh handshake.
    let listener = Ep::with(&lid, |_| {});
    let DuringFlood {
        handshakes,
        failures,
        pings,
    } = dial_and_ping(&monitor, &chan, c, &listener, &mid.fingerprint);
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    let stats = monitor.handle.stats();
    let total = handshakes.len() + failures.len();
    let ok_ratio = handshakes.len() as f64 / total as f64;
    let hs95 = p95(handshakes.clone());
    let ping95 = p95(pings);
    let rss_growth = rss_kib().saturating_sub(rss0);
    println!(
        "flood: {} Initials sent; paired listener {}/{} handshakes, p95 {:?}; round trip p95 {:?}; \
         monitor: {} retried, {} started, {} refused, half-open {}; RSS +{} KiB; failures {:?}",
        sent.load(Ordering::Relaxed),
        handshakes.len(),
        total,
        hs95,
        ping95,
        stats.handshakes_retried,
        stats.handshakes_started,
        stats.handshakes_refused,
        stats.half_open,
        rss_growth,
        failures
    );
    assert!(sent.load(Ordering::Relaxed) >= 30_000, "the flood ran");
    assert!(
        stats.handshakes_retried >= 20_000,
        "Retry answered the flood"
    );
    assert!(ok_ratio >= 0.99, "{failures:?}");
    assert!(hs95 <= Duration::from_secs(1), "handshake p95 {hs95:?}");
    assert!(
        ping95 < Duration::from_millis(50),
        "round trip p95 {ping95:?}"
    );
    assert!(rss_growth < 20 * 1024, "RSS grew by {rss_growth} KiB");
}

/// Retry is not rate-limited: under a flood every Initial the monitor receives
/// is answered, so a listener's Initial among them is never left to its 1 s
/// retransmission timeout (a budget of 5,000 a second once did exactly that).
#[test]
fn every_initial_received_gets_its_retry() {
    let _turn = heavy();
    let mid = generate_identity(KeyType::P256, None).unwrap();
    let monitor = Ep::with(&mid, |c| c.retry_threshold = Some(0));
    monitor.handle.listen(true);
    let target = monitor.addr();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let initial = InitialMaker::new().make(sock.local_addr().unwrap(), target);
    // 25,000 a second for 0.8 s, in bursts the socket buffers hold: a
    // budget of 5,000 a second (plus a burst of as many) would answer 9,000.
    let t = Instant::now();
    for burst in 0..80u32 {
        for _ in 0..250 {
            let _ = sock.send_to(&initial, target);
        }
        let next = t + Duration::from_millis(10) * (burst + 1);
        if let Some(w) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(w);
        }
    }
    let took = t.elapsed();
    let (_, back) = drain_replies(&sock, Instant::now() + Duration::from_millis(1000));
    let stats = monitor.handle.stats();
    println!(
        "20,000 Initials sent in {took:?}: monitor received {}, sent {} Retries; {back} came back",
        stats.packets_received, stats.handshakes_retried
    );
    assert!(stats.packets_received >= 15_000, "the flood arrived");
    assert_eq!(stats.handshakes_retried, stats.packets_received);
    assert_eq!(stats.handshakes_started, 0, "a Retry keeps nothing");
}
