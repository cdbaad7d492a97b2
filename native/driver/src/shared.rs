//! State the owner's thread and the IO thread share: the admission policy,
//! counters, flow credit, per-connection send accounting, the command queue's
//! commands and the waker.

use crate::flow::Flow;
use crate::stats::Stats;
use cribcall_core::tls::{AdmissionPolicy, ServerTlsCounters, SharedPolicy};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize};
use std::sync::{Arc, Mutex, RwLock};

/// Per-connection state shared with the owner's thread.
#[derive(Debug)]
pub(crate) struct ConnShared {
    /// Bytes accepted by `send` that quiche has not taken yet.
    pub(crate) queued: AtomicUsize,
    /// A 'drain' is owed once the queue is empty (a send was refused, or the
    /// queue rose above 1/DRAIN_FRACTION of the buffer).
    pub(crate) need_drain: AtomicBool,
}

impl ConnShared {
    pub(crate) fn new() -> Arc<ConnShared> {
        Arc::new(ConnShared {
            queued: AtomicUsize::new(0),
            need_drain: AtomicBool::new(false),
        })
    }
}

/// A request of the owner to the IO thread; carried out in the order made.
pub(crate) enum Command {
    Connect {
        conn_id: u32,
        addr: SocketAddr,
        fingerprint: [u8; 32],
    },
    Send {
        conn_id: u32,
        frame: Vec<u8>,
    },
    Broadcast {
        conn_ids: Vec<u32>,
        frame: Arc<[u8]>,
    },
    Close {
        conn_id: u32,
        code: u64,
        reason: String,
    },
    Shutdown,
    /// Test hook: make the IO thread panic.
    Panic,
}

/// Everything of an endpoint both threads see.
pub(crate) struct Shared {
    pub(crate) policy: SharedPolicy,
    pub(crate) listening: AtomicBool,
    pub(crate) tls_counters: Arc<ServerTlsCounters>,
    pub(crate) stats: Stats,
    pub(crate) flow: Flow,
    pub(crate) registry: Mutex<HashMap<u32, Arc<ConnShared>>>,
    /// Wakes the IO thread; taken (and its file descriptor closed) by `join`.
    pub(crate) waker: Mutex<Option<mio::Waker>>,
    pub(crate) wake_pending: AtomicBool,
    pub(crate) paused: AtomicBool,
    /// A send on the owner's thread panicked inside the IO state: the IO
    /// thread ends the endpoint (ERR_INTERNAL) at its next turn.
    pub(crate) inline_panicked: AtomicBool,
    pub(crate) next_conn_id: AtomicU32,
    pub(crate) closed: AtomicBool,
}

impl Shared {
    pub(crate) fn new() -> Shared {
        Shared {
            policy: Arc::new(RwLock::new(AdmissionPolicy::default())),
            listening: AtomicBool::new(false),
            tls_counters: Arc::new(ServerTlsCounters::default()),
            stats: Stats::default(),
            flow: Flow::default(),
            registry: Mutex::new(HashMap::new()),
            waker: Mutex::new(None),
            wake_pending: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            inline_panicked: AtomicBool::new(false),
            next_conn_id: AtomicU32::new(1),
            closed: AtomicBool::new(false),
        }
    }

    /// Whether a client certificate fingerprint is among the known peers now.
    pub(crate) fn is_known(&self, fp: &[u8; 32]) -> bool {
        match self.policy.read() {
            Ok(p) => p.known.contains(fp),
            Err(p) => p.into_inner().known.contains(fp),
        }
    }

    /// Wakes the IO thread. After `join` the waker is gone and this does
    /// nothing (the thread is gone too).
    pub(crate) fn wake_now(&self) {
        if let Some(w) = lock(&self.waker).as_ref() {
            // A failed wake means the thread is gone; commands then fail on send.
            let _ = w.wake();
        }
    }
}

/// Locks a mutex, recovering the data of a poisoned one (no lock here guards an
/// invariant a panic could break half-way).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
