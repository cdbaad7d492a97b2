//! Fault injection: a relay (`relay`) that drops, reorders and duplicates
//! datagrams, drops those above a path MTU, and rebinds its upstream port (as
//! a NAT would), plus a junk-datagram flood. Every test counts what arrived.
//! `transfer`: loss, reordering, duplication, NAT rebinding; `mtu`: path MTU
//! discovery over a path narrower than the endpoints' interface; `flood`.

#[path = "../common/mod.rs"]
mod common;

mod flood;
mod mtu;
mod relay;
mod transfer;

use common::Ep;
use cribcall_driver::Event;
use std::time::Instant;

/// A 400-byte payload numbered `i`, so the traffic spans many datagrams.
pub fn body(prefix: &str, i: usize) -> Vec<u8> {
    format!("{prefix}{i:>06}{}", ".".repeat(393)).into_bytes()
}

/// Reads frames `from..n` (numbered as `body` makes them) in order; returns how far it got.
pub fn frames_until(ep: &Ep, n: usize, prefix: &str, deadline: Instant) -> usize {
    frames_from(ep, 0, n, prefix, deadline)
}

pub fn frames_from(ep: &Ep, from: usize, n: usize, prefix: &str, deadline: Instant) -> usize {
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
