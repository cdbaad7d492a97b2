//! The handshake in memory: completion, confirmation, and why it fails.

use super::pair::Pair;

#[test]
fn the_handshake_completes_in_memory_with_our_tls_and_quiche_configuration() {
    let p = Pair::established();
    assert!(p.listener.q.is_handshake_confirmed());
    assert!(p
        .listener
        .pin_record
        .as_ref()
        .is_some_and(|r| r.lock().is_ok_and(|f| f.is_none())));
}

#[test]
fn a_listener_is_ready_only_once_the_monitor_confirmed_the_handshake() {
    let mut p = Pair::new(|_| {});
    assert!(p.flight(true) > 0, "Initial");
    assert!(p.flight(false) > 0, "the monitor's flight");
    // The listener has its 1-RTT keys but the monitor has not judged its
    // certificate yet (RFC 9001 §4.1.2): not ready.
    assert!(p.listener.q.is_established());
    assert!(!p.listener.ready());
    assert!(!p.monitor.ready());
    assert!(p.flight(true) > 0, "the listener's Finished");
    assert!(p.monitor.ready(), "the monitor admitted the listener");
    assert!(p.flight(false) > 0, "HANDSHAKE_DONE");
    assert!(p.listener.ready());
}

#[test]
fn a_listener_the_monitor_does_not_know_fails_with_err_peer_rejected() {
    let mut p = Pair::with(false, None, |_| {});
    p.pump();
    assert!(!p.listener.ready() && !p.monitor.ready());
    let failure = p.listener.connect_failure();
    assert_eq!(failure.code, "ERR_PEER_REJECTED", "{failure:?}");
}

#[test]
fn a_monitor_with_another_certificate_fails_with_err_pin_mismatch_naming_both() {
    let pinned = [0xab; 32];
    let mut p = Pair::with(true, Some(pinned), |_| {});
    p.pump();
    assert!(!p.listener.ready());
    let failure = p.listener.connect_failure();
    assert_eq!(failure.code, "ERR_PIN_MISMATCH", "{failure:?}");
    assert_eq!(failure.expected.as_deref(), Some("ab".repeat(32).as_str()));
    let actual = failure.actual.expect("the presented fingerprint");
    assert_eq!(actual.len(), 64);
    assert_ne!(actual, "ab".repeat(32));
}
