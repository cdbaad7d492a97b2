//! Readiness follows RFC 9001 §4.1.2 (the handshake is confirmed by
//! HANDSHAKE_DONE), not "the server's first 1-RTT packet". A quinn server sends
//! 1-RTT packets (NEW_CONNECTION_ID) before it has judged the client's
//! certificate, as RFC 9000 allows; a server that then refuses the certificate
//! must produce a handshake failure at the client, never a connection.
//!
//! The server is quinn-proto (sans-IO) over a std UDP socket, driven here.

use cribcall_core::identity::{generate_identity, Identity, KeyType};
use cribcall_core::tls::{LocalCredentials, ALPN};
use cribcall_driver::{batch_cost, EndpointConfig, EndpointHandle, Event};
use quinn_proto::crypto::rustls::QuicServerConfig;
use quinn_proto::{DatagramEvent, Endpoint, ServerConfig};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Asks for a client certificate and refuses every one.
#[derive(Debug)]
struct RefuseAll {
    judged: Arc<AtomicUsize>,
}

impl ClientCertVerifier for RefuseAll {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.judged.fetch_add(1, Ordering::SeqCst);
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::ApplicationVerificationFailure,
        ))
    }
    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not used".into()))
    }
    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![
            SignatureScheme::ECDSA_NISTP256_SHA256,
            SignatureScheme::ED25519,
        ]
    }
}

/// A quinn server on a std UDP socket that refuses every client certificate
/// (counting in `judged` those it judged), driven by hand one turn at a time.
struct QuinnServer {
    endpoint: Endpoint,
    socket: UdpSocket,
    conn: Option<(quinn_proto::ConnectionHandle, quinn_proto::Connection)>,
    buf: Vec<u8>,
    out: Vec<u8>,
    /// Datagrams sent that carried a 1-RTT packet.
    short_packets_sent: usize,
}

impl QuinnServer {
    fn new(server_id: &Identity, judged: &Arc<AtomicUsize>) -> QuinnServer {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_client_cert_verifier(Arc::new(RefuseAll {
                judged: judged.clone(),
            }))
            .with_single_cert(
                vec![CertificateDer::from(server_id.cert_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_id.key_pkcs8_der.clone())),
            )
            .unwrap();
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let server_config =
            ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls).unwrap()));
        let endpoint = Endpoint::new(
            Arc::new(quinn_proto::EndpointConfig::default()),
            Some(Arc::new(server_config)),
            true,
            None,
        );
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        QuinnServer {
            endpoint,
            socket,
            conn: None,
            buf: vec![0u8; 65535],
            out: Vec::new(),
            short_packets_sent: 0,
        }
    }

    /// One turn: at most one datagram received and handled, then the
    /// connection's timers, events and transmissions.
    fn turn(&mut self) {
        let now = Instant::now();
        self.receive(now);
        let Some((ch, c)) = self.conn.as_mut() else {
            return;
        };
        if c.poll_timeout().is_some_and(|t| t <= now) {
            c.handle_timeout(now);
        }
        while let Some(ev) = c.poll_endpoint_events() {
            if let Some(back) = self.endpoint.handle_event(*ch, ev) {
                c.handle_event(back);
            }
        }
        while c.poll().is_some() {}
        loop {
            self.out.clear();
            let Some(t) = c.poll_transmit(now, 1, &mut self.out) else {
                break;
            };
            if has_short_header_packet(&self.out[..t.size]) {
                self.short_packets_sent += 1;
            }
            let _ = self.socket.send_to(&self.out[..t.size], t.destination);
        }
    }

    /// Receives and handles at most one datagram (waiting up to 5 ms).
    fn receive(&mut self, now: Instant) {
        let Ok((n, from)) = self.socket.recv_from(&mut self.buf) else {
            return;
        };
        let data = bytes::BytesMut::from(&self.buf[..n]);
        match self
            .endpoint
            .handle(now, from, None, None, data, &mut self.out)
        {
            Some(DatagramEvent::NewConnection(incoming)) => {
                self.out.clear();
                match self.endpoint.accept(incoming, now, &mut self.out, None) {
                    Ok(c) => self.conn = Some(c),
                    Err(e) => panic!("accept: {:?}", e.cause),
                }
            }
            Some(DatagramEvent::ConnectionEvent(_, ev)) => {
                if let Some((_, c)) = self.conn.as_mut() {
                    c.handle_event(ev);
                }
            }
            Some(DatagramEvent::Response(t)) => {
                let _ = self.socket.send_to(&self.out[..t.size], t.destination);
            }
            None => {}
        }
    }
}

