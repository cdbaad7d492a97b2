//! The owner's side of an endpoint: starting it, the admission policy,
//! client connects, closes, counters, shutdown. Sending frames is in `send`.

mod send;

use crate::flow::Releaser;
use crate::io;
use crate::shared::{lock, Command, ConnShared, Shared};
use crate::{DriverError, EndpointConfig, EventSink, StatsSnapshot};
use cribcall_core::identity::parse_fingerprint;
use send::Outbox;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The owner's side of an endpoint.
pub struct EndpointHandle {
    shared: Arc<Shared>,
    /// The IO state, locked by the IO thread for each loop turn and by
    /// `send` when it can put a frame on the wire itself. The IO thread holds
    /// the only strong reference: its exit drops the state (closing the
    /// socket at once, so the port can be bound again).
    core: std::sync::Weak<Mutex<io::Io>>,
    /// Frames accepted by `send_deferred` and not flushed yet, in order.
    outbox: Mutex<Outbox>,
    tx: mpsc::Sender<Command>,
    local: SocketAddr,
    max_frame_payload: usize,
    max_send_buffer: usize,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl EndpointHandle {
    /// Binds the socket and starts the IO thread.
    pub fn spawn(config: EndpointConfig, sink: impl EventSink) -> Result<Self, DriverError> {
        Self::spawn_with(config, |_| sink)
    }

    /// Like [`spawn`](Self::spawn), for sinks that return flow credit themselves:
    /// `make_sink` receives the [`Releaser`] the sink must call once the owner
    /// has processed a batch (see [`batch_cost`](crate::batch_cost)).
    pub fn spawn_with<S: EventSink>(
        config: EndpointConfig,
        make_sink: impl FnOnce(Releaser) -> S,
    ) -> Result<Self, DriverError> {
        config.validate()?;
        let shared = Arc::new(Shared::new());
        let (tx, rx) = mpsc::channel();
        let (io, poll, waker, local) = io::Io::new(config.clone(), shared.clone(), rx)?;
        let thread_core = Arc::new(Mutex::new(io));
        let core = Arc::downgrade(&thread_core);
        *lock(&shared.waker) = Some(waker);
        let sink = make_sink(Releaser::new(shared.clone()));
        let thread = std::thread::Builder::new()
            .name(format!("cribcall-io {local}"))
            .spawn(move || io::run(thread_core, poll, sink))
            .map_err(|e| DriverError::Bind(format!("cannot start the IO thread: {e}")))?;
        Ok(EndpointHandle {
            shared,
            core,
            outbox: Mutex::new(Outbox::default()),
            tx,
            local,
            max_frame_payload: config.max_frame_payload,
            max_send_buffer: config.max_send_buffer,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The bound socket address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn wake(&self) {
        if !self.shared.wake_pending.swap(true, Ordering::AcqRel) {
            self.shared.wake_now();
        }
    }

    fn command(&self, cmd: Command) -> Result<(), DriverError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(DriverError::Closed);
        }
        // Frames accepted before this command go first.
        self.queue_outbox();
        self.tx.send(cmd).map_err(|_| DriverError::Closed)?;
        self.wake();
        Ok(())
    }

    /// Starts accepting connections with the given admission policy.
    pub fn listen(&self, accept_unknown: bool) {
        self.set_accept_unknown(accept_unknown);
        self.shared.listening.store(true, Ordering::Release);
    }

    /// Stops accepting new connections (existing ones stay).
    pub fn stop_listening(&self) {
        self.shared.listening.store(false, Ordering::Release);
    }

    /// Pairing open (true) or known fingerprints only (false). Takes effect for
    /// every handshake that has not yet judged the client's certificate.
    pub fn set_accept_unknown(&self, accept_unknown: bool) {
        match self.shared.policy.write() {
            Ok(mut p) => p.accept_unknown = accept_unknown,
            Err(poisoned) => poisoned.into_inner().accept_unknown = accept_unknown,
        }
    }

    /// Replaces the set of known client fingerprints.
    pub fn set_known_peers<S: AsRef<str>>(&self, fingerprints: &[S]) -> Result<(), DriverError> {
        let mut set = std::collections::HashSet::with_capacity(fingerprints.len());
        for f in fingerprints {
            set.insert(parse_fingerprint(f.as_ref())?);
        }
        match self.shared.policy.write() {
            Ok(mut p) => p.known = set,
            Err(poisoned) => poisoned.into_inner().known = set,
        }
        Ok(())
    }

    /// Starts a client connection pinned to `server_fingerprint`. Returns its id;
    /// the outcome arrives as [`Event::Connected`](crate::Event::Connected) or
    /// [`Event::ConnectFailed`](crate::Event::ConnectFailed).
    pub fn connect(&self, addr: SocketAddr, server_fingerprint: &str) -> Result<u32, DriverError> {
        let fingerprint = parse_fingerprint(server_fingerprint)?;
        if addr.is_ipv4() != self.local.is_ipv4() {
            return Err(DriverError::InvalidArgument(format!(
                "cannot reach {addr} from an endpoint bound to {} (address family differs)",
                self.local
            )));
        }
        if addr.port() == 0 || addr.ip().is_unspecified() {
            return Err(DriverError::InvalidArgument(format!(
                "cannot connect to {addr}"
            )));
        }
        let conn_id = self.shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
        self.register(conn_id);
        if let Err(e) = self.command(Command::Connect {
            conn_id,
            addr,
            fingerprint,
        }) {
            self.unregister(conn_id);
            return Err(e);
        }
        Ok(conn_id)
    }

    fn register(&self, conn_id: u32) {
        lock(&self.shared.registry).insert(conn_id, ConnShared::new());
    }

    fn unregister(&self, conn_id: u32) {
        lock(&self.shared.registry).remove(&conn_id);
    }

    /// Closes a connection with an application error code and reason.
    pub fn close_connection(
        &self,
        conn_id: u32,
        code: u64,
        reason: &str,
    ) -> Result<(), DriverError> {
        if reason.len() > 1024 {
            return Err(DriverError::InvalidArgument(
                "reason is limited to 1024 bytes".into(),
            ));
        }
        self.command(Command::Close {
            conn_id,
            code,
            reason: reason.to_owned(),
        })
    }

    /// Counters.
    pub fn stats(&self) -> StatsSnapshot {
        let tls_rejected = self.shared.tls_counters.rejected.load(Ordering::Relaxed);
        self.shared.stats.snapshot(tls_rejected)
    }

    /// The owner processed `events` events carrying `bytes` payload bytes.
    pub fn release(&self, events: usize, bytes: usize) {
        self.releaser().release(events, bytes);
    }

    /// A cloneable releaser for the owner's event-processing side.
    pub fn releaser(&self) -> Releaser {
        Releaser::new(self.shared.clone())
    }

    /// Asks the thread to close every connection and exit. Idempotent.
    pub fn shutdown(&self) {
        if !self.shared.closed.swap(true, Ordering::AcqRel) {
            self.queue_outbox();
            let _ = self.tx.send(Command::Shutdown);
            self.shared.wake_now();
        }
    }

    /// Waits for the IO thread to exit (call [`shutdown`](Self::shutdown) first).
    /// Once it returns, every file descriptor of the endpoint is closed: the
    /// thread dropped the socket and the poller, and the waker is dropped here.
    pub fn join(&self) {
        let handle = lock(&self.thread).take();
        if let Some(h) = handle {
            let _ = h.join();
            lock(&self.shared.waker).take();
        }
    }

    /// Test hook: makes the IO thread panic, to prove panics are contained.
    pub fn inject_panic(&self) -> Result<(), DriverError> {
        self.command(Command::Panic)
    }
}

impl Drop for EndpointHandle {
    fn drop(&mut self) {
        self.shutdown();
        self.join();
    }
}
