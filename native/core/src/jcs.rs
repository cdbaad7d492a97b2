//! RFC 8785 (JSON Canonicalization Scheme) for the one shape the PIN pairing
//! transcript needs: a flat object whose members are all strings.
//!
//! - Members are sorted by the UTF-16 code units of their names (RFC 8785 §3.2.3),
//!   which differs from UTF-8 byte order once names hold characters above U+FFFF
//!   next to characters in U+E000..U+FFFF.
//! - Strings are serialized as ECMAScript's `JSON.stringify` does (RFC 8785
//!   §3.2.2.2): `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other C0 controls as
//!   `\u00xx` with lowercase hex, everything else (DEL, U+2028, non-ASCII…) as
//!   literal UTF-8. Lone surrogates cannot occur in a Rust `str`.
//! - No whitespace. Duplicate member names are an error (I-JSON, RFC 7493).

use std::fmt;

/// Errors of the canonicalizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JcsError {
    /// Two members share a name.
    DuplicateMember(String),
}

impl fmt::Display for JcsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JcsError::DuplicateMember(name) => {
                write!(f, "duplicate member name {:?}", name)
            }
        }
    }
}

impl std::error::Error for JcsError {}

/// Appends `s` as a JSON string literal, escaped as JCS prescribes.
pub fn write_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            0x08 => Some(b"\\b"),
            0x0c => Some(b"\\f"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0x00..=0x1f => None,
            // Every other byte (ASCII or part of a UTF-8 sequence) is literal.
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        match escape {
            Some(e) => out.extend_from_slice(e),
            None => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0x0f) as usize],
            ]),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The canonical JSON bytes of the object with the given string members.
pub fn canonical_string_object<K, V>(members: &[(K, V)]) -> Result<Vec<u8>, JcsError>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut sorted: Vec<(&str, &str)> = members
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect();
    sorted.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    if let Some(w) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(JcsError::DuplicateMember(w[0].0.to_owned()));
    }
    let size: usize = sorted.iter().map(|(k, v)| k.len() + v.len() + 6).sum();
    let mut out = Vec::with_capacity(size + 2);
    out.push(b'{');
    for (i, (k, v)) in sorted.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(&mut out, k);
        out.push(b':');
        write_string(&mut out, v);
    }
    out.push(b'}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(members: &[(&str, &str)]) -> String {
        String::from_utf8(canonical_string_object(members).unwrap()).unwrap()
    }

    #[test]
    fn empty_and_simple() {
        let none: [(&str, &str); 0] = [];
        assert_eq!(canonical_string_object(&none).unwrap(), b"{}");
        assert_eq!(canon(&[("b", "2"), ("a", "1")]), r#"{"a":"1","b":"2"}"#);
        assert_eq!(canon(&[("", "empty")]), r#"{"":"empty"}"#);
    }

    #[test]
    fn escapes_like_json_stringify() {
        let all_c0: String = (0u8..0x20).map(char::from).collect();
        assert_eq!(
            canon(&[("k", &all_c0)]),
            concat!(
                r#"{"k":""#,
                r"\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\b\t\n\u000b\f\r\u000e\u000f",
                r"\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001a\u001b",
                r"\u001c\u001d\u001e\u001f",
                r#""}"#
            )
        );
        assert_eq!(
            canon(&[("q", "a\"b\\c/d\u{7f}\u{80}\u{2028}\u{2029}é€😂")]),
            "{\"q\":\"a\\\"b\\\\c/d\u{7f}\u{80}\u{2028}\u{2029}é€😂\"}"
        );
        // Escapes apply to names as well.
        assert_eq!(canon(&[("\n", "x")]), r#"{"\n":"x"}"#);
    }

    #[test]
    fn sorts_by_utf16_code_units() {
        // U+10000 is D800 DC00 in UTF-16, below U+FFFF, but F0.. above EF.. in UTF-8.
        assert_eq!(
            canon(&[("\u{ffff}", "a"), ("\u{10000}", "b")]),
            "{\"\u{10000}\":\"b\",\"\u{ffff}\":\"a\"}"
        );
        assert_eq!(
            canon(&[("\u{e000}", "x"), ("\u{1f602}", "y"), ("z", "w")]),
            "{\"z\":\"w\",\"\u{1f602}\":\"y\",\"\u{e000}\":\"x\"}"
        );
        // A proper prefix sorts first; no locale rules.
        assert_eq!(
            canon(&[
                ("péché", "2"),
                ("peach", "1"),
                ("pêche", "3"),
                ("sin", "4"),
                ("pe", "0")
            ]),
            r#"{"pe":"0","peach":"1","péché":"2","pêche":"3","sin":"4"}"#
        );
        assert_eq!(
            canon(&[("b", ""), ("B", ""), ("a", ""), ("A", "")]),
            r#"{"A":"","B":"","a":"","b":""}"#
        );
    }

    #[test]
    fn duplicates_are_rejected() {
        assert_eq!(
            canonical_string_object(&[("a", "1"), ("b", "2"), ("a", "3")]),
            Err(JcsError::DuplicateMember("a".into()))
        );
    }

    #[test]
    fn pairing_transcript_shape() {
        let t = canon(&[
            ("pairingSessionId", "s"),
            ("monitorId", "m"),
            ("listenerPublicKey", "k"),
            ("listenerId", "l"),
            ("monitorCertFingerprint", "f2"),
            ("listenerCertFingerprint", "f1"),
        ]);
        assert_eq!(
            t,
            r#"{"listenerCertFingerprint":"f1","listenerId":"l","listenerPublicKey":"k","monitorCertFingerprint":"f2","monitorId":"m","pairingSessionId":"s"}"#
        );
    }

    /// The string-only objects of the RFC 8785 conformance data in
    /// `../shared/vectors/jcs` (beside the repository).
    #[test]
    fn rfc8785_string_object_vectors() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors/jcs");
        assert!(
            dir.is_dir(),
            "JCS vectors not found at {} (the shared/ folder must sit beside the repository)",
            dir.display()
        );
        for name in ["french", "unicode", "weird"] {
            let input = std::fs::read_to_string(dir.join(format!("input/{name}.json"))).unwrap();
            let expected = std::fs::read(dir.join(format!("output/{name}.json"))).unwrap();
            let value: serde_json::Value = serde_json::from_str(&input).unwrap();
            let members: Vec<(String, String)> = value
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            let got = canonical_string_object(&members).unwrap();
            let expected = expected.strip_suffix(b"\n").unwrap_or(&expected);
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(expected),
                "{name}"
            );
        }
    }
}
