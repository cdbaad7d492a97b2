//! NAT rebinding of the listener's port or address in every traffic pattern,
//! and twelve rebindings of one connection.

use crate::{body, expect_frames, link};
use cribcall_driver::Event;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

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
