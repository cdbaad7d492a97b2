//! QR pairing proof (SPEC.md §7.1): the monitor's QR code carries a fresh
//! one-time secret for its pairing window, and `PAIR_REQUEST.pairingProof`
//! proves that the requesting listener read it.
//!
//! - **Secret**: 32 random bytes, made anew each time a pairing window opens;
//!   in the QR payload as unpadded base64url (`pairingSecret`, 43 characters).
//! - **Transcript**: the RFC 8785 (JCS) bytes of the flat string object
//!
//!   ```text
//!   {"context":"cribcall qr pairing v1","listenerCertFingerprint":…,"listenerId":…,
//!    "listenerName":…,"listenerPublicKey":…,"monitorCertFingerprint":…,"monitorId":…}
//!   ```
//!
//!   with both certificate fingerprints as the side computing it observed them in
//!   TLS (64 lowercase hex digits), and the other members exactly as they appear
//!   in the QR payload (`monitorId`) and in `PAIR_REQUEST` (the listener's).
//! - **Proof**: `HMAC-SHA256(key = the 32 secret bytes, transcript)`, 32 bytes, on
//!   the wire as unpadded base64url. The monitor recomputes it and compares in
//!   constant time.
//!
//! A plain MAC is enough here (no PAKE as for the PIN, §7.2): the secret has 256
//! bits of entropy, so a proof an attacker might see gives no dictionary to
//! search offline, and the listener already authenticates the monitor by the
//! fingerprint pin. Binding both TLS-observed fingerprints makes a proof
//! worthless on any other TLS session than the one between these two
//! certificates.
//!
//! Sans-IO: randomness comes from the caller's [`SecureRandom`].

use crate::{ct, jcs};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
pub use ring::rand::SecureRandom;
use sha2::Sha256;
use std::fmt;
use zeroize::Zeroizing;

/// Bytes of a pairing secret.
pub const SECRET_LEN: usize = 32;
/// Bytes of a proof (HMAC-SHA256).
pub const PROOF_LEN: usize = 32;
/// Characters of 32 bytes in unpadded base64url.
pub const B64URL_32_LEN: usize = 43;
/// Value of the transcript's `context` member (domain separation).
pub const CONTEXT: &str = "cribcall qr pairing v1";

/// Errors of the QR pairing proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QrProofError {
    /// A caller-supplied argument is malformed. The message never contains the
    /// secret.
    InvalidArgument(String),
    /// The system random generator failed.
    Internal(String),
}

impl QrProofError {
    /// Stable error code for the JS layer.
    pub fn code(&self) -> &'static str {
        match self {
            QrProofError::InvalidArgument(_) => "ERR_INVALID_ARG",
            QrProofError::Internal(_) => "ERR_INTERNAL",
        }
    }
}

impl fmt::Display for QrProofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QrProofError::InvalidArgument(m) | QrProofError::Internal(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for QrProofError {}

/// What a proof is bound to. Fingerprints: as this side observed them in TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims<'a> {
    /// The monitor's certificate fingerprint (64 lowercase hex digits).
    pub monitor_cert_fingerprint: &'a str,
    /// The listener's certificate fingerprint (64 lowercase hex digits).
    pub listener_cert_fingerprint: &'a str,
    /// `monitorId` as in the QR payload.
    pub monitor_id: &'a str,
    /// `listenerId` as in `PAIR_REQUEST`.
    pub listener_id: &'a str,
    /// `listenerName` as in `PAIR_REQUEST`.
    pub listener_name: &'a str,
    /// `listenerPublicKey` as in `PAIR_REQUEST` (padded base64 SPKI DER).
    pub listener_public_key: &'a str,
}

fn check_fingerprint(what: &str, s: &str) -> Result<(), QrProofError> {
    let ok = s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(QrProofError::InvalidArgument(format!(
            "{what} must be 64 lowercase hex digits"
        )))
    }
}

fn check_present(what: &str, s: &str) -> Result<(), QrProofError> {
    if s.is_empty() {
        Err(QrProofError::InvalidArgument(format!("{what} is empty")))
    } else {
        Ok(())
    }
}

