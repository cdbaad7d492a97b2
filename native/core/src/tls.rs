//! TLS policy, decided inside the handshake.
//!
//! The decisions themselves ([`judge_server_chain`], [`judge_client_chain`]) are
//! pure functions over the peer's certificate chain. [`server_context`] and
//! [`client_context`] wire them into BoringSSL's custom verify callback, so a
//! refused certificate aborts the TLS handshake with an alert: a listener never
//! sends an application byte to an impostor, and a monitor never admits a
//! client it does not accept. `verify_peer()` of quiche must never be called on
//! these contexts: it resets the verify mode and would silently disable pinning.

use crate::identity::{fingerprint_bytes, to_hex, IdentityError, KeyType};
use boring::pkey::{PKey, Private};
use boring::ssl::{
    SslAlert, SslContextBuilder, SslMethod, SslOptions, SslRef, SslSignatureAlgorithm,
    SslVerifyError, SslVerifyMode, SslVersion,
};
use boring::x509::X509;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// ALPN protocol id of the CribCall control channel.
pub const ALPN: &[u8] = b"cribcall-ctrl";

/// Signature algorithms we verify, in preference order. BoringSSL leaves
/// Ed25519 out of its defaults; without it an Ed25519 peer cannot authenticate.
const VERIFY_ALGORITHMS: &[SslSignatureAlgorithm] = &[
    SslSignatureAlgorithm::ECDSA_SECP256R1_SHA256,
    SslSignatureAlgorithm::ED25519,
    SslSignatureAlgorithm::RSA_PSS_RSAE_SHA256,
    SslSignatureAlgorithm::ECDSA_SECP384R1_SHA384,
    SslSignatureAlgorithm::RSA_PSS_RSAE_SHA384,
    SslSignatureAlgorithm::RSA_PKCS1_SHA256,
];

/// Our own certificate and key, parsed once per endpoint.
#[derive(Clone)]
pub struct LocalCredentials {
    cert: X509,
    key: PKey<Private>,
    pub cert_der: Vec<u8>,
    pub fingerprint: [u8; 32],
    pub key_type: KeyType,
}

impl LocalCredentials {
    /// The static stateless-reset key of this identity (see [`crate::reset`]):
    /// derived from the private key, so it survives restarts without a file of
    /// its own and changes only with the identity.
    pub fn stateless_reset_key(&self) -> Result<crate::reset::ResetKey, IdentityError> {
        // PKCS#8 is the one encoding BoringSSL writes for both key types.
        let mut pkcs8 = self
            .key
            .private_key_to_pem_pkcs8()
            .map_err(|_| IdentityError::Crypto("cannot encode the private key".into()))?;
        let key = crate::reset::ResetKey::derive(&pkcs8);
        zeroize::Zeroize::zeroize(&mut pkcs8);
        Ok(key)
    }

    /// Parses a PEM certificate and PEM PKCS#8 key and checks that they match.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, IdentityError> {
        let cert = X509::from_pem(cert_pem.as_bytes()).map_err(|_| {
            IdentityError::InvalidArgument("certPem is not a PEM certificate".into())
        })?;
        let key = PKey::private_key_from_pem(key_pem.as_bytes()).map_err(|_| {
            IdentityError::InvalidArgument(
                "keyPem is not a PEM private key BoringSSL accepts (PKCS#8 v1)".into(),
            )
        })?;
        let public = cert
            .public_key()
            .map_err(|_| IdentityError::InvalidArgument("certificate has no public key".into()))?;
        if !public.public_eq(&key) {
            return Err(IdentityError::InvalidArgument(
                "keyPem does not belong to certPem".into(),
            ));
        }
        let key_type = match key.id() {
            boring::pkey::Id::ED25519 => KeyType::Ed25519,
            boring::pkey::Id::EC => KeyType::P256,
            _ => {
                return Err(IdentityError::InvalidArgument(
                    "only P-256 and Ed25519 keys are supported".into(),
                ))
            }
        };
        let cert_der = crate::identity::cert_der_from_pem_or_der(cert_pem.as_bytes())?;
        Ok(LocalCredentials {
            fingerprint: fingerprint_bytes(&cert_der),
            cert,
            key,
            cert_der,
            key_type,
        })
    }
}

/// Which client certificates a monitor admits. Changeable at runtime.
#[derive(Debug, Default, Clone)]
pub struct AdmissionPolicy {
    /// Pairing open: an unknown certificate is admitted (as pairing-only).
    pub accept_unknown: bool,
    /// Fingerprints of paired listeners.
    pub known: HashSet<[u8; 32]>,
}

pub type SharedPolicy = Arc<RwLock<AdmissionPolicy>>;

/// Why a client certificate chain was refused by the server policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientRejection {
    NoCertificate,
    ChainLength(usize),
    Unknown([u8; 32]),
}

