//! The QR pairing proof vectors of SPEC.md §7.1, read from
//! `test/fixtures/qr-pairing-vectors.json` (the one copy; the TypeScript tests
//! check the same file through the napi binding).

use cribcall_core::qr::{self, Claims};
use serde_json::Value;
use std::path::PathBuf;

fn load() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../test/fixtures/qr-pairing-vectors.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("QR pairing vectors not found at {} ({e})", path.display()));
    serde_json::from_str(&text).expect("qr-pairing-vectors.json is not valid JSON")
}

fn s<'a>(v: &'a Value, name: &str) -> &'a str {
    v.get(name)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("vector member {name} missing"))
}

fn unhex(s: &str) -> Vec<u8> {
    assert_eq!(s.len() % 2, 0, "odd-length hex");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("bad hex"))
        .collect()
}

#[test]
fn vectors_match() {
    let doc = load();
    assert_eq!(s(&doc, "context"), qr::CONTEXT);
    let vectors = doc["vectors"].as_array().expect("vectors");
    assert!(vectors.len() >= 2);
    let mut proofs = Vec::new();
    for (i, v) in vectors.iter().enumerate() {
        let claims = Claims {
            monitor_cert_fingerprint: s(v, "monitorCertFingerprint"),
            listener_cert_fingerprint: s(v, "listenerCertFingerprint"),
            monitor_id: s(v, "monitorId"),
            listener_id: s(v, "listenerId"),
            listener_name: s(v, "listenerName"),
            listener_public_key: s(v, "listenerPublicKey"),
        };
        let secret = qr::decode_secret(s(v, "pairingSecret")).expect("pairingSecret");
        assert_eq!(
            secret.to_vec(),
            unhex(s(v, "secretHex")),
            "vector {i}: secret"
        );
        assert_eq!(
            qr::encode_b64url(&secret[..]),
            s(v, "pairingSecret"),
            "vector {i}"
        );

        let t = qr::transcript(&claims).unwrap();
        assert_eq!(
            String::from_utf8(t.clone()).unwrap(),
            s(v, "transcript"),
            "vector {i}: transcript"
        );
        assert_eq!(
            t,
            unhex(s(v, "transcriptHex")),
            "vector {i}: transcript bytes"
        );

        let p = qr::proof(&secret, &claims).unwrap();
        assert_eq!(p.to_vec(), unhex(s(v, "proofHex")), "vector {i}: proof");
        assert_eq!(
            qr::encode_b64url(&p),
            s(v, "pairingProof"),
            "vector {i}: proof base64url"
        );
        let wire = qr::decode_b64url_32(s(v, "pairingProof")).expect("pairingProof");
        assert!(
            qr::verify(&secret, &claims, &wire[..]).unwrap(),
            "vector {i}: verify"
        );
        let mut flipped = p;
        flipped[31] ^= 1;
        assert!(
            !qr::verify(&secret, &claims, &flipped).unwrap(),
            "vector {i}: flipped bit"
        );
        proofs.push(p);
    }
    proofs.sort();
    proofs.dedup();
    assert_eq!(
        proofs.len(),
        vectors.len(),
        "every vector has its own proof"
    );
}
