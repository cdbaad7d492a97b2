//! The seeded fault relay that acts as the listener's NAT.

use crate::common::Rng;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) forwarded: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) duplicated: AtomicU64,
    pub(crate) rebinds: AtomicU64,
}

/// Listener ⇄ [front | NAT | upstream] ⇄ monitor. The listener dials `front`;
/// the monitor sees the relay's `upstream` socket, whose port or address
/// changes on `rebind` as a NAT's mapping would. Packets still in flight to
/// the old mapping are lost with it. The monitor behind it can be swapped
/// (a restart on another port behind the same address).
pub(crate) struct Relay {
    pub(crate) front: SocketAddr,
    upstream: Arc<Mutex<Arc<UdpSocket>>>,
    pub(crate) server: Arc<Mutex<SocketAddr>>,
    /// While set, datagrams to and from the monitor vanish (it is down).
    pub(crate) blackhole: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    pub(crate) counters: Arc<Counters>,
    threads: Vec<std::thread::JoinHandle<()>>,
    next_host: Mutex<u8>,
}

impl Relay {
    pub(crate) fn start(server: SocketAddr, loss_per_mille: u64, seed: u64) -> Relay {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        front
            .set_read_timeout(Some(Duration::from_millis(2)))
            .unwrap();
        let up = UdpSocket::bind("127.0.0.1:0").unwrap();
        up.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
        let front_addr = front.local_addr().unwrap();
        let upstream = Arc::new(Mutex::new(Arc::new(up)));
        let server = Arc::new(Mutex::new(server));
        let blackhole = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let t1 = {
            let (front, upstream, server, blackhole, stop, counters, client) = (
                front.clone(),
                upstream.clone(),
                server.clone(),
                blackhole.clone(),
                stop.clone(),
                counters.clone(),
                client.clone(),
            );
            std::thread::spawn(move || {
                let mut rng = Rng(seed | 1);
                let mut buf = [0u8; 65535];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = front.recv_from(&mut buf) else {
                        continue;
                    };
                    *client.lock().unwrap() = Some(from);
                    if blackhole.load(Ordering::Relaxed) {
                        continue;
                    }
                    let sock = upstream.lock().unwrap().clone();
                    let to = *server.lock().unwrap();
                    pass(&sock, to, &buf[..n], &mut rng, &counters, loss_per_mille);
                }
            })
        };
        let t2 = {
            let (front, upstream, blackhole, stop, counters, client) = (
                front.clone(),
                upstream.clone(),
                blackhole.clone(),
                stop.clone(),
                counters.clone(),
                client.clone(),
            );
            std::thread::spawn(move || {
                let mut rng = Rng(seed.rotate_left(17) | 1);
                let mut buf = [0u8; 65535];
                while !stop.load(Ordering::Relaxed) {
                    // Whatever reaches an abandoned mapping is lost with it.
                    let sock = upstream.lock().unwrap().clone();
                    let Ok((n, _)) = sock.recv_from(&mut buf) else {
                        continue;
                    };
                    let Some(to) = *client.lock().unwrap() else {
                        continue;
                    };
                    if blackhole.load(Ordering::Relaxed) {
                        continue;
                    }
                    pass(&front, to, &buf[..n], &mut rng, &counters, loss_per_mille);
                }
            })
        };
        Relay {
            front: front_addr,
            upstream,
            server,
            blackhole,
            stop,
            counters,
            threads: vec![t1, t2],
            next_host: Mutex::new(2),
        }
    }

    /// A new NAT mapping: another port, or another address (127.0.0.2, .3, …).
    pub(crate) fn rebind(&self, new_address: bool) -> SocketAddr {
        let bind = if new_address {
            let mut h = self.next_host.lock().unwrap();
            *h = if *h >= 250 { 2 } else { *h + 1 };
            format!("127.0.0.{}:0", *h)
        } else {
            "127.0.0.1:0".to_owned()
        };
        let s = UdpSocket::bind(bind).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
        let addr = s.local_addr().unwrap();
        *self.upstream.lock().unwrap() = Arc::new(s);
        self.counters.rebinds.fetch_add(1, Ordering::Relaxed);
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

fn pass(sock: &UdpSocket, to: SocketAddr, pkt: &[u8], rng: &mut Rng, c: &Counters, loss: u64) {
    if rng.per_mille(loss) {
        c.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let _ = sock.send_to(pkt, to);
    c.forwarded.fetch_add(1, Ordering::Relaxed);
    if rng.per_mille(loss / 2) {
        let _ = sock.send_to(pkt, to);
        c.duplicated.fetch_add(1, Ordering::Relaxed);
    }
}
