//! Loss, reordering, duplication and NAT rebinding during a transfer.

use crate::common::Ep;
use crate::relay::{Faults, Relay};
use crate::{body, frames_from, frames_until};
use cribcall_core::identity::{generate_identity, KeyType};
use cribcall_driver::Event;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

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
    // An Ethernet path: path MTU discovery settles at 1,472 bytes, so the
    // transfer spans ~1,500 datagrams each way for the faults to hit (on
    // loopback's MTU it would take ~70 of 16 KB).
    let faults = Faults {
        loss: 5,
        reorder: 5,
        dup: 2,
        mtu: 1_472,
    };
    let relay = Relay::start(server.handle.local_addr(), faults, 0x5eed);
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