/// The transcript's JCS bytes (what the proof is computed over).
pub fn transcript(c: &Claims<'_>) -> Result<Vec<u8>, QrProofError> {
    check_fingerprint("monitorCertFingerprint", c.monitor_cert_fingerprint)?;
    check_fingerprint("listenerCertFingerprint", c.listener_cert_fingerprint)?;
    check_present("monitorId", c.monitor_id)?;
    check_present("listenerId", c.listener_id)?;
    check_present("listenerName", c.listener_name)?;
    check_present("listenerPublicKey", c.listener_public_key)?;
    jcs::canonical_string_object(&[
        ("context", CONTEXT),
        ("listenerCertFingerprint", c.listener_cert_fingerprint),
        ("listenerId", c.listener_id),
        ("listenerName", c.listener_name),
        ("listenerPublicKey", c.listener_public_key),
        ("monitorCertFingerprint", c.monitor_cert_fingerprint),
        ("monitorId", c.monitor_id),
    ])
    .map_err(|e| QrProofError::Internal(e.to_string()))
}

/// `HMAC-SHA256(secret, transcript(c))`.
pub fn proof(secret: &[u8; SECRET_LEN], c: &Claims<'_>) -> Result<[u8; PROOF_LEN], QrProofError> {
    let t = transcript(c)?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .map_err(|_| QrProofError::Internal("HMAC-SHA256 refused the key".into()))?;
    mac.update(&t);
    Ok(mac.finalize().into_bytes().into())
}

/// True when `received` is the proof for `c` under `secret`; constant time in
/// the contents of `received` (a proof of another length is simply false).
pub fn verify(
    secret: &[u8; SECRET_LEN],
    c: &Claims<'_>,
    received: &[u8],
) -> Result<bool, QrProofError> {
    let expected = proof(secret, c)?;
    Ok(ct::eq(&expected, received))
}

/// A fresh secret from `rng`; wiped when dropped.
pub fn generate_secret(
    rng: &dyn SecureRandom,
) -> Result<Zeroizing<[u8; SECRET_LEN]>, QrProofError> {
    let mut s = Zeroizing::new([0u8; SECRET_LEN]);
    rng.fill(&mut s[..])
        .map_err(|_| QrProofError::Internal("the system random generator failed".into()))?;
    Ok(s)
}

/// Unpadded base64url (RFC 4648 §5) of `bytes`.
pub fn encode_b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Strict unpadded base64url of exactly 32 bytes: 43 characters of the URL-safe
/// alphabet, no padding, unused trailing bits zero (so each value has exactly
/// one encoding).
pub fn decode_b64url_32(s: &str) -> Option<Zeroizing<[u8; 32]>> {
    if s.len() != B64URL_32_LEN {
        return None;
    }
    let mut out = Zeroizing::new([0u8; 32]);
    match URL_SAFE_NO_PAD.decode_slice(s.as_bytes(), &mut out[..]) {
        Ok(32) => Some(out),
        _ => None,
    }
}

