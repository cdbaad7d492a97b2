//! NAT rebinding: the listener's address changes under a live connection.

use super::pair::{addr, Pair, REBOUND};

#[test]
fn a_nat_rebinding_of_the_listener_keeps_the_connection_and_its_stream() {
    let mut p = Pair::established();
    p.listener
        .q
        .stream_send(0, b"before", false)
        .expect("stream 0");
    p.pump();
    // The NAT gives the listener a new port: the monitor validates the new
    // path and keeps the connection; data flows both ways.
    p.listener_addr = addr(REBOUND);
    p.listener
        .q
        .stream_send(0, b"after", false)
        .expect("stream 0");
    p.pump();
    let mut got = vec![0u8; 64];
    let (n, _) = p.monitor.q.stream_recv(0, &mut got).expect("stream data");
    assert_eq!(&got[..n], b"beforeafter");
    p.monitor.q.stream_send(0, b"reply", false).expect("reply");
    p.pump();
    let (n, _) = p.listener.q.stream_recv(0, &mut got).expect("the reply");
    assert_eq!(&got[..n], b"reply");
    assert!(p.monitor.q.is_established() && !p.monitor.q.is_closed());
    let to_new = p.monitor.q.path_stats().any(|s| {
        s.peer_addr == addr(REBOUND)
            && s.active
            && format!("{:?}", s.validation_state) == "Validated"
    });
    assert!(to_new, "the monitor validated the new path and uses it");
}
