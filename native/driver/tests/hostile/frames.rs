//! Frames: the frame timeout (the monitor's protection only), and the control
//! stream reset or stopped by a raw quiche client.

use crate::common::Ep;
use crate::raw_client::RawClient;
use crate::{connect_and_wait, heavy};
use cribcall_core::identity::{generate_identity, KeyType};
use cribcall_driver::{batch_cost, Event};
use std::time::{Duration, Instant};

#[test]
fn a_frame_must_complete_within_the_frame_timeout() {
    let _turn = heavy();
    let mid = generate_identity(KeyType::P256, None).unwrap();
    let lid = generate_identity(KeyType::P256, None).unwrap();
    let monitor = Ep::with(&mid, |c| c.frame_timeout = Duration::from_secs(2));
    monitor.handle.set_known_peers(&[&lid.fingerprint]).unwrap();
    monitor.handle.listen(false);
    // Variants: two header bytes then silence; a header then one byte every
    // 500 ms (kept alive, never complete).
    for variant in 0..2 {
        let listener = Ep::with(&lid, |c| c.keep_alive = Some(Duration::from_millis(300)));
        let deadline = Instant::now() + Duration::from_secs(10);
        let c = connect_and_wait(&listener, monitor.addr(), &mid.fingerprint, deadline).unwrap();
        let t0 = Instant::now();
        if variant == 0 {
            listener.handle.send_raw(c, &[0, 0]).unwrap();
        } else {
            listener.handle.send_raw(c, &[0, 0, 0, 200]).unwrap();
        }
        let mut dribbled = 0;
        let closed = loop {
            if variant == 1 && t0.elapsed() > Duration::from_millis(500 * (dribbled + 1)) {
                let _ = listener.handle.send_raw(c, b"x");
                dribbled += 1;
            }
            match listener.next(Instant::now() + Duration::from_millis(100)) {
                Some(Event::Close { info, .. }) => break info,
                Some(_) => {}
                None => assert!(t0.elapsed() < Duration::from_secs(6), "never closed"),
            }
        };
        let at = t0.elapsed();
        println!("slow frame variant {variant}: closed after {at:?}: {closed:?}");
        assert_eq!(closed.code, 1, "PROTOCOL_ERROR");
        assert!(closed.reason.contains("did not complete"), "{closed:?}");
        assert!(
            at >= Duration::from_secs(1) && at <= Duration::from_secs(3),
            "closed after {at:?}"
        );
    }
}

/// The frame timeout is the monitor's (server's) protection: a listener does
/// not time the pinned monitor's frames, whose retransmissions after a pause
/// of the listener may take longer than the timeout (the soak's SIGSTOPped
/// listener was once closed so).
#[test]
fn a_listener_does_not_time_the_monitors_frames() {
    let mid = generate_identity(KeyType::P256, None).unwrap();
    let lid = generate_identity(KeyType::P256, None).unwrap();
    let monitor = Ep::with(&mid, |c| c.frame_timeout = Duration::from_secs(1));
    monitor.handle.set_known_peers(&[&lid.fingerprint]).unwrap();
    monitor.handle.listen(false);
    let listener = Ep::with(&lid, |c| {
        c.frame_timeout = Duration::from_secs(1);
        c.keep_alive = Some(Duration::from_millis(300));
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let c = connect_and_wait(&listener, monitor.addr(), &mid.fingerprint, deadline).unwrap();
    let server_conn = loop {
        match monitor.next(deadline) {
            Some(Event::Connection { conn_id, .. }) => break conn_id,
            Some(_) => {}
            None => panic!("the monitor never saw the listener"),
        }
    };
    // The listener opens the control stream (a frame of its own) ...
    listener.handle.send(c, b"hi").unwrap();
    loop {
        match monitor.next(deadline) {
            Some(Event::Frame { .. }) => break,
            Some(_) => {}
            None => panic!("the monitor never got the listener's frame"),
        }
    }
    // ... then a header announcing 3 bytes and one of them, then 3 s of nothing.
    monitor
        .handle
        .send_raw(server_conn, &[0, 0, 0, 3, b'a'])
        .unwrap();
    let until = Instant::now() + Duration::from_secs(3);
    while let Some(e) = listener.next(until) {
        assert!(
            !matches!(e, Event::Close { .. }),
            "the listener closed: {e:?}"
        );
    }
    // The rest of the frame arrives, and it is delivered whole.
    monitor.handle.send_raw(server_conn, b"bc").unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        match listener.next(until) {
            Some(Event::Frame { conn_id, payload }) => {
                assert_eq!(conn_id, c);
                assert_eq!(&payload[..], b"abc");
                break;
            }
            Some(Event::Close { info, .. }) => panic!("closed: {info:?}"),
            Some(_) => {}
            None => panic!("the completed frame never arrived"),
        }
    }
}

/// RESET_STREAM or STOP_SENDING on the control stream (stream 0) leaves a
/// connection that can never carry a frame again: the monitor closes it with
/// PROTOCOL_ERROR (1) at once.
#[test]
fn resetting_or_stopping_the_control_stream_closes_with_protocol_error() {
    let mid = generate_identity(KeyType::P256, None).unwrap();
    let lid = generate_identity(KeyType::P256, None).unwrap();
    let monitor = Ep::with(&mid, |_| {});
    monitor.handle.set_known_peers(&[&lid.fingerprint]).unwrap();
    monitor.handle.listen(false);
    let dir = std::env::temp_dir().join(format!("cribcall-raw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (what, direction) in [
        ("RESET_STREAM", quiche::Shutdown::Write),
        ("STOP_SENDING", quiche::Shutdown::Read),
    ] {
        let mut c = RawClient::connect(&lid, monitor.addr(), &dir);
        // Open stream 0 with one well-formed frame (a PING payload).
        let ping = br#"{"timestamp":1,"type":"PING"}"#;
        let mut frame = (ping.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(ping);
        c.conn.stream_send(0, &frame, false).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got_frame = false;
        while !got_frame {
            c.pump();
            while let Ok(e) = monitor.rx.try_recv() {
                let (n, b) = batch_cost(std::slice::from_ref(&e));
                monitor.handle.release(n, b);
                got_frame |= matches!(e, Event::Frame { .. });
            }
            assert!(Instant::now() < deadline, "{what}: the frame never arrived");
        }
        c.conn.stream_shutdown(0, direction, 0x42).unwrap();
        let t = Instant::now();
        while c.conn.peer_error().is_none() && !c.conn.is_closed() {
            c.pump();
            assert!(
                Instant::now() < deadline,
                "{what}: the monitor did not close"
            );
        }
        let err = c
            .conn
            .peer_error()
            .cloned()
            .expect("a close from the monitor");
        println!(
            "{what} on stream 0: closed with app {} code {} after {:?}: {}",
            err.is_app,
            err.error_code,
            t.elapsed(),
            String::from_utf8_lossy(&err.reason)
        );
        assert!(err.is_app && err.error_code == 1, "{what}: {err:?}");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{what}: closed after {:?}",
            t.elapsed()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