/// The server policy's verdict on a client chain (leaf first).
pub fn judge_client_chain(
    policy: &AdmissionPolicy,
    chain: &[&[u8]],
) -> Result<([u8; 32], bool), ClientRejection> {
    match chain {
        [] => Err(ClientRejection::NoCertificate),
        [leaf] => {
            let fp = fingerprint_bytes(leaf);
            let known = policy.known.contains(&fp);
            if known || policy.accept_unknown {
                Ok((fp, known))
            } else {
                Err(ClientRejection::Unknown(fp))
            }
        }
        more => Err(ClientRejection::ChainLength(more.len())),
    }
}

/// Why the client refused the server's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinFailure {
    NoCertificate,
    ChainLength(usize),
    Mismatch {
        expected: [u8; 32],
        actual: [u8; 32],
    },
}

impl PinFailure {
    pub fn describe(&self) -> String {
        match self {
            PinFailure::NoCertificate => "the server presented no certificate".into(),
            PinFailure::ChainLength(n) => {
                format!("the server presented {n} certificates; exactly one is allowed")
            }
            PinFailure::Mismatch { expected, actual } => format!(
                "server certificate fingerprint {} does not match the pinned {}",
                to_hex(actual),
                to_hex(expected)
            ),
        }
    }
}

/// The client's verdict on the server chain: exactly one certificate whose
/// SHA-256 equals the pin. Comparison is constant-time.
pub fn judge_server_chain(expected: &[u8; 32], chain: &[&[u8]]) -> Result<[u8; 32], PinFailure> {
    match chain {
        [] => Err(PinFailure::NoCertificate),
        [leaf] => {
            let actual = fingerprint_bytes(leaf);
            if crate::ct::eq(&actual, expected) {
                Ok(actual)
            } else {
                Err(PinFailure::Mismatch {
                    expected: *expected,
                    actual,
                })
            }
        }
        more => Err(PinFailure::ChainLength(more.len())),
    }
}

/// Copies out the peer's certificate chain exactly as received (leaf first).
fn peer_chain(ssl: &SslRef) -> Vec<Vec<u8>> {
    use foreign_types::ForeignTypeRef;
    let mut out = Vec::new();
    // SAFETY: `ssl` is a live SSL object for the duration of the verify callback.
    // SSL_get0_peer_certificates returns a borrowed stack (or NULL) owned by the
    // SSL session, valid while `ssl` is; we only read it and copy the bytes out.
    unsafe {
        let chain = boring_sys::SSL_get0_peer_certificates(ssl.as_ptr());
        if chain.is_null() {
            return out;
        }
        let n = boring_sys::sk_num(chain as *const boring_sys::_STACK);
        for i in 0..n {
            let buf = boring_sys::sk_value(chain as *const boring_sys::_STACK, i)
                as *const boring_sys::CRYPTO_BUFFER;
            if buf.is_null() {
                continue;
            }
            let data = boring_sys::CRYPTO_BUFFER_data(buf);
            let len = boring_sys::CRYPTO_BUFFER_len(buf);
            if data.is_null() || len == 0 {
                continue;
            }
            out.push(std::slice::from_raw_parts(data, len).to_vec());
        }
    }
    out
}

fn base_builder(creds: &LocalCredentials) -> Result<SslContextBuilder, IdentityError> {
    let tls =
        |e: boring::error::ErrorStack| IdentityError::Crypto(format!("TLS setup failed: {e}"));
    let mut b = SslContextBuilder::new(SslMethod::tls()).map_err(tls)?;
    b.set_min_proto_version(Some(SslVersion::TLS1_3))
        .map_err(tls)?;
    b.set_max_proto_version(Some(SslVersion::TLS1_3))
        .map_err(tls)?;
    b.set_certificate(&creds.cert).map_err(tls)?;
    b.set_private_key(&creds.key).map_err(tls)?;
    b.check_private_key().map_err(tls)?;
    b.set_verify_algorithm_prefs(VERIFY_ALGORITHMS)
        .map_err(tls)?;
    // No session tickets: a resumed session skips the verify callback, which
    // would let a revoked or unpinned peer back in.
    b.set_options(SslOptions::NO_TICKET);
    Ok(b)
}

/// Counters the server's verify callback maintains.
#[derive(Debug, Default)]
pub struct ServerTlsCounters {
    pub rejected: AtomicU64,
}

