//! A hostile device on the LAN, before authentication: Initial floods, the
//! amplification limit, version negotiation, caps and deadlines. The attack
//! generators are raw UDP sockets sending real client Initials (made by a quiche
//! client, then abandoned) and real QUIC clients (our own driver) that
//! misbehave after the handshake. Loopback only; bounded in count and time.
//!
//! This file holds what the tests share; the tests are in `flood` (Initial
//! floods, Retry), `unvalidated` (amplification limit, version negotiation),
//! `caps` (connection and pairing caps, the pairing deadline), `frames` (the frame
//! timeout, the control stream reset or stopped, with `raw_client`) and
//! `squatters` (half-open squatters that pass Retry).

#[path = "../common/mod.rs"]
mod common;

mod caps;
mod flood;
mod frames;
mod raw_client;
mod squatters;
mod unvalidated;

use common::Ep;
use cribcall_driver::Event;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Makes genuine client Initials (version 1, padded to 1200 bytes, a fresh
/// connection ID each), as any QUIC client's first datagram.
struct InitialMaker {
    cfg: quiche::Config,
    n: u64,
}

impl InitialMaker {
    fn new() -> InitialMaker {
        let mut cfg = quiche::Config::new(quiche::PROTOCOL_VERSION).unwrap();
        cfg.set_application_protos(&[b"cribcall-ctrl"]).unwrap();
        cfg.verify_peer(false);
        InitialMaker { cfg, n: 0 }
    }

    fn make(&mut self, local: SocketAddr, peer: SocketAddr) -> Vec<u8> {
        self.n += 1;
        let mut scid = [0u8; 16];
        scid[..8].copy_from_slice(&self.n.to_be_bytes());
        scid[8..].copy_from_slice(&(std::process::id() as u64).to_be_bytes());
        let scid = quiche::ConnectionId::from_ref(&scid);
        let mut conn = quiche::connect(None, &scid, local, peer, &mut self.cfg).unwrap();
        let mut out = vec![0u8; 1500];
        let (n, _) = conn.send(&mut out).unwrap();
        out.truncate(n);
        out
    }
}

/// Bytes and datagrams that come back to a socket until `until`.
fn drain_replies(sock: &UdpSocket, until: Instant) -> (usize, usize) {
    let mut buf = [0u8; 65535];
    let (mut bytes, mut datagrams) = (0, 0);
    while Instant::now() < until {
        sock.set_read_timeout(Some(
            until
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))
        .unwrap();
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            bytes += n;
            datagrams += 1;
        }
    }
    (bytes, datagrams)
}

fn connect_and_wait(
    client: &Ep,
    server: SocketAddr,
    fp: &str,
    deadline: Instant,
) -> Result<u32, String> {
    let id = client.handle.connect(server, fp).unwrap();
    loop {
        match client.next(deadline) {
            Some(Event::Connected { conn_id, .. }) if conn_id == id => return Ok(id),
            Some(Event::ConnectFailed { conn_id, failure }) if conn_id == id => {
                return Err(format!("{} {}", failure.code, failure.message))
            }
            Some(_) => {}
            None => return Err("timeout".into()),
        }
    }
}

/// One fresh handshake of the paired listener: its duration, or why it failed.
fn dial(
    listener: &Ep,
    target: SocketAddr,
    fp: &str,
    handshakes: &mut Vec<Duration>,
    failures: &mut Vec<String>,
) {
    let t = Instant::now();
    match connect_and_wait(listener, target, fp, t + Duration::from_secs(5)) {
        Ok(id) => {
            handshakes.push(t.elapsed());
            let _ = listener.handle.close_connection(id, 0, "done");
        }
        Err(e) => failures.push(e),
    }
}

/// Sleeps until the `n`-th 500 ms slot after `started`.
fn pace(started: Instant, n: usize) {
    let next = started + Duration::from_millis(500 * n as u64);
    if let Some(w) = next.checked_duration_since(Instant::now()) {
        std::thread::sleep(w);
    }
}

/// The load tests take turns: on a 2-core machine two floods at once would
/// measure each other, not the endpoint.
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|p| p.into_inner())
}

fn p95(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 95 / 100).min(v.len() - 1)]
}
