//! Unit tests of CPace and the PIN pairing.

use super::*;
use curve25519_dalek::montgomery::MontgomeryPoint;
use hmac::{Hmac, Mac};
use ring::rand::SystemRandom;
use sha2::{Digest, Sha256, Sha512};
use zeroize::Zeroizing;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn arr(s: &str) -> [u8; 32] {
    hex(s).try_into().unwrap()
}

/// Low-order u-coordinates of the draft's X25519 vectors (u0…u5, u7) that
/// every scalar maps to the neutral element.
const LOW_ORDER: [&str; 7] = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
];

#[test]
fn string_utils_match_the_draft() {
    assert_eq!(prepend_len(b""), hex("00"));
    assert_eq!(prepend_len(b"1234"), hex("0431323334"));
    let r127: Vec<u8> = (0..127).collect();
    let r128: Vec<u8> = (0..128).collect();
    assert_eq!(prepend_len(&r127)[0], 0x7f);
    assert_eq!(prepend_len(&r127).len(), 128);
    assert_eq!(&prepend_len(&r128)[..3], &[0x80, 0x01, 0x00]);
    assert_eq!(prepend_len(&vec![0u8; 300])[..2], [0xac, 0x02]);
    assert_eq!(prepend_len(&vec![0u8; 16384])[..3], [0x80, 0x80, 0x01]);
    assert_eq!(
        lv_cat(&[b"1234", b"5", b"", b"678"]),
        hex("043132333401350003363738")
    );
    assert!(!lexicographically_larger(b"\0", b"\0\0"));
    assert!(lexicographically_larger(b"\x01", b"\0\0"));
    assert!(lexicographically_larger(b"\0\0", b"\0"));
    assert!(!lexicographically_larger(b"\0\0", b"\x01"));
    assert!(!lexicographically_larger(b"\0\x01", b"\x01"));
    assert!(!lexicographically_larger(b"ABCD", b"BCD"));
    assert_eq!(o_cat(b"ABCD", b"BCD"), hex("6f6342434441424344"));
    assert_eq!(o_cat(b"BCD", b"ABCDE"), hex("6f634243444142434445"));
    assert_eq!(
        transcript_ir(b"123", b"PartyA", b"234", b"PartyB"),
        hex("03313233065061727479410332333406506172747942")
    );
    assert_eq!(
        transcript_oc(b"123", b"PartyA", b"234", b"PartyB"),
        hex("6f6303323334065061727479420331323306506172747941")
    );
}

