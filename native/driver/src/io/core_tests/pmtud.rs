//! Path MTU discovery (RFC 9000 §14.3) as configured by `base_quiche_config`:
//! packets grow once a probe is acknowledged, no datagram ever exceeds the
//! peer's max_udp_payload_size transport parameter (RFC 9000 §18.2), and a
//! new path (a NAT rebinding) starts again from the minimum — the two
//! path-MTU parts of our quiche patch (`cap_max`, `fresh_pmtud`).

use super::pair::{addr, Pair, LISTENER, MONITOR, REBOUND};
use crate::conn::CONTROL_STREAM;
use cribcall_core::limits;

/// Every datagram one side has, delivered to the other; the largest one's
/// size, or None if there was none.
fn one_way(p: &mut Pair, from_listener: bool) -> Option<usize> {
    let mut buf = vec![0u8; 65_535];
    // Through the NAT: the monitor sees `listener_addr`, the listener's own
    // address never changes.
    let (src, dst, from, to) = if from_listener {
        (
            &mut p.listener,
            &mut p.monitor,
            p.listener_addr,
            addr(MONITOR),
        )
    } else {
        (
            &mut p.monitor,
            &mut p.listener,
            addr(MONITOR),
            addr(LISTENER),
        )
    };
    let info = quiche::RecvInfo { from, to };
    let mut largest = None;
    while let Ok((n, _)) = src.q.send(&mut buf) {
        largest = largest.max(Some(n));
        let _ = dst.q.recv(&mut buf[..n], info);
    }
    largest
}

/// Moves every datagram both ways until neither side has anything to send;
/// returns the largest datagram each sent (monitor, listener).
fn exchange(p: &mut Pair) -> (usize, usize) {
    let (mut from_monitor, mut from_listener) = (0, 0);
    for _ in 0..10_000 {
        let l = one_way(p, true);
        let m = one_way(p, false);
        if l.is_none() && m.is_none() {
            return (from_monitor, from_listener);
        }
        from_listener = from_listener.max(l.unwrap_or(0));
        from_monitor = from_monitor.max(m.unwrap_or(0));
    }
    panic!("the two sides never went quiet");
}

/// 200 KB each way on stream 0, read as it arrives.
fn transfer(p: &mut Pair) -> (usize, usize) {
    let (mut m_max, mut l_max) = exchange(p);
    let chunk = vec![7u8; 10_000];
    let mut sink = vec![0u8; 65_536];
    for _ in 0..20 {
        p.listener
            .q
            .stream_send(CONTROL_STREAM, &chunk, false)
            .expect("listener send");
        if p.monitor
            .q
            .stream_writable(CONTROL_STREAM, 1)
            .unwrap_or(false)
        {
            let _ = p.monitor.q.stream_send(CONTROL_STREAM, &chunk, false);
        }
        let (m, l) = exchange(p);
        (m_max, l_max) = (m_max.max(m), l_max.max(l));
        while p.monitor.q.stream_recv(CONTROL_STREAM, &mut sink).is_ok() {}
        while p.listener.q.stream_recv(CONTROL_STREAM, &mut sink).is_ok() {}
    }
    (m_max, l_max)
}

#[test]
fn packets_grow_to_what_the_path_carries() {
    let mut p = Pair::with_pmtud(|_, _| {});
    let (m_max, l_max) = transfer(&mut p);
    // In memory nothing is too large: both reach the largest size probed.
    assert_eq!(m_max, limits::PMTUD_MAX_UDP_PAYLOAD, "monitor");
    assert_eq!(l_max, limits::PMTUD_MAX_UDP_PAYLOAD, "listener");
    let pmtu = p.listener.q.path_stats().next().map(|s| s.pmtu);
    assert_eq!(pmtu, Some(limits::PMTUD_MAX_UDP_PAYLOAD));
}

#[test]
fn no_datagram_exceeds_the_peers_max_udp_payload_size() {
    // The listener takes datagrams of at most 1,400 bytes; the monitor any size.
    let mut p = Pair::with_pmtud(|_, listener| listener.set_max_recv_udp_payload_size(1_400));
    let (m_max, _) = transfer(&mut p);
    assert!(
        m_max <= 1_400,
        "the monitor sent a datagram of {m_max} bytes"
    );
    assert!(
        m_max > limits::MAX_SEND_UDP_PAYLOAD,
        "{m_max}: discovery still ran up to the cap"
    );
}

#[test]
fn without_discovery_packets_keep_the_fixed_size() {
    let mut p = Pair::established();
    p.monitor.stream_open = true;
    let (m_max, l_max) = transfer(&mut p);
    assert_eq!(m_max, limits::MAX_SEND_UDP_PAYLOAD);
    assert_eq!(l_max, limits::MAX_SEND_UDP_PAYLOAD);
}

#[test]
fn a_new_path_starts_from_the_minimum_and_discovers_its_own_mtu() {
    let mut p = Pair::with_pmtud(|_, _| {});
    transfer(&mut p);
    // The NAT rebinds the listener: its next packet reaches the monitor from
    // a new address, a path whose MTU nobody knows yet.
    p.listener_addr = addr(REBOUND);
    p.listener
        .q
        .stream_send(CONTROL_STREAM, b"after", false)
        .expect("send");
    assert!(one_way(&mut p, true).is_some());
    let pmtu_of = |p: &Pair| {
        p.monitor
            .q
            .path_stats()
            .find(|s| s.peer_addr == addr(REBOUND))
            .map(|s| s.pmtu)
    };
    // Without the patch: 16,383 at once (the configured maximum).
    assert_eq!(
        pmtu_of(&p),
        Some(1_200),
        "the new path starts from the minimum"
    );
    let (m_max, _) = transfer(&mut p);
    assert_eq!(
        m_max,
        limits::PMTUD_MAX_UDP_PAYLOAD,
        "discovery ran on the new path"
    );
    assert_eq!(pmtu_of(&p), Some(limits::PMTUD_MAX_UDP_PAYLOAD));
}

#[test]
fn the_initial_window_is_ten_minimum_datagrams_not_ten_probes() {
    // RFC 9002 §7.2: ten datagrams of the size in use (1,200 bytes until a
    // probe is acknowledged), at most 14,720 bytes. quiche scaled it to ten
    // of the largest size it would probe: 163,830 bytes.
    let mut p = Pair::with_pmtud(|_, _| {});
    p.pump();
    for (who, c) in [("monitor", &p.monitor), ("listener", &p.listener)] {
        let cwnd = c.q.path_stats().next().map(|s| s.cwnd);
        assert!(
            cwnd.is_some_and(|w| w <= 14_720),
            "{who}'s congestion window after the handshake: {cwnd:?}"
        );
    }
}
