//! Close ordering: a close the owner asks for while frames are queued goes
//! out after them (`stream::request_close`, `stream::close_if_flushed`, the
//! frames handed over by `stream::write_queued`, as the loop does).

use super::pair::{local_close, Pair};
use crate::conn::{Chunk, OutChunk, CONTROL_STREAM};
use crate::io::stream::{close_if_flushed, request_close, write_queued};
use cribcall_core::{codes, framing};

/// An established pair whose listener opened stream 0, as a listener's first
/// frame does.
fn with_stream_open() -> Pair {
    let mut p = Pair::established();
    p.listener
        .q
        .stream_send(CONTROL_STREAM, b"hello", false)
        .expect("stream 0");
    p.pump();
    let mut sink = [0u8; 64];
    let _ = p.monitor.q.stream_recv(CONTROL_STREAM, &mut sink);
    p.monitor.stream_open = true;
    p
}

/// `n` framed messages of `len` bytes, message i filled with byte i.
fn queue_frames(p: &mut Pair, n: usize, len: usize) -> Vec<u8> {
    let mut wire = Vec::new();
    for i in 0..n {
        let frame = framing::encode_frame(&vec![i as u8; len], framing::DEFAULT_MAX_PAYLOAD)
            .expect("a frame");
        wire.extend_from_slice(&frame);
        p.monitor.outq.push_back(OutChunk {
            chunk: Chunk::Owned(frame),
            offset: 0,
        });
    }
    wire
}

/// Everything the listener can read from stream 0.
fn read_all(p: &mut Pair) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while let Ok((n, _)) = p.listener.q.stream_recv(CONTROL_STREAM, &mut buf) {
        got.extend_from_slice(&buf[..n]);
    }
    got
}

#[test]
fn a_close_with_frames_queued_goes_out_after_them() {
    let mut p = with_stream_open();
    let wire = queue_frames(&mut p, 8, 500);
    let now = p.at(0);
    request_close(&mut p.monitor, codes::UNAUTHORIZED, "revoked".into(), now);
    assert!(local_close(&p.monitor).is_none(), "waits for the frames");
    assert!(!close_if_flushed(&mut p.monitor), "nothing handed over yet");
    let mut scratch = Vec::new();
    let (bytes, frames) = write_queued(&mut p.monitor, &mut scratch);
    assert_eq!((bytes, frames), (wire.len(), 8));
    p.flight(false); // the frames go out before the close exists
    assert!(
        !close_if_flushed(&mut p.monitor),
        "not before they are acknowledged"
    );
    p.flight(true); // the listener's ACK
    assert!(close_if_flushed(&mut p.monitor));
    p.pump();
    assert_eq!(read_all(&mut p), wire, "every frame, in order");
    let err = p.listener.q.peer_error().expect("then the close");
    assert!(err.is_app);
    assert_eq!(
        (err.error_code, err.reason.as_slice()),
        (codes::UNAUTHORIZED, &b"revoked"[..])
    );
}

#[test]
fn a_close_waits_for_frames_beyond_the_congestion_window() {
    // ~200 KB: within the stream's flow-control window, so quiche takes it
    // all at once, but many times the initial congestion window, so most of it
    // is still in quiche's buffer when the last frame has been handed over.
    let mut p = with_stream_open();
    let wire = queue_frames(&mut p, 200, 1000);
    let now = p.at(0);
    request_close(&mut p.monitor, codes::UNAUTHORIZED, "revoked".into(), now);
    let mut scratch = Vec::new();
    let mut got = Vec::new();
    let mut closed = false;
    // As the loop does: hand frames over, send, then see whether the close may go.
    for _ in 0..1000 {
        write_queued(&mut p.monitor, &mut scratch);
        p.flight(false);
        if close_if_flushed(&mut p.monitor) {
            closed = true;
            break;
        }
        got.extend(read_all(&mut p));
        p.flight(true);
    }
    assert!(
        closed,
        "the close happened once everything was acknowledged"
    );
    p.pump();
    got.extend(read_all(&mut p));
    assert_eq!(got.len(), wire.len(), "every byte before the close");
    assert_eq!(got, wire);
    assert!(p.listener.q.peer_error().is_some_and(|e| e.is_app));
}

#[test]
fn a_close_with_nothing_queued_happens_at_once() {
    let mut p = with_stream_open();
    let now = p.at(0);
    request_close(&mut p.monitor, codes::OK, "bye".into(), now);
    assert_eq!(
        local_close(&p.monitor),
        Some((codes::OK, "bye".into(), None))
    );
    p.pump();
    assert!(p.listener.q.peer_error().is_some_and(|e| e.is_app));
}

#[test]
fn frames_queued_after_a_pending_close_do_not_delay_it_past_its_deadline() {
    let mut p = with_stream_open();
    queue_frames(&mut p, 2, 100);
    let now = p.at(0);
    request_close(&mut p.monitor, codes::UNAUTHORIZED, "revoked".into(), now);
    // A second close request keeps the first (its code and its deadline).
    let now = p.at(500);
    request_close(&mut p.monitor, codes::OK, "later".into(), now);
    let (code, reason, deadline) = p.monitor.pending_close.clone().expect("pending");
    assert_eq!((code, reason.as_str()), (codes::UNAUTHORIZED, "revoked"));
    assert_eq!(deadline, p.at(2_000));
}
