//! Starting an endpoint: the socket and its poller, the quiche configuration
//! shared by both roles, the keys of the endpoint, and the debugging aids
//! (SSLKEYLOGFILE, QLOGDIR).

use super::send::Batch;
use super::{Io, SOCKET, WAKER};
use crate::ratelimit::TokenBucket;
use crate::retry::RetryTokens;
use crate::sched::Schedule;
use crate::udp::{self, Offload};
use crate::{Command, DriverError, EndpointConfig, Shared};
use cribcall_core::limits;
use cribcall_core::tls;
use mio::net::UdpSocket;
use mio::{Interest, Poll, Registry, Waker};
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::Instant;

/// The quiche configuration of either role: our TLS context, ALPN, limits,
/// flow-control windows, stream counts (one client-opened bidirectional
/// stream), no active migration, CUBIC, no early data; path MTU discovery
/// when `pmtud` (the socket sets Don't Fragment), else a fixed packet size.
pub(super) fn base_quiche_config(
    builder: boring::ssl::SslContextBuilder,
    cfg: &EndpointConfig,
    is_server: bool,
    pmtud: bool,
) -> Result<quiche::Config, DriverError> {
    let mut c = quiche::Config::with_boring_ssl_ctx_builder(quiche::PROTOCOL_VERSION, builder)
        .map_err(|e| DriverError::Tls(format!("quiche config: {e}")))?;
    c.set_application_protos(&[tls::ALPN])
        .map_err(|e| DriverError::Tls(format!("ALPN: {e}")))?;
    c.set_max_idle_timeout(cfg.idle_timeout.as_millis() as u64);
    c.set_max_recv_udp_payload_size(limits::MAX_DATAGRAM);
    if pmtud {
        // Probes up to the largest size; packets stay at 1,200 bytes until
        // one is acknowledged (RFC 9000 §14.3).
        c.discover_pmtu(true);
        c.set_max_send_udp_payload_size(limits::PMTUD_MAX_UDP_PAYLOAD);
    } else {
        c.set_max_send_udp_payload_size(limits::MAX_SEND_UDP_PAYLOAD);
    }
    c.set_initial_max_data(limits::CONNECTION_WINDOW);
    c.set_initial_max_stream_data_bidi_local(limits::STREAM_WINDOW);
    c.set_initial_max_stream_data_bidi_remote(limits::STREAM_WINDOW);
    c.set_initial_max_stream_data_uni(0);
    // The monitor admits one client-opened bidirectional stream and no
    // unidirectional ones; the listener admits no server-opened streams.
    c.set_initial_max_streams_bidi(if is_server { 1 } else { 0 });
    c.set_initial_max_streams_uni(0);
    c.set_max_stream_window(limits::MAX_STREAM_WINDOW);
    c.set_max_connection_window(limits::MAX_CONNECTION_WINDOW);
    c.set_disable_active_migration(true);
    // The recovery cribcall-quic's quiche patch covers (native/vendor/README.md).
    c.set_cc_algorithm(quiche::CongestionControlAlgorithm::CUBIC);
    if std::env::var_os("SSLKEYLOGFILE").is_some() {
        c.log_keys();
    }
    // Early data stays disabled: enable_early_data() is never called.
    Ok(c)
}

/// The bound socket, registered with a new poller, and what wakes that poller.
struct Bound {
    poll: Poll,
    socket: UdpSocket,
    local: SocketAddr,
    offload: Offload,
    waker: Waker,
    /// Don't Fragment is set: path MTU discovery is on.
    pmtud: bool,
    /// A clone of the poller's registry, for the IO state.
    registry: Registry,
}

/// Binds the UDP socket (larger buffers, segmentation offload where the OS
/// has it) and registers it and a waker with a new poller.
fn bind(config: &EndpointConfig) -> Result<Bound, DriverError> {
    let poll = Poll::new().map_err(|e| DriverError::Bind(format!("poll: {e}")))?;
    let mut socket = UdpSocket::bind(config.bind)
        .map_err(|e| DriverError::Bind(format!("cannot bind UDP {}: {e}", config.bind)))?;
    let local = socket
        .local_addr()
        .map_err(|e| DriverError::Bind(format!("local_addr: {e}")))?;
    enlarge_socket_buffers(&socket);
    let pmtud = udp::set_dont_fragment(&socket, local.is_ipv6());
    let offload = Offload::enable(&socket, config.udp_offload);
    poll.registry()
        .register(&mut socket, SOCKET, Interest::READABLE)
        .map_err(|e| DriverError::Bind(format!("register: {e}")))?;
    let waker =
        Waker::new(poll.registry(), WAKER).map_err(|e| DriverError::Bind(format!("waker: {e}")))?;
    let registry = poll
        .registry()
        .try_clone()
        .map_err(|e| DriverError::Bind(format!("registry: {e}")))?;
    Ok(Bound {
        poll,
        socket,
        local,
        offload,
        waker,
        pmtud,
        registry,
    })
}

/// The largest packet quiche may build: the buffer handed to it is this long.
pub(super) fn max_payload(pmtud: bool) -> usize {
    if pmtud {
        limits::PMTUD_MAX_UDP_PAYLOAD
    } else {
        limits::MAX_SEND_UDP_PAYLOAD
    }
}

