//! Device identities: `generateIdentity` and `fingerprintOf`.

use crate::{identity_err, Code};
use cribcall_core::identity::{self, KeyType};
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// Options of [`generate_identity`].
#[napi(object)]
pub struct IdentityOptions {
    /// `'p256'` (default) or `'ed25519'`.
    pub key_type: Option<String>,
    /// A UUID; a random UUID v4 when omitted.
    pub device_id: Option<String>,
}

/// A device identity: self-signed X.509 v3 certificate with
/// `subjectAltName = URI:cribcall:<deviceId>` and its PKCS#8 private key.
#[napi(object)]
pub struct Identity {
    pub device_id: String,
    /// `'p256'` or `'ed25519'`.
    pub key_type: String,
    pub cert_pem: String,
    /// PKCS#8 v1 PEM. Secret: never log it.
    pub key_pem: String,
    pub cert_der: Buffer,
    /// SHA-256 of `certDer`, 64 lowercase hex characters.
    pub fingerprint: String,
    /// Base64 of the SubjectPublicKeyInfo DER.
    pub public_key: String,
}

/// Generates a new device identity (P-256 by default, or Ed25519).
#[napi]
pub fn generate_identity(options: Option<IdentityOptions>) -> Result<Identity, Code> {
    let (key_type, device_id) = match options {
        Some(o) => (o.key_type, o.device_id),
        None => (None, None),
    };
    let kt = match key_type.as_deref() {
        None => KeyType::P256,
        Some(s) => KeyType::parse(s).map_err(identity_err)?,
    };
    let id = identity::generate_identity(kt, device_id.as_deref()).map_err(identity_err)?;
    Ok(Identity {
        device_id: id.device_id,
        key_type: kt.as_str().to_owned(),
        cert_pem: id.cert_pem,
        key_pem: id.key_pem,
        cert_der: id.cert_der.into(),
        fingerprint: id.fingerprint,
        public_key: identity::base64_standard(&id.public_key_spki_der),
    })
}

/// SHA-256 fingerprint (64 lowercase hex) of a certificate given as PEM text or DER bytes.
#[napi]
pub fn fingerprint_of(cert: Either<String, Buffer>) -> Result<String, Code> {
    let der = match &cert {
        Either::A(s) => identity::cert_der_from_pem_or_der(s.as_bytes()),
        Either::B(b) => identity::cert_der_from_pem_or_der(b.as_ref()),
    }
    .map_err(identity_err)?;
    Ok(identity::fingerprint_hex(&der))
}