/// A TLS context for the monitor (server) side: client certificate required,
/// exactly one certificate, admission by `policy`.
pub fn server_context(
    creds: &LocalCredentials,
    policy: SharedPolicy,
    counters: Arc<ServerTlsCounters>,
) -> Result<SslContextBuilder, IdentityError> {
    let mut b = base_builder(creds)?;
    b.set_custom_verify_callback(
        SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
        move |ssl: &mut SslRef| {
            let chain = peer_chain(ssl);
            let refs: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
            let verdict = match policy.read() {
                Ok(p) => judge_client_chain(&p, &refs),
                Err(poisoned) => judge_client_chain(&poisoned.into_inner(), &refs),
            };
            match verdict {
                Ok(_) => Ok(()),
                Err(rejection) => {
                    counters.rejected.fetch_add(1, Ordering::Relaxed);
                    Err(SslVerifyError::Invalid(match rejection {
                        ClientRejection::Unknown(_) => SslAlert::ACCESS_DENIED,
                        _ => SslAlert::BAD_CERTIFICATE,
                    }))
                }
            }
        },
    );
    Ok(b)
}

/// Where the client's verify callback leaves its verdict for the driver.
pub type PinRecord = Arc<Mutex<Option<PinFailure>>>;

/// A TLS context for one listener (client) connection, pinned to `expected`.
pub fn client_context(
    creds: &LocalCredentials,
    expected: [u8; 32],
    record: PinRecord,
) -> Result<SslContextBuilder, IdentityError> {
    let mut b = base_builder(creds)?;
    b.set_custom_verify_callback(SslVerifyMode::PEER, move |ssl: &mut SslRef| {
        let chain = peer_chain(ssl);
        let refs: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
        match judge_server_chain(&expected, &refs) {
            Ok(_) => Ok(()),
            Err(failure) => {
                if let Ok(mut slot) = record.lock() {
                    *slot = Some(failure);
                }
                Err(SslVerifyError::Invalid(SslAlert::BAD_CERTIFICATE))
            }
        }
    });
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::generate_identity;

    #[test]
    fn client_chain_table() {
        let a = b"cert-a".as_slice();
        let b = b"cert-b".as_slice();
        let fa = fingerprint_bytes(a);
        let mut known_only = AdmissionPolicy::default();
        known_only.known.insert(fa);
        let open = AdmissionPolicy {
            accept_unknown: true,
            ..AdmissionPolicy::default()
        };
        type Case<'a> = (
            &'a AdmissionPolicy,
            Vec<&'a [u8]>,
            Result<([u8; 32], bool), ClientRejection>,
        );
        let cases: Vec<Case> = vec![
            (&known_only, vec![], Err(ClientRejection::NoCertificate)),
            (&known_only, vec![a], Ok((fa, true))),
            (
                &known_only,
                vec![b],
                Err(ClientRejection::Unknown(fingerprint_bytes(b))),
            ),
            (
                &known_only,
                vec![a, b],
                Err(ClientRejection::ChainLength(2)),
            ),
            (&open, vec![b], Ok((fingerprint_bytes(b), false))),
            (&open, vec![], Err(ClientRejection::NoCertificate)),
            (&open, vec![a, a], Err(ClientRejection::ChainLength(2))),
        ];
        for (i, (policy, chain, expected)) in cases.into_iter().enumerate() {
            assert_eq!(judge_client_chain(policy, &chain), expected, "case {i}");
        }
    }

    #[test]
    fn server_chain_table() {
        let a = b"cert-a".as_slice();
        let b = b"cert-b".as_slice();
        let fa = fingerprint_bytes(a);
        assert_eq!(judge_server_chain(&fa, &[a]), Ok(fa));
        assert_eq!(
            judge_server_chain(&fa, &[b]),
            Err(PinFailure::Mismatch {
                expected: fa,
                actual: fingerprint_bytes(b)
            })
        );
        assert_eq!(judge_server_chain(&fa, &[]), Err(PinFailure::NoCertificate));
        assert_eq!(
            judge_server_chain(&fa, &[a, b]),
            Err(PinFailure::ChainLength(2))
        );
    }

    #[test]
    fn credentials_load_and_mismatch_detected() {
        let p = generate_identity(KeyType::P256, None).unwrap();
        let e = generate_identity(KeyType::Ed25519, None).unwrap();
        let cp = LocalCredentials::from_pem(&p.cert_pem, &p.key_pem).unwrap();
        assert_eq!(cp.key_type, KeyType::P256);
        assert_eq!(to_hex(&cp.fingerprint), p.fingerprint);
        let ce = LocalCredentials::from_pem(&e.cert_pem, &e.key_pem).unwrap();
        assert_eq!(ce.key_type, KeyType::Ed25519);
        assert!(LocalCredentials::from_pem(&p.cert_pem, &e.key_pem).is_err());
        assert!(LocalCredentials::from_pem("junk", &e.key_pem).is_err());
        let policy: SharedPolicy = Arc::default();
        assert!(server_context(&cp, policy, Arc::default()).is_ok());
        assert!(client_context(&ce, [0; 32], Arc::default()).is_ok());
    }
}