/// The Retry token minter and checker, with a random key of this endpoint.
fn retry_tokens() -> Result<RetryTokens, DriverError> {
    let mut token_key = [0u8; 32];
    SystemRandom::new()
        .fill(&mut token_key)
        .map_err(|_| DriverError::Tls("random generator failed".into()))?;
    Ok(RetryTokens::new(
        &token_key,
        Instant::now(),
        limits::RETRY_TOKEN_LIFETIME,
    ))
}

impl Io {
    /// Binds the socket and builds the IO state; returns it with the poller
    /// and the waker (for the IO thread and the owner) and the bound address.
    pub fn new(
        config: EndpointConfig,
        shared: Arc<Shared>,
        rx: mpsc::Receiver<Command>,
    ) -> Result<(Io, Poll, Waker, SocketAddr), DriverError> {
        let Bound {
            poll,
            socket,
            local,
            offload,
            waker,
            pmtud,
            registry,
        } = bind(&config)?;
        let server_builder = tls::server_context(
            &config.credentials,
            shared.policy.clone(),
            shared.tls_counters.clone(),
        )?;
        let server_config = base_quiche_config(server_builder, &config, true, pmtud)?;
        let reset_key = config.credentials.stateless_reset_key()?;
        let retry_tokens = retry_tokens()?;
        let (keylog, qlog_dir) = debugging_aids()?;
        debug_log!("endpoint bound to {local}");
        Ok((
            Io {
                registry,
                planned_wake: None,
                pmtud,
                socket,
                local,
                config,
                server_config,
                shared,
                rx,
                conns: HashMap::new(),
                cid_map: HashMap::new(),
                events: Vec::new(),
                rng: SystemRandom::new(),
                recv_buf: vec![0; limits::MAX_DATAGRAM],
                // Room for one GSO batch; without GSO one packet at a time.
                send_buf: vec![0; udp::MAX_BATCH_BYTES + max_payload(pmtud)],
                read_buf: vec![0; 64 * 1024],
                scratch: Vec::new(),
                blocked: VecDeque::new(),
                offload,
                gro_buf: if offload.gro {
                    vec![0; limits::MAX_DATAGRAM]
                } else {
                    Vec::new()
                },
                writable_interest: false,
                shutting_down: false,
                more_to_read: false,
                keylog,
                qlog_dir,
                reset_key,
                unsolicited_budget: TokenBucket::new(limits::UNSOLICITED_REPLIES_PER_SEC),
                retry_tokens,
                half_open: 0,
                half_open_order: VecDeque::new(),
                pairing_only: 0,
                sched: Schedule::default(),
                starved: HashSet::new(),
                blocked_ids: Vec::new(),
                batch: Batch::default(),
            },
            poll,
            waker,
            local,
        ))
    }

    /// Debugging aids, off unless asked for: SSLKEYLOGFILE (TLS secrets in NSS
    /// key log format, for Wireshark) and QLOGDIR (one qlog file per connection).
    /// A file that cannot be created later (disk full) is skipped.
    pub(super) fn attach_keylog(&self, q: &mut quiche::Connection, is_server: bool) {
        if let Some(path) = &self.keylog {
            if let Ok(f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                q.set_keylog(Box::new(f));
            }
        }
        if let Some(dir) = &self.qlog_dir {
            let role = if is_server { "server" } else { "client" };
            let file = dir.join(format!("{}-{role}.sqlog", q.trace_id()));
            match std::fs::File::create(&file) {
                Ok(f) => q.set_qlog(
                    Box::new(std::io::BufWriter::new(f)),
                    format!("cribcall-quic {role}"),
                    format!("cribcall-quic {role} {}", q.trace_id()),
                ),
                Err(e) => debug_log!("qlog {}: {e}", file.display()),
            }
        }
    }
}

/// Asks for larger socket buffers than the kernel's defaults, so a burst (a
/// fan-out, a retransmission after a path change) is not dropped by the
/// kernel. The kernel may grant less (net.core.rmem_max); that is not an error.
fn enlarge_socket_buffers(socket: &UdpSocket) {
    let s = socket2::SockRef::from(socket);
    let _ = s.set_recv_buffer_size(limits::SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(limits::SOCKET_BUFFER);
}

/// SSLKEYLOGFILE and QLOGDIR, checked when the endpoint starts: the QLOGDIR
/// directory is created (with its parents), and either one that cannot be
/// used fails the bind with a message naming it, instead of writing nothing.
fn debugging_aids() -> Result<(Option<PathBuf>, Option<PathBuf>), DriverError> {
    let keylog = std::env::var_os("SSLKEYLOGFILE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    if let Some(path) = &keylog {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                DriverError::InvalidArgument(format!(
                    "SSLKEYLOGFILE={}: cannot open the file: {e}",
                    path.display()
                ))
            })?;
    }
    let qlog_dir = std::env::var_os("QLOGDIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    if let Some(dir) = &qlog_dir {
        std::fs::create_dir_all(dir).map_err(|e| {
            DriverError::InvalidArgument(format!(
                "QLOGDIR={}: cannot create the directory: {e}",
                dir.display()
            ))
        })?;
    }
    Ok((keylog, qlog_dir))
}
