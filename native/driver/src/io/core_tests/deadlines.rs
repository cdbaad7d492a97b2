//! Our deadlines (`on_deadlines`) with a fake clock: handshake, pending
//! close, pairing, frame timeout, keep-alive.

use super::pair::{addr, local_close, Pair, LISTENER, MONITOR};
use crate::io::lifecycle::Expiry;
use cribcall_core::codes;
use std::time::Duration;

#[test]
fn a_server_handshake_that_never_finishes_is_forgotten_at_its_deadline_and_not_before() {
    let mut p = Pair::new(|c| c.handshake_timeout = Duration::from_secs(10));
    let mut buf = vec![0u8; 65_535];
    let (n, _) = p.listener.q.send(&mut buf).expect("an Initial");
    let info = quiche::RecvInfo {
        from: addr(LISTENER),
        to: addr(MONITOR),
    };
    p.monitor
        .q
        .recv(&mut buf[..n], info)
        .expect("the monitor takes it");
    // The listener goes silent: its Handshake flight never arrives.
    let before = p.at(9_999);
    let due = p.at(10_000);
    assert_eq!(p.monitor_at(before, false), Expiry::Keep);
    assert_eq!(p.monitor_at(due, false), Expiry::Forget);
    assert!(
        local_close(&p.monitor).is_none(),
        "forgotten without a word"
    );
}

#[test]
fn a_client_whose_server_never_answers_times_out_with_err_handshake_timeout() {
    let mut p = Pair::new(|c| c.handshake_timeout = Duration::from_millis(1500));
    assert_eq!(p.listener_at(p.at(1_499)), Expiry::Keep);
    assert!(local_close(&p.listener).is_none());
    assert_eq!(p.listener_at(p.at(1_500)), Expiry::Keep);
    let (code, reason, error) = local_close(&p.listener).expect("closed");
    assert_eq!((code, error), (0, Some("ERR_HANDSHAKE_TIMEOUT")));
    assert!(reason.contains("1500 ms"), "{reason}");
}

#[test]
fn a_close_waiting_for_queued_frames_happens_at_its_deadline() {
    let mut p = Pair::established();
    p.monitor.pending_close = Some((codes::UNAUTHORIZED, "revoked".into(), p.at(2_000)));
    p.monitor_at(p.at(1_999), false);
    assert!(local_close(&p.monitor).is_none());
    p.monitor_at(p.at(2_000), false);
    assert_eq!(
        local_close(&p.monitor),
        Some((codes::UNAUTHORIZED, "revoked".into(), None))
    );
    // The close reaches the listener as an application close.
    p.pump();
    let err = p
        .listener
        .q
        .peer_error()
        .expect("the listener got the close");
    assert!(err.is_app && err.error_code == codes::UNAUTHORIZED);
}

#[test]
fn a_pairing_only_connection_is_closed_at_its_deadline_unless_paired_by_then() {
    for paired in [false, true] {
        let mut p = Pair::established();
        let fp = [7u8; 32];
        p.monitor.pairing_only = true;
        p.monitor.peer_fp = Some(fp);
        p.monitor.pairing_deadline = Some(p.at(180_000));
        if paired {
            p.shared
                .policy
                .write()
                .expect("policy lock")
                .known
                .insert(fp);
        }
        p.monitor_at(p.at(179_999), false);
        assert!(local_close(&p.monitor).is_none());
        p.monitor_at(p.at(180_000), false);
        if paired {
            assert!(local_close(&p.monitor).is_none(), "paired in time");
            assert!(!p.monitor.pairing_only);
        } else {
            let (code, reason, _) = local_close(&p.monitor).expect("closed");
            assert_eq!(code, codes::UNAUTHORIZED);
            assert!(reason.contains("pairing did not complete"), "{reason}");
        }
    }
}

#[test]
fn the_frame_timeout_closes_a_stalled_frame_but_not_while_we_are_the_slow_reader() {
    let mut p = Pair::established();
    let timeout = p.config.frame_timeout;
    p.monitor.frame_started = Some(p.at(0));
    let due = p.t0 + timeout;
    // Congested: we stopped reading, so the peer's clock restarts.
    p.monitor_at(due, true);
    assert!(local_close(&p.monitor).is_none());
    assert_eq!(p.monitor.frame_started, Some(due));
    p.monitor_at(due + timeout - Duration::from_millis(1), false);
    assert!(local_close(&p.monitor).is_none());
    p.monitor_at(due + timeout, false);
    let (code, reason, _) = local_close(&p.monitor).expect("closed");
    assert_eq!(code, codes::PROTOCOL_ERROR);
    assert!(reason.contains("did not complete"), "{reason}");
}

#[test]
fn keep_alive_sends_an_ack_eliciting_packet_when_due_and_not_before() {
    let mut p = Pair::established();
    let ka = p.config.keep_alive.expect("keep-alive on by default");
    let due = p
        .listener
        .keep_alive_due(Some(ka))
        .expect("a keep-alive deadline");
    assert!(due > p.t0 && due <= p.t0 + ka + ka / 8, "{:?}", due - p.t0);
    let last = p.listener.last_send;
    p.listener_at(due - Duration::from_millis(1));
    assert_eq!(p.listener.last_send, last);
    let mut buf = vec![0u8; 65_535];
    assert!(
        p.listener.q.send(&mut buf).is_err(),
        "nothing to send before"
    );
    p.listener_at(due);
    assert_eq!(p.listener.last_send, due);
    assert!(p.listener.q.send(&mut buf).is_ok(), "a PING is queued");
}
