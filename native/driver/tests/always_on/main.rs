//! The always-on channel at the driver level, over loopback through a seeded
//! fault relay that acts as the listener's NAT: NAT rebinding of the
//! listener's port or address in every traffic pattern (20 runs each), ten
//! rebindings of one connection, a monitor restarted behind the same address
//! (stateless reset), keep-alive through silence. Every fault is counted.
//!
//! This file holds the link through the relay (`relay`) and the frame helpers
//! the tests share; the tests are in `rebinding` (NAT rebinding in every traffic
//! pattern, twelve rebindings of one connection) and `survival` (a restarted
//! monitor, keep-alive through silence, rebinding every second under loss).

#[path = "../common/mod.rs"]
mod common;

mod rebinding;
mod relay;
mod survival;

use common::Ep;
use cribcall_core::identity::{generate_identity, Identity, KeyType};
use cribcall_driver::Event;
use relay::Relay;
use std::time::{Duration, Instant};

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