#[test]
fn generator_string_and_generator_match_the_draft() {
    let ci = hex("0b415f696e69746961746f720b425f726573706f6e646572");
    let sid = hex("7e4b4791d6a8ef019b936c79fb7f2c57");
    let gs = generator_string(DSI, b"Password", &ci, &sid, H_S_IN_BYTES);
    let expected = hex("0843506163653235350850617373776f72646d000000000000000000
         00000000000000000000000000000000000000000000000000000000
         00000000000000000000000000000000000000000000000000000000
         00000000000000000000000000000000000000000000000000000000
         00000000000000000000000000000000180b415f696e69746961746f
         720b425f726573706f6e646572107e4b4791d6a8ef019b936c79fb7f
         2c57");
    assert_eq!(gs.as_slice(), expected.as_slice());
    let hash = Sha512::digest(gs.as_slice());
    assert_eq!(
        hash[..32],
        hex("03998087bdb1a2617bbe25ef5a7c18cd4f84f902328701790958755ee4aed1d3")[..]
    );
    let g = calculate_generator(b"Password", &ci, &sid);
    assert_eq!(
        *g,
        arr("d04bf6d41f6a289632a2e929fa29bebd51092512a7829fdde7d314b62f05a73f")
    );
}

#[test]
fn elligator2_output_is_on_the_curve() {
    // Every output of the map is the u-coordinate of a curve point (not the twist).
    for i in 0u8..64 {
        let mut u = [0u8; 32];
        u[0] = i;
        u[17] = i.wrapping_mul(37);
        u[31] = 0x80 | i;
        let x = MontgomeryPoint(elligator2(&u));
        assert!(x.to_edwards(0).is_some(), "input {i}");
    }
    // u = 0: x1 = -A, whose g(x) = -A is a non-square, so x = -x1 - A = 0.
    assert_eq!(elligator2(&[0u8; 32]), IDENTITY);
}

#[test]
fn scalar_mult_vfy_rejects_low_order_points() {
    let y = [0x42u8; 32];
    for p in LOW_ORDER {
        assert_eq!(
            scalar_mult_vfy(&y, &arr(p)),
            Err(PakeError::InvalidPoint),
            "{p}"
        );
    }
}

fn ci() -> Vec<u8> {
    channel_identifier(&[0xaa; 32], &[0xbb; 32])
}

const SID: &str = "6f1c8a9e-2b7d-4c3e-9a51-0d2f4b6e8c10";
const TRANSCRIPT: &[u8] = br#"{"listenerCertFingerprint":"bb","monitorId":"m"}"#;

#[test]
fn channel_identifier_layout() {
    let ci = channel_identifier(&[1; 32], &[2; 32]);
    assert_eq!(ci.len(), 1 + 15 + 1 + 32 + 1 + 32);
    assert_eq!(ci[0], 15);
    assert_eq!(&ci[1..16], b"cribcall-pin-v1");
    assert_eq!(ci[16], 32);
    assert_eq!(&ci[17..49], &[1; 32]);
    assert_eq!(ci[49], 32);
    assert_eq!(&ci[50..], &[2; 32]);
}

#[test]
fn both_sides_agree_with_the_same_pin() {
    let rng = SystemRandom::new();
    let (monitor, ya) = PinInitiator::new("482913", SID, &ci(), &rng).unwrap();
    assert_eq!(monitor.share(), &ya);
    let (yb, listener_tags) = pin_respond("482913", SID, &ci(), &ya, TRANSCRIPT, &rng).unwrap();
    let monitor_tags = monitor.confirm(&yb, TRANSCRIPT).unwrap();
    assert_eq!(listener_tags, monitor_tags);
    assert_ne!(monitor_tags.listener_tag, monitor_tags.monitor_tag);
    // The same Ya serves a second attempt.
    let (yb2, tags2) = pin_respond("482913", SID, &ci(), &ya, TRANSCRIPT, &rng).unwrap();
    assert_ne!(yb, yb2);
    assert_eq!(monitor.confirm(&yb2, TRANSCRIPT).unwrap(), tags2);
}

#[test]
fn deterministic_run_is_reproducible() {
    let (m, ya) =
        PinInitiator::with_scalar("135790", SID, &ci(), Zeroizing::new([7u8; 32])).unwrap();
    let (yb, lt) = pin_respond_with_scalar(
        "135790",
        SID,
        &ci(),
        &ya,
        TRANSCRIPT,
        Zeroizing::new([9; 32]),
    )
    .unwrap();
    let mt = m.confirm(&yb, TRANSCRIPT).unwrap();
    assert_eq!(lt, mt);
    // Cross-check against the generic CPace functions and the spec's formulas.
    let g = calculate_generator(b"135790", &ci(), SID.as_bytes());
    assert_eq!(ya, scalar_mult(&[7u8; 32], &g));
    assert_eq!(yb, scalar_mult(&[9u8; 32], &g));
    let k = scalar_mult_vfy(&[7u8; 32], &yb).unwrap();
    let isk = isk_ir(SID.as_bytes(), &k, &ya, b"monitor", &yb, b"listener");
    let kl = <Hmac<Sha512> as Mac>::new_from_slice(&isk[..])
        .unwrap()
        .chain_update(b"cribcall pin listener confirm v1")
        .finalize()
        .into_bytes();
    let expected_lt = <Hmac<Sha256> as Mac>::new_from_slice(&kl[..32])
        .unwrap()
        .chain_update(TRANSCRIPT)
        .finalize()
        .into_bytes();
    assert_eq!(lt.listener_tag[..], expected_lt[..]);
}

#[test]
fn different_pin_or_binding_gives_different_tags() {
    let rng = SystemRandom::new();
    let (monitor, ya) = PinInitiator::new("482913", SID, &ci(), &rng).unwrap();
    let (yb, wrong) = pin_respond("482914", SID, &ci(), &ya, TRANSCRIPT, &rng).unwrap();
    let right = monitor.confirm(&yb, TRANSCRIPT).unwrap();
    assert_ne!(wrong.listener_tag, right.listener_tag);
    assert_ne!(wrong.monitor_tag, right.monitor_tag);
    // Another channel identifier (a relayed TLS session) or sid also mismatch.
    let other_ci = channel_identifier(&[0xaa; 32], &[0xbc; 32]);
    let (yb, t) = pin_respond("482913", SID, &other_ci, &ya, TRANSCRIPT, &rng).unwrap();
    assert_ne!(t, monitor.confirm(&yb, TRANSCRIPT).unwrap());
    let (yb, t) = pin_respond("482913", "other", &ci(), &ya, TRANSCRIPT, &rng).unwrap();
    assert_ne!(t, monitor.confirm(&yb, TRANSCRIPT).unwrap());
    // And another transcript.
    let (yb, t) = pin_respond("482913", SID, &ci(), &ya, b"{}", &rng).unwrap();
    assert_ne!(t, monitor.confirm(&yb, TRANSCRIPT).unwrap());
    assert_eq!(t, monitor.confirm(&yb, b"{}").unwrap());
}

#[test]
fn invalid_peer_shares_are_rejected() {
    let rng = SystemRandom::new();
    let (monitor, _) = PinInitiator::new("482913", SID, &ci(), &rng).unwrap();
    for p in LOW_ORDER {
        assert_eq!(
            monitor.confirm(&arr(p), TRANSCRIPT),
            Err(PakeError::InvalidPoint),
            "{p}"
        );
        assert_eq!(
            pin_respond("482913", SID, &ci(), &arr(p), TRANSCRIPT, &rng),
            Err(PakeError::InvalidPoint),
            "{p}"
        );
    }
    assert_eq!(PakeError::InvalidPoint.code(), "ERR_PAKE_INVALID_POINT");
}

#[test]
fn bad_arguments_are_rejected() {
    let rng = SystemRandom::new();
    for pin in [
        "",
        "12345",
        "1234567",
        "12345a",
        "١٢٣٤٥٦",
        " 12345",
        "12 456",
    ] {
        let err = PinInitiator::new(pin, SID, &ci(), &rng).unwrap_err();
        assert_eq!(err.code(), "ERR_INVALID_ARG", "{pin:?}");
        let err = pin_respond(pin, SID, &ci(), &[9; 32], b"", &rng).unwrap_err();
        assert_eq!(err.code(), "ERR_INVALID_ARG", "{pin:?}");
    }
    let long = "x".repeat(MAX_SESSION_ID_LEN + 1);
    for sid in ["", long.as_str()] {
        let err = PinInitiator::new("123457", sid, &ci(), &rng).unwrap_err();
        assert_eq!(err.code(), "ERR_INVALID_ARG");
    }
    assert!(PinInitiator::new("000000", &"x".repeat(MAX_SESSION_ID_LEN), &ci(), &rng).is_ok());
}

#[test]
fn debug_output_hides_the_scalar() {
    let (m, _) =
        PinInitiator::with_scalar("135790", SID, &ci(), Zeroizing::new([0x5a; 32])).unwrap();
    let s = format!("{m:?}");
    assert!(!s.contains("5a5a5a"), "{s}");
}
