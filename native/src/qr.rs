//! Bindings of the QR pairing secret and proof (SPEC.md §7.1). The computation
//! lives in `cribcall_core::qr`; the listener (proof) and the monitor
//! (verification) both call it through these functions.

use crate::Code;
use cribcall_core::cpace::SystemRandom;
use cribcall_core::qr::{self, Claims, QrProofError};
use napi::bindgen_prelude::*;
use napi_derive::napi;

fn qr_err(e: QrProofError) -> Error<Code> {
    Error::new(Code(e.code()), e.to_string())
}

/// What a QR pairing proof is bound to. Fingerprints: 64 lowercase hex digits,
/// as the side computing the proof observed the certificates in TLS; the other
/// members exactly as in the QR payload (`monitorId`) and in `PAIR_REQUEST`.
#[napi(object)]
pub struct QrPairingClaims {
    pub monitor_cert_fingerprint: String,
    pub listener_cert_fingerprint: String,
    pub monitor_id: String,
    pub listener_id: String,
    pub listener_name: String,
    pub listener_public_key: String,
}

impl QrPairingClaims {
    fn claims(&self) -> Claims<'_> {
        Claims {
            monitor_cert_fingerprint: &self.monitor_cert_fingerprint,
            listener_cert_fingerprint: &self.listener_cert_fingerprint,
            monitor_id: &self.monitor_id,
            listener_id: &self.listener_id,
            listener_name: &self.listener_name,
            listener_public_key: &self.listener_public_key,
        }
    }
}

/// A fresh pairing secret: 32 random bytes in unpadded base64url (43
/// characters), for the QR payload's `pairingSecret`.
#[napi]
pub fn generate_qr_pairing_secret() -> Result<String, Code> {
    let s = qr::generate_secret(&SystemRandom::new()).map_err(qr_err)?;
    Ok(qr::encode_b64url(&s[..]))
}

/// The JCS bytes the proof is computed over. Throws `ERR_INVALID_ARG` for a
/// fingerprint that is not 64 lowercase hex digits or an empty member.
#[napi]
pub fn qr_pairing_transcript(claims: QrPairingClaims) -> Result<Buffer, Code> {
    qr::transcript(&claims.claims())
        .map(Buffer::from)
        .map_err(qr_err)
}

/// `PAIR_REQUEST.pairingProof`: HMAC-SHA256 keyed with the secret (the QR
/// payload's `pairingSecret`) over the transcript, in unpadded base64url.
/// Throws `ERR_INVALID_ARG` for a malformed secret (the message never contains
/// it) or claims.
#[napi]
pub fn qr_pairing_proof(pairing_secret: String, claims: QrPairingClaims) -> Result<String, Code> {
    let key = qr::decode_secret(&pairing_secret).map_err(qr_err)?;
    let p = qr::proof(&key, &claims.claims()).map_err(qr_err)?;
    Ok(qr::encode_b64url(&p))
}

/// True when `proof` (unpadded base64url, as received) is the proof for
/// `claims` under `pairingSecret`, compared in constant time; a proof that is
/// not 32 bytes in strict unpadded base64url is false. Throws `ERR_INVALID_ARG`
/// for a malformed secret or claims.
#[napi]
pub fn verify_qr_pairing_proof(
    pairing_secret: String,
    claims: QrPairingClaims,
    proof: String,
) -> Result<bool, Code> {
    let key = qr::decode_secret(&pairing_secret).map_err(qr_err)?;
    let received = qr::decode_b64url_32(&proof);
    // Compute the expected proof even for an undecodable one (same work either way).
    let zero = [0u8; qr::PROOF_LEN];
    let candidate: &[u8] = match &received {
        Some(r) => &r[..],
        None => &zero,
    };
    let ok = qr::verify(&key, &claims.claims(), candidate).map_err(qr_err)?;
    Ok(ok && received.is_some())
}
