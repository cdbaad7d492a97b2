//! The connection survives: a restarted monitor resets it at once, keep-alive
//! carries it through silence, rebinding every second under loss keeps it.

use crate::common::Ep;
use crate::{body, link, Link};
use cribcall_core::identity::{generate_identity, KeyType};
use cribcall_driver::{EndpointConfig, Event};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

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
