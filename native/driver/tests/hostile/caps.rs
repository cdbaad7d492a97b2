//! Caps: the connection past max_connections, and pairing-only connections
//! (their cap and their deadline).

use crate::common::Ep;
use crate::{connect_and_wait, heavy};
use cribcall_core::identity::{generate_identity, KeyType};
use cribcall_driver::Event;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A full endpoint refuses a new client at once with CONNECTION_REFUSED.
#[test]
fn the_connection_past_max_connections_is_refused_at_once() {
    let _turn = heavy();
    let mid = generate_identity(KeyType::P256, None).unwrap();
    let lid = generate_identity(KeyType::P256, None).unwrap();
    let monitor = Ep::with(&mid, |c| c.max_connections = 16);
    monitor.handle.set_known_peers(&[&lid.fingerprint]).unwrap();
    monitor.handle.listen(false);
    let listener = Ep::with(&lid, |_| {});
    let deadline = Instant::now() + Duration::from_secs(20);
    for _ in 0..16 {
        connect_and_wait(&listener, monitor.addr(), &mid.fingerprint, deadline).unwrap();
    }
    let t = Instant::now();
    let err = connect_and_wait(&listener, monitor.addr(), &mid.fingerprint, deadline).unwrap_err();
    let took = t.elapsed();
    println!("17th connection: {err} after {took:?}");
    assert!(err.starts_with("ERR_CONNECTION_REFUSED"), "{err}");
    assert!(took < Duration::from_millis(100), "refused after {took:?}");
    assert!(monitor.handle.stats().handshakes_refused >= 1);
}

/// How a crowd of strangers dialing at once fared: the indices admitted, the
/// number refused, and when the last refusal came (after `t0`).
struct Outcomes {
    admitted: Vec<usize>,
    refused: usize,
    slowest_refusal: Duration,
}

/// Waits for each stranger's outcome (connected, or refused as busy) on its
/// connection `ids[k]`, until 10 s after `t0`.
fn outcomes(strangers: &[Ep], ids: &[u32], t0: Instant) -> Outcomes {
    let deadline = t0 + Duration::from_secs(10);
    let mut admitted = Vec::new();
    let mut refused = 0;
    let mut slowest_refusal = Duration::ZERO;
    for (k, (s, id)) in strangers.iter().zip(ids).enumerate() {
        loop {
            match s.next(deadline) {
                Some(Event::Connected { conn_id, .. }) if conn_id == *id => {
                    admitted.push(k);
                    break;
                }
                Some(Event::ConnectFailed { failure, .. }) => {
                    assert!(failure.message.contains("busy"), "{failure:?}");
                    refused += 1;
                    slowest_refusal = slowest_refusal.max(t0.elapsed());
                    break;
                }
                Some(_) => {}
                None => panic!("no outcome"),
            }
        }
    }
    Outcomes {
        admitted,
        refused,
        slowest_refusal,
    }
}

/// With the cap reached, one more stranger at a time: refused within 100 ms.
fn one_more_stranger_is_refused_at_once(target: SocketAddr, fp: &str) {
    for n in 0..10 {
        let id = generate_identity(KeyType::P256, None).unwrap();
        let s = Ep::with(&id, |_| {});
        let t = Instant::now();
        let err = connect_and_wait(&s, target, fp, t + Duration::from_secs(5)).unwrap_err();
        let took = t.elapsed();
        assert!(err.contains("busy"), "{err}");
        assert!(
            took < Duration::from_millis(100),
            "stranger {n} refused after {took:?}"
        );
    }
}

/// Kept alive by QUIC PINGs, the admitted strangers are closed at the pairing
/// deadline (3 s after `admitted_at`, ± 1 s); returns how many were.
fn closed_at_the_pairing_deadline(
    strangers: &[Ep],
    admitted: &[usize],
    admitted_at: Instant,
) -> usize {
    let mut closed = 0;
    for s in admitted.iter().map(|&k| &strangers[k]) {
        let until = admitted_at + Duration::from_secs(6);
        while let Some(e) = s.next(until) {
            if let Event::Close { info, .. } = e {
                let at = admitted_at.elapsed();
                assert_eq!(info.code, 2, "{info:?}");
                assert!(info.reason.contains("pairing did not complete"), "{info:?}");
                assert!(
                    at >= Duration::from_secs(2) && at <= Duration::from_secs(4),
                    "closed after {at:?} (deadline 3 s after admission, ± 1 s)"
                );
                closed += 1;
                break;
            }
        }
    }
    closed
}

/// Pairing-only connections have a cap and a lifetime; a frame must complete
/// within the frame timeout; RESET_STREAM / STOP_SENDING of stream 0 close.
#[test]
fn pairing_only_connections_are_capped_and_deadlined() {
    let _turn = heavy();
    let mid = generate_identity(KeyType::P256, None).unwrap();
    let monitor = Ep::with(&mid, |c| {
        c.max_pairing_connections = 8;
        c.pairing_deadline = Duration::from_secs(3);
    });
    monitor.handle.listen(true);
    let target = monitor.addr();
    // 100 strangers at once, each its own identity.
    let strangers: Vec<Ep> = (0..100)
        .map(|_| {
            let id = generate_identity(KeyType::P256, None).unwrap();
            Ep::with(&id, |c| c.keep_alive = Some(Duration::from_millis(500)))
        })
        .collect();
    let t0 = Instant::now();
    let ids: Vec<u32> = strangers
        .iter()
        .map(|s| s.handle.connect(target, &mid.fingerprint).unwrap())
        .collect();
    let Outcomes {
        admitted,
        refused,
        slowest_refusal,
    } = outcomes(&strangers, &ids, t0);
    println!(
        "100 pairing-only connections: {} admitted, {refused} refused (last after {slowest_refusal:?})",
        admitted.len()
    );
    assert_eq!(admitted.len(), 8);
    assert_eq!(refused, 92);
    // No refused client waits for a timeout (the handshake deadline is 10 s):
    // each is refused as its handshake completes; 100 handshakes at once take a
    // debug build on 2 cores over a second in all.
    assert!(
        slowest_refusal < Duration::from_secs(5),
        "{slowest_refusal:?}"
    );
    let admitted_at = Instant::now();
    one_more_stranger_is_refused_at_once(target, &mid.fingerprint);
    let closed = closed_at_the_pairing_deadline(&strangers, &admitted, admitted_at);
    assert_eq!(closed, 8);
    assert!(monitor.handle.stats().closed_by_deadline >= 8);
}
