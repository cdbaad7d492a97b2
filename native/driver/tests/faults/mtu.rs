//! Path MTU discovery over a path narrower than the endpoints' interface
//! (loopback's MTU is 64 KiB; the relay drops every datagram above an
//! Ethernet path's 1,472-byte UDP payload, as a router with Don't Fragment
//! set would): probes above it are lost, the connection settles on what the
//! path carries — more than the 1,350 bytes of a fixed size — and no frame is
//! lost or reordered on the way.

use crate::common::Ep;
use crate::relay::{Faults, Relay};
use crate::{body, frames_from};
use cribcall_core::identity::{generate_identity, KeyType};
use cribcall_core::limits;
use cribcall_driver::Event;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const ETHERNET_UDP_PAYLOAD: usize = 1_472;

#[test]
fn discovery_settles_on_what_a_narrower_path_carries_and_loses_nothing() {
    let sid = generate_identity(KeyType::P256, None).unwrap();
    let cid = generate_identity(KeyType::P256, None).unwrap();
    let server = Ep::new(&sid);
    server.handle.listen(true);
    let client = Ep::new(&cid);
    let faults = Faults {
        mtu: ETHERNET_UDP_PAYLOAD,
        ..Faults::default()
    };
    let relay = Relay::start(server.handle.local_addr(), faults, 7);
    let deadline = Instant::now() + Duration::from_secs(60);
    let c = client
        .handle
        .connect(relay.front, &sid.fingerprint)
        .unwrap();
    client.wait("connected", |e| matches!(e, Event::Connected { .. }));
    let s = match server.wait("connection", |e| matches!(e, Event::Connection { .. })) {
        Event::Connection { conn_id, .. } => conn_id,
        _ => unreachable!(),
    };
    // Rounds of traffic both ways: discovery probes between them.
    const ROUNDS: usize = 20;
    const PER_ROUND: usize = 100;
    for round in 0..ROUNDS {
        for i in round * PER_ROUND..(round + 1) * PER_ROUND {
            client.handle.send(c, &body("c", i)).unwrap();
            server.handle.send(s, &body("s", i)).unwrap();
        }
        let n = (round + 1) * PER_ROUND;
        assert_eq!(frames_from(&server, round * PER_ROUND, n, "c", deadline), n);
        assert_eq!(frames_from(&client, round * PER_ROUND, n, "s", deadline), n);
    }
    let k = &relay.counters;
    let (too_large, largest) = (
        k.too_large.load(Ordering::Relaxed),
        k.largest.load(Ordering::Relaxed) as usize,
    );
    println!(
        "path MTU {ETHERNET_UDP_PAYLOAD}: {too_large} datagrams too large dropped, largest forwarded {largest} bytes"
    );
    if cfg!(target_os = "linux") {
        assert!(too_large > 0, "no probe above the path's MTU was sent");
        assert!(
            largest > limits::MAX_SEND_UDP_PAYLOAD,
            "largest datagram {largest}: discovery did not raise the size"
        );
    }
    assert!(largest <= ETHERNET_UDP_PAYLOAD);
    assert_eq!(
        server.handle.stats().connections,
        1,
        "the connection survived"
    );
}