/// Our client endpoint; its events arrive on the receiver.
fn our_client() -> (EndpointHandle, mpsc::Receiver<Event>) {
    let client_id = generate_identity(KeyType::P256, None).unwrap();
    let creds = LocalCredentials::from_pem(&client_id.cert_pem, &client_id.key_pem).unwrap();
    let (tx, rx) = mpsc::channel();
    let client = EndpointHandle::spawn(
        EndpointConfig::new("127.0.0.1:0".parse().unwrap(), creds),
        move |batch: Vec<Event>| {
            for e in batch {
                let _ = tx.send(e);
            }
        },
    )
    .unwrap();
    (client, rx)
}

#[test]
fn a_server_that_sends_1rtt_then_refuses_our_certificate_is_a_handshake_failure() {
    let server_id = generate_identity(KeyType::P256, None).unwrap();
    let judged = Arc::new(AtomicUsize::new(0));
    let mut server = QuinnServer::new(&server_id, &judged);
    let server_addr = server.socket.local_addr().unwrap();

    // Our client.
    let (client, rx) = our_client();
    let conn_id = client.connect(server_addr, &server_id.fingerprint).unwrap();

    // Drive the quinn server until our client reports an outcome.
    let deadline = Instant::now() + Duration::from_secs(10);
    let outcome = loop {
        assert!(Instant::now() < deadline, "no outcome at the client");
        if let Ok(e) = rx.try_recv() {
            let (n, b) = batch_cost(std::slice::from_ref(&e));
            client.release(n, b);
            match e {
                Event::Connected { .. } => break Err("reported connected"),
                Event::ConnectFailed { failure, .. } => break Ok(failure),
                _ => continue,
            }
        }
        server.turn();
    };
    let failure = outcome.expect("the client must not report a refused connection as connected");
    assert_eq!(failure.code, "ERR_PEER_REJECTED", "{failure:?}");
    assert_eq!(
        judged.load(Ordering::SeqCst),
        1,
        "the server judged our certificate"
    );
    assert!(
        server.short_packets_sent >= 1,
        "the server sent 1-RTT before refusing (else this test proves nothing)"
    );
    assert_eq!(client.stats().connections, 0);
    let _ = conn_id;
}

fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let first = *b.get(*i)?;
    let len = 1usize << (first >> 6);
    let bytes = b.get(*i..*i + len)?;
    let mut v = u64::from(first & 0x3f);
    for x in &bytes[1..] {
        v = (v << 8) | u64::from(*x);
    }
    *i += len;
    Some(v)
}

/// Whether a datagram carries a 1-RTT (short header) packet, alone or coalesced
/// after long-header packets (RFC 9000 §12.2, §17.2).
fn has_short_header_packet(d: &[u8]) -> bool {
    let mut i = 0;
    while i < d.len() {
        if d[i] & 0x80 == 0 {
            return true;
        }
        let ty = (d[i] >> 4) & 0x03;
        let mut j = i + 5;
        let Some(&dcid_len) = d.get(j) else {
            return false;
        };
        j += 1 + dcid_len as usize;
        let Some(&scid_len) = d.get(j) else {
            return false;
        };
        j += 1 + scid_len as usize;
        if ty == 0 {
            let Some(token_len) = varint(d, &mut j) else {
                return false;
            };
            j += token_len as usize;
        }
        let Some(len) = varint(d, &mut j) else {
            return false;
        };
        i = j + len as usize;
    }
    false
}
