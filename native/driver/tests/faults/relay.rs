//! The fault relay: a UDP relay between a listener and a monitor that drops,
//! reorders and duplicates datagrams, drops those larger than its MTU, and
//! rebinds its upstream port (as a NAT would). It counts what it did.

use crate::common::Rng;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
pub struct Counters {
    pub forwarded: AtomicU64,
    pub dropped: AtomicU64,
    pub reordered: AtomicU64,
    pub duplicated: AtomicU64,
    /// Dropped for being larger than the path's MTU.
    pub too_large: AtomicU64,
    /// The largest datagram forwarded.
    pub largest: AtomicU64,
}

pub struct Relay {
    /// Where the listener sends (the "monitor address" it dials).
    pub front: SocketAddr,
    upstream: Arc<Mutex<UdpSocket>>,
    stop: Arc<AtomicBool>,
    pub counters: Arc<Counters>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// What both directions of the relay share.
#[derive(Clone)]
struct Shared {
    front: Arc<UdpSocket>,
    upstream: Arc<Mutex<UdpSocket>>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    /// The listener's address, once it sent something.
    client: Arc<Mutex<Option<SocketAddr>>>,
}

/// Per cent of datagrams lost, held back (reordered) and duplicated; the
/// largest UDP payload the path carries (0: any).
#[derive(Clone, Copy, Default)]
pub struct Faults {
    pub loss: u64,
    pub reorder: u64,
    pub dup: u64,
    pub mtu: usize,
}

/// listener -> monitor
fn listener_to_monitor(
    sh: Shared,
    server: SocketAddr,
    f: Faults,
    seed: u64,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut rng = Rng(seed | 1);
        let mut held: Option<Vec<u8>> = None;
        let mut buf = [0u8; 65535];
        while !sh.stop.load(Ordering::Relaxed) {
            let Ok((n, from)) = sh.front.recv_from(&mut buf) else {
                continue;
            };
            *sh.client.lock().unwrap() = Some(from);
            let pkt = buf[..n].to_vec();
            forward(
                &sh.upstream,
                server,
                pkt,
                &mut held,
                &mut rng,
                &sh.counters,
                f,
            );
        }
    })
}

/// monitor -> listener
fn monitor_to_listener(sh: Shared, f: Faults, seed: u64) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut rng = Rng(seed.rotate_left(17) | 1);
        let mut held: Option<Vec<u8>> = None;
        let mut buf = [0u8; 65535];
        while !sh.stop.load(Ordering::Relaxed) {
            // Read from whatever the upstream socket currently is.
            let sock = sh.upstream.lock().unwrap().try_clone().unwrap();
            let Ok((n, _)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let Some(to) = *sh.client.lock().unwrap() else {
                continue;
            };
            let pkt = buf[..n].to_vec();
            let front_sock = Arc::new(Mutex::new(sh.front.try_clone().unwrap()));
            forward(&front_sock, to, pkt, &mut held, &mut rng, &sh.counters, f);
        }
    })
}

impl Relay {
    pub fn start(server: SocketAddr, f: Faults, seed: u64) -> Relay {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        front
            .set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let up = UdpSocket::bind("127.0.0.1:0").unwrap();
        up.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        let front_addr = front.local_addr().unwrap();
        let sh = Shared {
            front: Arc::new(front),
            upstream: Arc::new(Mutex::new(up)),
            stop: Arc::new(AtomicBool::new(false)),
            counters: Arc::new(Counters::default()),
            client: Arc::default(),
        };
        let t1 = listener_to_monitor(sh.clone(), server, f, seed);
        let t2 = monitor_to_listener(sh.clone(), f, seed);
        Relay {
            front: front_addr,
            upstream: sh.upstream,
            stop: sh.stop,
            counters: sh.counters,
            threads: vec![t1, t2],
        }
    }

    /// The relay's upstream port changes, as after a NAT rebinding.
    pub fn rebind(&self) -> SocketAddr {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        let addr = s.local_addr().unwrap();
        *self.upstream.lock().unwrap() = s;
        addr
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn forward(
    sock: &Arc<Mutex<UdpSocket>>,
    to: SocketAddr,
    pkt: Vec<u8>,
    held: &mut Option<Vec<u8>>,
    rng: &mut Rng,
    c: &Counters,
    f: Faults,
) {
    let Faults {
        loss,
        reorder,
        dup,
        mtu,
    } = f;
    let s = sock.lock().unwrap().try_clone().unwrap();
    if mtu > 0 && pkt.len() > mtu {
        // A router on the way cannot forward it and Don't Fragment is set.
        c.too_large.fetch_add(1, Ordering::Relaxed);
        return;
    }
    c.largest.fetch_max(pkt.len() as u64, Ordering::Relaxed);
    if rng.chance(loss) {
        c.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if held.is_none() && rng.chance(reorder) {
        // Hold this one back; it goes out after the next datagram.
        *held = Some(pkt);
        c.reordered.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let _ = s.send_to(&pkt, to);
    c.forwarded.fetch_add(1, Ordering::Relaxed);
    if rng.chance(dup) {
        let _ = s.send_to(&pkt, to);
        c.duplicated.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(h) = held.take() {
        let _ = s.send_to(&h, to);
        c.forwarded.fetch_add(1, Ordering::Relaxed);
    }
}
