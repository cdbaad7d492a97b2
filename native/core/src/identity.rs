//! Device identity: a self-signed X.509 v3 certificate for a long-term key pair
//! (ECDSA P-256 or Ed25519), with `subjectAltName = URI:cribcall:<deviceId>`.
//! The identity of a device is the SHA-256 fingerprint of its certificate DER.

use base64::Engine as _;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use std::fmt;

/// Key algorithms a device identity may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    P256,
    Ed25519,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::P256 => "p256",
            KeyType::Ed25519 => "ed25519",
        }
    }

    pub fn parse(s: &str) -> Result<KeyType, IdentityError> {
        match s {
            "p256" => Ok(KeyType::P256),
            "ed25519" => Ok(KeyType::Ed25519),
            other => Err(IdentityError::InvalidArgument(format!(
                "keyType must be 'p256' or 'ed25519', got '{other}'"
            ))),
        }
    }
}

/// Errors of this module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityError {
    InvalidArgument(String),
    Crypto(String),
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::InvalidArgument(m) => write!(f, "{m}"),
            IdentityError::Crypto(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for IdentityError {}

/// A generated identity. `key_pkcs8_der` is PKCS#8 v1 (RFC 5208) for both key
/// types: BoringSSL refuses the v2 documents ring produces for Ed25519.
#[derive(Clone)]
pub struct Identity {
    pub device_id: String,
    pub key_type: KeyType,
    pub cert_der: Vec<u8>,
    pub cert_pem: String,
    pub key_pkcs8_der: Vec<u8>,
    pub key_pem: String,
    pub fingerprint: String,
    /// SubjectPublicKeyInfo DER of the key.
    pub public_key_spki_der: Vec<u8>,
}

impl fmt::Debug for Identity {
    // Never print private key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("device_id", &self.device_id)
            .field("key_type", &self.key_type)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// SHA-256 of `der`, as raw bytes.
pub fn fingerprint_bytes(der: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// SHA-256 of `der`, as 64 lowercase hex characters.
pub fn fingerprint_hex(der: &[u8]) -> String {
    to_hex(&fingerprint_bytes(der))
}

/// Lowercase hex encoding.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// Parses a fingerprint given as 64 hex characters (either case; a `:`-separated
/// form such as `AB:CD:…` is accepted too).
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32], IdentityError> {
    let cleaned: String = s.chars().filter(|c| *c != ':').collect();
    let bytes = cleaned.as_bytes();
    if bytes.len() != 64 {
        return Err(IdentityError::InvalidArgument(format!(
            "a fingerprint is 64 hex characters (SHA-256), got {} characters",
            bytes.len()
        )));
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let hi = hex_val(pair[0]);
        let lo = hex_val(pair[1]);
        match (hi, lo) {
            (Some(h), Some(l)) => out[i] = (h << 4) | l,
            _ => {
                return Err(IdentityError::InvalidArgument(
                    "a fingerprint may contain only hex digits".into(),
                ))
            }
        }
    }
    Ok(out)
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Checks a device id: an RFC 4122 UUID in its textual form; returned lowercase.
pub fn normalize_device_id(id: &str) -> Result<String, IdentityError> {
    let b = id.as_bytes();
    let ok = b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        });
    if !ok {
        return Err(IdentityError::InvalidArgument(format!(
            "deviceId must be a UUID (8-4-4-4-12 hex digits), got '{}'",
            id.chars().take(64).collect::<String>()
        )));
    }
    Ok(id.to_ascii_lowercase())
}

/// A fresh random UUID v4.
pub fn random_uuid_v4() -> Result<String, IdentityError> {
    let mut b = [0u8; 16];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| IdentityError::Crypto("the system random generator failed".into()))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = to_hex(&b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

const ED25519_PKCS8_V2_PREFIX: [u8; 16] = [
    0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
const ED25519_PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Rewrites ring's PKCS#8 v2 Ed25519 document (seed + public key) as the
/// PKCS#8 v1 document BoringSSL and OpenSSL accept (seed only).
pub fn ed25519_pkcs8_v2_to_v1(v2: &[u8]) -> Result<Vec<u8>, IdentityError> {
    if v2.len() == 48 && v2[..16] == ED25519_PKCS8_V1_PREFIX {
        return Ok(v2.to_vec());
    }
    // ring: SEQUENCE { version 1, algorithm, OCTET STRING { OCTET STRING seed }, [1] publicKey }
    if v2.len() != 83 || v2[..16] != ED25519_PKCS8_V2_PREFIX || v2[48..51] != [0x81, 0x21, 0x00] {
        return Err(IdentityError::Crypto(
            "unexpected Ed25519 PKCS#8 layout from the key generator".into(),
        ));
    }
    let mut v1 = Vec::with_capacity(48);
    v1.extend_from_slice(&ED25519_PKCS8_V1_PREFIX);
    v1.extend_from_slice(&v2[16..48]);
    Ok(v1)
}

/// Standard padded base64 (RFC 4648 §4), as the SPEC's `publicKey` fields use.
pub fn base64_standard(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64_standard(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII.
        s.push_str(std::str::from_utf8(line).unwrap_or_default());
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

/// Decodes the first PEM block with the given label.
pub fn pem_decode(pem: &str, label: &str) -> Result<Vec<u8>, IdentityError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem
        .find(&begin)
        .ok_or_else(|| IdentityError::InvalidArgument(format!("no '{begin}' block found")))?;
    let rest = &pem[start + begin.len()..];
    let stop = rest
        .find(&end)
        .ok_or_else(|| IdentityError::InvalidArgument(format!("no '{end}' line found")))?;
    let body: String = rest[..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map_err(|e| IdentityError::InvalidArgument(format!("bad base64 in PEM: {e}")))
}

/// Accepts a certificate as PEM text or DER bytes; returns the DER.
pub fn cert_der_from_pem_or_der(input: &[u8]) -> Result<Vec<u8>, IdentityError> {
    let trimmed = input.trim_ascii_start();
    if trimmed.starts_with(b"-----BEGIN") {
        let text = std::str::from_utf8(input)
            .map_err(|_| IdentityError::InvalidArgument("PEM text is not UTF-8".into()))?;
        return pem_decode(text, "CERTIFICATE");
    }
    // DER: an X.509 certificate is a SEQUENCE.
    if input.first() != Some(&0x30) || input.len() < 64 {
        return Err(IdentityError::InvalidArgument(
            "expected a PEM certificate or X.509 DER bytes".into(),
        ));
    }
    boring::x509::X509::from_der(input).map_err(|_| {
        IdentityError::InvalidArgument("not a parsable X.509 DER certificate".into())
    })?;
    Ok(input.to_vec())
}

/// Generates a new identity.
pub fn generate_identity(
    key_type: KeyType,
    device_id: Option<&str>,
) -> Result<Identity, IdentityError> {
    let device_id = match device_id {
        Some(id) => normalize_device_id(id)?,
        None => random_uuid_v4()?,
    };
    let alg = match key_type {
        KeyType::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyType::Ed25519 => &rcgen::PKCS_ED25519,
    };
    let key_pair = KeyPair::generate_for(alg)
        .map_err(|e| IdentityError::Crypto(format!("key generation failed: {e}")))?;

    let mut params = CertificateParams::default();
    let uri = format!("cribcall:{device_id}");
    params.subject_alt_names =
        vec![SanType::URI(uri.as_str().try_into().map_err(|_| {
            IdentityError::InvalidArgument("deviceId is not ASCII".into())
        })?)];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("cribcall {device_id}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    // The pin, not the date, is the trust anchor: a validity that never ends in practice.
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(9999, 12, 31);
    let mut serial = [0u8; 16];
    SystemRandom::new()
        .fill(&mut serial)
        .map_err(|_| IdentityError::Crypto("the system random generator failed".into()))?;
    serial[0] &= 0x7f; // positive INTEGER
    params.serial_number = Some(SerialNumber::from_slice(&serial));

    let cert = params
        .self_signed(&key_pair)
        .map_err(|e| IdentityError::Crypto(format!("certificate signing failed: {e}")))?;
    let cert_der = cert.der().to_vec();
    let key_der = match key_type {
        KeyType::P256 => key_pair.serialize_der(),
        KeyType::Ed25519 => ed25519_pkcs8_v2_to_v1(&key_pair.serialize_der())?,
    };
    let identity = Identity {
        fingerprint: fingerprint_hex(&cert_der),
        cert_pem: pem_encode("CERTIFICATE", &cert_der),
        key_pem: pem_encode("PRIVATE KEY", &key_der),
        public_key_spki_der: key_pair.subject_public_key_info(),
        key_pkcs8_der: key_der,
        cert_der,
        device_id,
        key_type,
    };
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_key_types_generate_loadable_identities() {
        for kt in [KeyType::P256, KeyType::Ed25519] {
            let id = generate_identity(kt, None).unwrap();
            assert_eq!(id.fingerprint.len(), 64);
            assert_eq!(id.fingerprint, fingerprint_hex(&id.cert_der));
            assert_eq!(
                cert_der_from_pem_or_der(id.cert_pem.as_bytes()).unwrap(),
                id.cert_der
            );
            // BoringSSL accepts the key and it matches the certificate.
            let key = boring::pkey::PKey::private_key_from_pem(id.key_pem.as_bytes()).unwrap();
            let cert = boring::x509::X509::from_der(&id.cert_der).unwrap();
            assert!(cert.public_key().unwrap().public_eq(&key));
            assert_eq!(
                cert.public_key().unwrap().public_key_to_der().unwrap(),
                id.public_key_spki_der
            );
            // SAN URI present.
            let sans = cert.subject_alt_names().unwrap();
            let uri = sans
                .iter()
                .find_map(|n| n.uri().map(str::to_owned))
                .unwrap();
            assert_eq!(uri, format!("cribcall:{}", id.device_id));
            // X.509 v3: the tbsCertificate starts with the explicit version tag [0] INTEGER 2.
            assert!(
                id.cert_der[..16]
                    .windows(5)
                    .any(|w| w == [0xa0, 0x03, 0x02, 0x01, 0x02]),
                "X.509 v3"
            );
            assert!(format!("{id:?}").find("PRIVATE").is_none());
        }
    }

    #[test]
    fn device_id_rules() {
        let id =
            generate_identity(KeyType::P256, Some("6F9619FF-8B86-4011-B42D-00C04FC964FF")).unwrap();
        assert_eq!(id.device_id, "6f9619ff-8b86-4011-b42d-00c04fc964ff");
        assert!(generate_identity(KeyType::P256, Some("not-a-uuid")).is_err());
        let r = random_uuid_v4().unwrap();
        assert!(normalize_device_id(&r).is_ok());
        assert_eq!(&r[14..15], "4");
    }

    #[test]
    fn fingerprint_parsing() {
        let fp = "ab".repeat(32);
        assert_eq!(parse_fingerprint(&fp).unwrap(), [0xab; 32]);
        assert_eq!(parse_fingerprint(&fp.to_uppercase()).unwrap(), [0xab; 32]);
        let colon = vec!["AB"; 32].join(":");
        assert_eq!(parse_fingerprint(&colon).unwrap(), [0xab; 32]);
        assert!(parse_fingerprint("ab").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn bad_certificate_inputs() {
        assert!(cert_der_from_pem_or_der(b"").is_err());
        assert!(cert_der_from_pem_or_der(
            b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----"
        )
        .is_err());
        assert!(cert_der_from_pem_or_der(&[0x30; 100]).is_err());
    }
}