/// A secret as it appears in the QR payload. The error message never contains
/// the input.
pub fn decode_secret(s: &str) -> Result<Zeroizing<[u8; SECRET_LEN]>, QrProofError> {
    decode_b64url_32(s).ok_or_else(|| {
        QrProofError::InvalidArgument(
            "a pairing secret is 32 bytes in unpadded base64url (43 characters)".into(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    const FP_M: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
    const FP_L: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

    fn claims() -> Claims<'static> {
        Claims {
            monitor_cert_fingerprint: FP_M,
            listener_cert_fingerprint: FP_L,
            monitor_id: "7c1f3a2e-8d4b-4f6a-9e0c-1b2d3e4f5a6b",
            listener_id: "0f8fad5b-d9cb-469f-a165-70867728950e",
            listener_name: "Parent phone",
            listener_public_key: "AAAA",
        }
    }

    #[test]
    fn transcript_is_jcs_in_member_order() {
        let t = String::from_utf8(transcript(&claims()).unwrap()).unwrap();
        assert_eq!(
            t,
            format!(
                concat!(
                    r#"{{"context":"cribcall qr pairing v1","listenerCertFingerprint":"{}","#,
                    r#""listenerId":"0f8fad5b-d9cb-469f-a165-70867728950e","listenerName":"Parent phone","#,
                    r#""listenerPublicKey":"AAAA","monitorCertFingerprint":"{}","#,
                    r#""monitorId":"7c1f3a2e-8d4b-4f6a-9e0c-1b2d3e4f5a6b"}}"#
                ),
                FP_L, FP_M
            )
        );
    }

    #[test]
    fn names_are_escaped_as_jcs() {
        let c = Claims {
            listener_name: "a\"b\\c\u{7}é😀",
            ..claims()
        };
        let t = String::from_utf8(transcript(&c).unwrap()).unwrap();
        assert!(t.contains(r#""listenerName":"a\"b\\c\u0007é😀""#), "{t}");
    }

    #[test]
    fn proof_verifies_and_binds_every_member() {
        let secret = [7u8; 32];
        let base = claims();
        let p = proof(&secret, &base).unwrap();
        assert!(verify(&secret, &base, &p).unwrap());
        assert!(!verify(&[8u8; 32], &base, &p).unwrap(), "another secret");
        assert!(!verify(&secret, &base, &p[..31]).unwrap(), "truncated");
        let other_fp = "ff".repeat(32);
        let variants = [
            Claims {
                monitor_cert_fingerprint: &other_fp,
                ..base
            },
            Claims {
                listener_cert_fingerprint: &other_fp,
                ..base
            },
            Claims {
                monitor_cert_fingerprint: FP_L,
                listener_cert_fingerprint: FP_M,
                ..base
            },
            Claims {
                monitor_id: "7c1f3a2e-8d4b-4f6a-9e0c-1b2d3e4f5a6c",
                ..base
            },
            Claims {
                listener_id: "0F8FAD5B-D9CB-469F-A165-70867728950E",
                ..base
            },
            Claims {
                listener_name: "Parent phone ",
                ..base
            },
            Claims {
                listener_public_key: "AAAB",
                ..base
            },
        ];
        for (i, v) in variants.iter().enumerate() {
            assert!(
                !verify(&secret, v, &p).unwrap(),
                "variant {i} must not verify"
            );
        }
    }

    #[test]
    fn bad_arguments() {
        let upper = FP_M.to_uppercase();
        for c in [
            Claims {
                monitor_cert_fingerprint: &upper,
                ..claims()
            },
            Claims {
                listener_cert_fingerprint: "abc",
                ..claims()
            },
            Claims {
                listener_name: "",
                ..claims()
            },
            Claims {
                monitor_id: "",
                ..claims()
            },
        ] {
            assert!(matches!(
                transcript(&c),
                Err(QrProofError::InvalidArgument(_))
            ));
        }
    }

    #[test]
    fn secrets_are_fresh_and_round_trip() {
        let rng = SystemRandom::new();
        let a = generate_secret(&rng).unwrap();
        let b = generate_secret(&rng).unwrap();
        assert_ne!(*a, *b);
        let text = encode_b64url(&a[..]);
        assert_eq!(text.len(), B64URL_32_LEN);
        assert!(text
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(*decode_secret(&text).unwrap(), *a);
    }

    #[test]
    fn secret_decoding_is_strict_and_never_echoes() {
        let good = encode_b64url(&[0xfb; 32]);
        assert!(decode_secret(&good).is_ok());
        let bad = [
            String::new(),
            format!("{good}="),                       // padding
            good[..42].to_owned(),                    // short
            format!("{good}A"),                       // long
            good.replace('-', "+").replace('_', "/"), // standard alphabet
            format!("{}B", &good[..42]),              // non-zero trailing bits
        ];
        for b in &bad {
            assert_ne!(b, &good);
            let e = decode_secret(b).unwrap_err();
            // A constant message: never the (possibly almost right) secret.
            assert_eq!(
                e.to_string(),
                "a pairing secret is 32 bytes in unpadded base64url (43 characters)"
            );
        }
        // The last character carries 4 bits: only those with the low 2 bits zero.
        let last_ok: Vec<char> = "AEIMQUYcgkosw048".chars().collect();
        for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".chars() {
            let s = format!("{}{c}", &good[..42]);
            assert_eq!(
                decode_b64url_32(&s).is_some(),
                last_ok.contains(&c),
                "last char {c}"
            );
        }
    }
}
