//! What the driver's integration tests share: an endpoint whose events arrive
//! on a channel (flow credit returned as they are read) and a seeded PRNG.
#![allow(dead_code)] // each test file uses its own part

use cribcall_core::identity::Identity;
use cribcall_core::tls::LocalCredentials;
use cribcall_driver::{batch_cost, EndpointConfig, EndpointHandle, Event};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct Ep {
    pub handle: EndpointHandle,
    pub rx: mpsc::Receiver<Event>,
}

impl Ep {
    /// An endpoint on 127.0.0.1 with default settings.
    pub fn new(id: &Identity) -> Ep {
        Ep::with(id, |_| {})
    }

    /// An endpoint on 127.0.0.1 with settings changed by `tweak`.
    pub fn with(id: &Identity, tweak: impl FnOnce(&mut EndpointConfig)) -> Ep {
        Ep::bind(id, "127.0.0.1:0", tweak)
    }

    /// An endpoint on `bind`.
    pub fn bind(id: &Identity, bind: &str, tweak: impl FnOnce(&mut EndpointConfig)) -> Ep {
        let creds = LocalCredentials::from_pem(&id.cert_pem, &id.key_pem).unwrap();
        let mut cfg = EndpointConfig::new(bind.parse().unwrap(), creds);
        tweak(&mut cfg);
        let (tx, rx) = mpsc::channel();
        let handle = EndpointHandle::spawn(cfg, move |batch: Vec<Event>| {
            for e in batch {
                let _ = tx.send(e);
            }
        })
        .unwrap();
        Ep { handle, rx }
    }

    /// The next event before `deadline`, its flow credit returned.
    pub fn next(&self, deadline: Instant) -> Option<Event> {
        let e = self
            .rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .ok()?;
        self.release(&e);
        Some(e)
    }

    /// The next event matching `pred` within 10 s (panics naming `what`).
    pub fn wait(&self, what: &str, mut pred: impl FnMut(&Event) -> bool) -> Event {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let e = self
                .next(deadline)
                .unwrap_or_else(|| panic!("timed out waiting for {what}"));
            if pred(&e) {
                return e;
            }
        }
    }

    pub fn release(&self, e: &Event) {
        let (n, b) = batch_cost(std::slice::from_ref(e));
        self.handle.release(n, b);
    }

    pub fn addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }
}

/// Deterministic xorshift64*.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn per_mille(&mut self, per_mille: u64) -> bool {
        self.next() % 1000 < per_mille
    }
}
