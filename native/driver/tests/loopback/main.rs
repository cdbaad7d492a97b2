//! Driver tests over real loopback UDP (no JS involved).
//!
//! This file holds the connected pair the tests share; the tests are in
//! `handshake` (key types, pinning, admission, deadlines, IPv6), `frames`
//! (framing limits, order, closes) and `throughput` (flow control, bulk
//! transfers, broadcast, inline and deferred sends).

#[path = "../common/mod.rs"]
mod common;

mod frames;
mod handshake;
mod throughput;

use common::Ep;
use cribcall_core::identity::{generate_identity, Identity, KeyType};
use cribcall_driver::Event;

const PING: &[u8] = br#"{"type":"PING","timestamp":123}"#;

fn conn_id_of(e: &Event) -> u32 {
    match e {
        Event::Connection { conn_id, .. }
        | Event::Connected { conn_id, .. }
        | Event::ConnectFailed { conn_id, .. }
        | Event::Frame { conn_id, .. }
        | Event::Close { conn_id, .. } => *conn_id,
        _ => panic!("no conn id in {e:?}"),
    }
}

/// Server + connected client; returns (server, client, server conn id, client conn id).
fn pair(sk: KeyType, ck: KeyType) -> (Ep, Ep, Identity, Identity, u32, u32) {
    let sid = generate_identity(sk, None).unwrap();
    let cid = generate_identity(ck, None).unwrap();
    let server = Ep::new(&sid);
    server.handle.listen(true);
    let client = Ep::new(&cid);
    let c = client
        .handle
        .connect(server.addr(), &sid.fingerprint)
        .unwrap();
    let ev = client.wait("connected", |e| {
        matches!(e, Event::Connected { .. } | Event::ConnectFailed { .. })
    });
    match &ev {
        Event::Connected {
            peer_fingerprint, ..
        } => assert_eq!(peer_fingerprint, &sid.fingerprint),
        other => panic!("{sk:?}->{ck:?}: expected connected, got {other:?}"),
    }
    let sev = server.wait("connection", |e| matches!(e, Event::Connection { .. }));
    let s = conn_id_of(&sev);
    if let Event::Connection {
        peer_fingerprint,
        peer_known,
        ..
    } = &sev
    {
        assert_eq!(peer_fingerprint, &cid.fingerprint);
        assert!(!peer_known);
    }
    (server, client, sid, cid, s, c)
}
