//! Half-open squatters: real QUIC clients that pass Retry and then never finish
//! the handshake.

use crate::common::Ep;
use crate::{dial, heavy, p95, pace, InitialMaker};
use cribcall_core::identity::generate_identity;
use cribcall_core::identity::KeyType;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One squatter from socket `s`: a fresh client Initial, the Retry (or
/// anything) answered once, then silence. Counts in `squatters` each that
/// answered; `buf` is the thread's receive buffer.
fn squat_once(
    maker: &mut InitialMaker,
    s: &UdpSocket,
    target: SocketAddr,
    squatters: &AtomicU64,
    buf: &mut [u8],
) {
    let local = s.local_addr().unwrap();
    maker.n += 1;
    let mut scid = [0u8; 16];
    scid[..8].copy_from_slice(&maker.n.to_be_bytes());
    let scid = quiche::ConnectionId::from_ref(&scid);
    let mut conn = quiche::connect(None, &scid, local, target, &mut maker.cfg).unwrap();
    let mut out = vec![0u8; 1500];
    let (n, _) = conn.send(&mut out).unwrap();
    let _ = s.send_to(&out[..n], target);
    // Wait for the Retry (or anything) and answer it once.
    let Ok((len, from)) = s.recv_from(buf) else {
        return;
    };
    let _ = conn.recv(&mut buf[..len], quiche::RecvInfo { from, to: local });
    if let Ok((n, _)) = conn.send(&mut out) {
        let _ = s.send_to(&out[..n], target);
        squatters.fetch_add(1, Ordering::Relaxed);
    }
    // Then silence: drain whatever else arrives on this socket.
    s.set_nonblocking(true).unwrap();
    while s.recv_from(buf).is_ok() {}
    s.set_nonblocking(false).unwrap();
}

/// Two attacker threads, 32 sockets each, squatting as fast as they can until
/// `stop`.
fn spawn_squatters(
    target: SocketAddr,
    stop: &Arc<AtomicBool>,
    squatters: &Arc<AtomicU64>,
) -> Vec<JoinHandle<()>> {
    (0..2)
        .map(|t| {
            let (stop, squatters) = (stop.clone(), squatters.clone());
            std::thread::spawn(move || {
                let mut maker = InitialMaker::new();
                maker.n = 1_000_000 * (t + 1);
                let socks: Vec<UdpSocket> = (0..32)
                    .map(|_| {
                        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                        s.set_read_timeout(Some(Duration::from_millis(200)))
                            .unwrap();
                        s
                    })
                    .collect();
                let mut buf = vec![0u8; 65535];
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let s = &socks[i % socks.len()];
                    i += 1;
                    squat_once(&mut maker, s, target, &squatters, &mut buf);
                }
            })
        })
        .collect()
}

/// The paired listener dialing from `from` got in: 99 % of its handshakes, p95
/// under a second.
fn assert_got_in(from: &str, handshakes: &[Duration], failures: &[String]) {
    let total = handshakes.len() + failures.len();
    let hs95 = p95(handshakes.to_vec());
    println!(
        "paired listener from {from}: {}/{total} handshakes, p95 {hs95:?}; failures {:?}",
        handshakes.len(),
        failures
    );
    assert!(
        handshakes.len() as f64 / total as f64 >= 0.99,
        "{from}: {:?}",
        failures
    );
    // Under a second: no Initial of the listener went unanswered (that
    // costs a 1 s retransmission timeout) and no handshake was given up.
    assert!(
        hs95 <= Duration::from_secs(1),
        "{from}: handshake p95 {hs95:?}"
    );
}

/// Half-open squatters: real QUIC clients that answer the Retry (so their
/// address is validated and the monitor creates state) and then never finish
/// the handshake, as fast as they can for 10 s. The half-open table gives way
/// to newer handshakes (the flooding address's first), so paired listeners
/// dialing every 500 ms — from the squatters' address and from another —
/// still get in without a retransmission.
#[test]
fn handshake_squatters_that_pass_retry_do_not_lock_out_paired_listeners() {
    let _turn = heavy();
    let mid = generate_identity(KeyType::P256, None).unwrap();
    let lid = generate_identity(KeyType::P256, None).unwrap();
    // The default half-open cap (128).
    let monitor = Ep::with(&mid, |_| {});
    monitor.handle.set_known_peers(&[&lid.fingerprint]).unwrap();
    monitor.handle.listen(false);
    let target = monitor.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let squatters = Arc::new(AtomicU64::new(0));
    let attackers = spawn_squatters(target, &stop, &squatters);
    // Let the half-open table fill before the listeners start dialing: one
    // from the squatters' own address (plain oldest-first among its
    // handshakes) and one from another device's (never given up for theirs).
    std::thread::sleep(Duration::from_millis(500));
    let listeners = [
        ("127.0.0.1", Ep::bind(&lid, "127.0.0.1:0", |_| {})),
        ("127.0.0.2", Ep::bind(&lid, "127.0.0.2:0", |_| {})),
    ];
    let mut handshakes = [Vec::new(), Vec::new()];
    let mut failures = [Vec::new(), Vec::new()];
    let started = Instant::now();
    let mut dials = 0;
    while started.elapsed() < Duration::from_secs(10) {
        for (i, (_, listener)) in listeners.iter().enumerate() {
            dial(
                listener,
                target,
                &mid.fingerprint,
                &mut handshakes[i],
                &mut failures[i],
            );
        }
        dials += 1;
        pace(started, dials);
    }
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        a.join().unwrap();
    }
    let stats = monitor.handle.stats();
    println!(
        "squatters: {} answered the Retry; monitor: {} started, {} given up or refused, \
         {} retried, half-open {} (cap 128)",
        squatters.load(Ordering::Relaxed),
        stats.handshakes_started,
        stats.handshakes_refused,
        stats.handshakes_retried,
        stats.half_open,
    );
    assert!(
        squatters.load(Ordering::Relaxed) >= 1000,
        "the squatters ran"
    );
    assert!(
        stats.handshakes_refused >= 500,
        "the half-open table gave way"
    );
    assert!(stats.half_open <= 128);
    for (i, (from, _)) in listeners.iter().enumerate() {
        assert_got_in(from, &handshakes[i], &failures[i]);
    }
}
