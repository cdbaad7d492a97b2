//! CPace, the balanced password-authenticated key exchange of
//! draft-irtf-cfrg-cpace (cfrg repository, commit 8fb4056), cipher suite
//! **CPACE-X25519-SHA512**, and CribCall's PIN pairing built on it (SPEC.md §7.2).
//!
//! Sans-IO: functions over byte strings; randomness comes from the caller's
//! [`SecureRandom`].
//!
//! # The suite (draft §"CPace group objects G_X25519")
//! - H = SHA-512 (`s_in_bytes` = 128), G = X25519 with `DSI = "CPace255"`.
//! - `calculate_generator`: `gen_str = lv_cat(DSI, PRS, zero_bytes(len_zpad), CI, sid)`,
//!   `u = decodeUCoordinate(SHA-512(gen_str)[..32])` (bit 255 cleared), then
//!   `g = map_to_curve_elligator2(u)` of RFC 9380 (Z = 2, only the u-coordinate kept).
//!   curve25519-dalek exposes no Elligator2 for Montgomery u-coordinates, so the map
//!   runs here on fiat-crypto's verified, constant-time field arithmetic.
//! - `scalar_mult(y, g) = scalar_mult_vfy(y, g) = X25519(y, g)` (RFC 7748: scalar
//!   clamped, bit 255 of the u-coordinate ignored, non-canonical u reduced), done with
//!   curve25519-dalek's Montgomery ladder; `scalar_mult_vfy` fails when the result is
//!   the all-zero encoding (the neutral element, reached by every low-order point).
//! - `ISK = SHA-512(lv_cat(DSI || "_ISK", sid, K) || transcript)`, with
//!   `transcript_ir = lv_cat(Ya, ADa) || lv_cat(Yb, ADb)` (initiator-responder) or
//!   `transcript_oc = o_cat(lv_cat(Ya, ADa), lv_cat(Yb, ADb))` (symmetric).
//! - `sid_output = SHA-512("CPaceSidOutput" || transcript)`.
//!
//! Secrets (scalars, the generator, which is a function of the password, K, ISK
//! and the keys derived from it) live in [`Zeroizing`] buffers that are wiped
//! when dropped. Temporaries inside the hash, MAC and ladder implementations are
//! outside our reach and not wiped.

use curve25519_dalek::montgomery::MontgomeryPoint;
use hmac::{Hmac, Mac};
pub use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256, Sha512};
use std::fmt;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

/// Domain-separation identifier of G_X25519.
pub const DSI: &[u8] = b"CPace255";
/// `G.DSI || "_ISK"`.
pub const DSI_ISK: &[u8] = b"CPace255_ISK";
/// Prefix of the optional session-id output.
pub const SID_OUTPUT_PREFIX: &[u8] = b"CPaceSidOutput";
/// Input block size of SHA-512 in bytes (`H.s_in_bytes`).
pub const H_S_IN_BYTES: usize = 128;
/// Length of a share, of K and of a scalar.
pub const POINT_LEN: usize = 32;
/// Length of ISK (SHA-512 output).
pub const ISK_LEN: usize = 64;
/// `G.I`, the encoding of the neutral element.
pub const IDENTITY: [u8; 32] = [0u8; 32];

/// An encoded group element (X25519 u-coordinate), public.
pub type Share = [u8; POINT_LEN];
/// The intermediate session key; wiped on drop.
pub type Isk = Zeroizing<[u8; ISK_LEN]>;

/// Errors of CPace and of the PIN pairing on top of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PakeError {
    /// A caller-supplied argument is malformed (PIN, session id, lengths).
    InvalidArgument(String),
    /// A received share is not acceptable: `scalar_mult_vfy` gave the neutral
    /// element (low-order point on the curve or its twist) or it has the wrong length.
    InvalidPoint,
    /// The system random generator failed, or an internal invariant broke.
    Internal(String),
}

impl PakeError {
    /// Stable error code for the JS layer.
    pub fn code(&self) -> &'static str {
        match self {
            PakeError::InvalidArgument(_) => "ERR_INVALID_ARG",
            PakeError::InvalidPoint => "ERR_PAKE_INVALID_POINT",
            PakeError::Internal(_) => "ERR_INTERNAL",
        }
    }
}

impl fmt::Display for PakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PakeError::InvalidArgument(m) => write!(f, "{m}"),
            PakeError::InvalidPoint => write!(
                f,
                "the peer's PAKE share is invalid (low-order point or neutral element)"
            ),
            PakeError::Internal(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for PakeError {}

// ---------------------------------------------------------------------------
// Byte-string utilities of the draft (§"String utility functions")
// ---------------------------------------------------------------------------

/// Appends the unsigned LEB128 encoding of `len`.
fn push_leb128(out: &mut Vec<u8>, mut len: usize) {
    loop {
        if len < 128 {
            out.push(len as u8);
        } else {
            out.push(((len & 0x7f) as u8) | 0x80);
        }
        len >>= 7;
        if len == 0 {
            break;
        }
    }
}

/// Bytes the LEB128 length prefix of `len` takes.
fn leb128_size(mut len: usize) -> usize {
    let mut n = 1;
    while len >= 128 {
        len >>= 7;
        n += 1;
    }
    n
}

/// `prepend_len(data)`: the LEB128 length of `data`, then `data`.
pub fn prepend_len(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(leb128_size(data.len()) + data.len());
    push_leb128(&mut out, data.len());
    out.extend_from_slice(data);
    out
}

/// `lv_cat(a, b, …)`: the concatenation of `prepend_len` of each part.
pub fn lv_cat(parts: &[&[u8]]) -> Vec<u8> {
    let total = parts.iter().map(|p| leb128_size(p.len()) + p.len()).sum();
    let mut out = Vec::with_capacity(total);
    for p in parts {
        push_leb128(&mut out, p.len());
        out.extend_from_slice(p);
    }
    out
}

/// Feeds `prepend_len(data)` into a hash without building the string.
fn hash_lv<D: Digest>(h: &mut D, data: &[u8]) {
    let mut prefix = Vec::with_capacity(leb128_size(data.len()));
    push_leb128(&mut prefix, data.len());
    h.update(&prefix);
    h.update(data);
}

/// `len_zpad = max(0, s_in_bytes - len(prepend_len(PRS)) - len(prepend_len(DSI)) - 1)`.
fn zpad_len(dsi: &[u8], prs: &[u8], s_in_bytes: usize) -> usize {
    let used = leb128_size(prs.len()) + prs.len() + leb128_size(dsi.len()) + dsi.len() + 1;
    s_in_bytes.saturating_sub(used)
}

/// `generator_string(DSI, PRS, CI, sid, s_in_bytes)`. Contains the password: the
/// result is wiped on drop.
pub fn generator_string(
    dsi: &[u8],
    prs: &[u8],
    ci: &[u8],
    sid: &[u8],
    s_in_bytes: usize,
) -> Zeroizing<Vec<u8>> {
    let zpad = vec![0u8; zpad_len(dsi, prs, s_in_bytes)];
    // Sized exactly, so the buffer never reallocates (and leaves no unwiped copy).
    Zeroizing::new(lv_cat(&[dsi, prs, &zpad, ci, sid]))
}

/// `lexiographically_larger(a, b)`: true if `a > b` in lexicographic byte order
/// (a proper prefix is smaller).
pub fn lexicographically_larger(a: &[u8], b: &[u8]) -> bool {
    a > b
}

/// `o_cat(a, b)`: `"oc"` followed by the larger, then the smaller string.
pub fn o_cat(a: &[u8], b: &[u8]) -> Vec<u8> {
    let (first, second) = if lexicographically_larger(a, b) {
        (a, b)
    } else {
        (b, a)
    };
    let mut out = Vec::with_capacity(2 + a.len() + b.len());
    out.extend_from_slice(b"oc");
    out.extend_from_slice(first);
    out.extend_from_slice(second);
    out
}

/// `transcript_ir(Ya, ADa, Yb, ADb) = lv_cat(Ya, ADa) || lv_cat(Yb, ADb)`.
pub fn transcript_ir(ya: &[u8], ada: &[u8], yb: &[u8], adb: &[u8]) -> Vec<u8> {
    let mut out = lv_cat(&[ya, ada]);
    out.extend_from_slice(&lv_cat(&[yb, adb]));
    out
}

/// `transcript_oc(Ya, ADa, Yb, ADb) = o_cat(lv_cat(Ya, ADa), lv_cat(Yb, ADb))`.
pub fn transcript_oc(ya: &[u8], ada: &[u8], yb: &[u8], adb: &[u8]) -> Vec<u8> {
    o_cat(&lv_cat(&[ya, ada]), &lv_cat(&[yb, adb]))
}

// ---------------------------------------------------------------------------
// Field arithmetic mod 2^255 - 19 (fiat-crypto) and Elligator2
// ---------------------------------------------------------------------------

mod field {
    use fiat_crypto::curve25519_64::{
        fiat_25519_add, fiat_25519_carry, fiat_25519_carry_mul, fiat_25519_carry_square,
        fiat_25519_from_bytes, fiat_25519_loose_field_element, fiat_25519_opp, fiat_25519_relax,
        fiat_25519_selectznz, fiat_25519_sub, fiat_25519_tight_field_element, fiat_25519_to_bytes,
    };
    use std::ops::{Add, Mul, Neg, Sub};
    use zeroize::Zeroize;

    /// An element of GF(2^255 - 19) in fiat-crypto's tight representation;
    /// wiped on drop. Every operation runs in constant time.
    pub(super) struct Fe(fiat_25519_tight_field_element);

    impl Drop for Fe {
        fn drop(&mut self) {
            self.0 .0.zeroize();
        }
    }

    impl Fe {
        /// decodeUCoordinate of RFC 7748: little-endian, bit 255 ignored; values
        /// >= p are accepted and reduced by the arithmetic.
        pub(super) fn from_bytes(bytes: &[u8; 32]) -> Fe {
            let mut b = *bytes;
            b[31] &= 0x7f;
            let mut out = fiat_25519_tight_field_element([0; 5]);
            fiat_25519_from_bytes(&mut out, &b);
            b.zeroize();
            Fe(out)
        }

        /// The canonical little-endian encoding (value reduced mod p).
        pub(super) fn to_bytes(&self) -> [u8; 32] {
            let mut out = [0u8; 32];
            fiat_25519_to_bytes(&mut out, &self.0);
            out
        }

        pub(super) fn from_u64(v: u64) -> Fe {
            let mut b = [0u8; 32];
            b[..8].copy_from_slice(&v.to_le_bytes());
            Fe::from_bytes(&b)
        }

        fn loose(&self) -> fiat_25519_loose_field_element {
            let mut out = fiat_25519_loose_field_element([0; 5]);
            fiat_25519_relax(&mut out, &self.0);
            out
        }

        fn carry(l: &fiat_25519_loose_field_element) -> Fe {
            let mut out = fiat_25519_tight_field_element([0; 5]);
            fiat_25519_carry(&mut out, l);
            Fe(out)
        }

        pub(super) fn square(&self) -> Fe {
            let mut out = fiat_25519_tight_field_element([0; 5]);
            fiat_25519_carry_square(&mut out, &self.loose());
            Fe(out)
        }

        /// `self^e` for a public exponent `e` (little-endian bytes): the
        /// sequence of operations depends on `e` only.
        pub(super) fn pow_public(&self, exp_le: &[u8; 32]) -> Fe {
            let mut acc = Fe::from_u64(1);
            for i in (0..256).rev() {
                acc = acc.square();
                if (exp_le[i / 8] >> (i % 8)) & 1 == 1 {
                    acc = &acc * self;
                }
            }
            acc
        }

        /// `choice == 0` → `a`, `choice == 1` → `b`, without branching.
        pub(super) fn select(a: &Fe, b: &Fe, choice: u8) -> Fe {
            let mut out = [0u64; 5];
            fiat_25519_selectznz(&mut out, choice, &a.0 .0, &b.0 .0);
            Fe(fiat_25519_tight_field_element(out))
        }
    }

    impl Mul<&Fe> for &Fe {
        type Output = Fe;
        fn mul(self, rhs: &Fe) -> Fe {
            let mut out = fiat_25519_tight_field_element([0; 5]);
            fiat_25519_carry_mul(&mut out, &self.loose(), &rhs.loose());
            Fe(out)
        }
    }

    impl Add<&Fe> for &Fe {
        type Output = Fe;
        fn add(self, rhs: &Fe) -> Fe {
            let mut l = fiat_25519_loose_field_element([0; 5]);
            fiat_25519_add(&mut l, &self.0, &rhs.0);
            Fe::carry(&l)
        }
    }

    impl Sub<&Fe> for &Fe {
        type Output = Fe;
        fn sub(self, rhs: &Fe) -> Fe {
            let mut l = fiat_25519_loose_field_element([0; 5]);
            fiat_25519_sub(&mut l, &self.0, &rhs.0);
            Fe::carry(&l)
        }
    }

    impl Neg for &Fe {
        type Output = Fe;
        fn neg(self) -> Fe {
            let mut l = fiat_25519_loose_field_element([0; 5]);
            fiat_25519_opp(&mut l, &self.0);
            Fe::carry(&l)
        }
    }
}

use field::Fe;

/// p - 1 = 2^255 - 20, little-endian.
const P_MINUS_1: [u8; 32] = {
    let mut b = [0xffu8; 32];
    b[0] = 0xec;
    b[31] = 0x7f;
    b
};
/// p - 2 = 2^255 - 21 (inversion exponent), little-endian.
const P_MINUS_2: [u8; 32] = {
    let mut b = [0xffu8; 32];
    b[0] = 0xeb;
    b[31] = 0x7f;
    b
};
/// (p - 1) / 2 = 2^254 - 10 (Legendre-symbol exponent), little-endian.
const P_MINUS_1_HALF: [u8; 32] = {
    let mut b = [0xffu8; 32];
    b[0] = 0xf6;
    b[31] = 0x3f;
    b
};
/// Montgomery curve parameter A of Curve25519.
const CURVE25519_A: u64 = 486662;
/// Non-square Z of RFC 9380's map for Curve25519.
const ELL2_Z: u64 = 2;

/// `map_to_curve_elligator2(u)` of RFC 9380 §6.7.1 for curve25519 (J = A,
/// K = 1, Z = 2), returning only the u-coordinate, canonically encoded.
/// Input: a field element encoding (bit 255 ignored, non-canonical values reduced).
///
/// `x1 = -A / (1 + Z·u²)`; `x = x1` if `x1³ + A·x1² + x1` is a square, else
/// `x = -x1 - A`. This equals the draft's `epsilon·v - (1 - epsilon)·A/2`.
/// `1 + 2u² = 0` has no solution (−1/2 is not a square mod p), so RFC 9380's
/// exceptional case never occurs; should the denominator be zero anyway,
/// inversion by `x^(p-2)` yields 0 as RFC 9380's `inv0` does. Constant time: two
/// fixed-exponent powers and a branch-free select.
pub fn elligator2(u: &[u8; 32]) -> Share {
    let one = Fe::from_u64(1);
    let a = Fe::from_u64(CURVE25519_A);
    let z = Fe::from_u64(ELL2_Z);
    let r = Fe::from_bytes(u);
    let den = &one + &(&z * &r.square());
    let x1 = &(-&a) * &den.pow_public(&P_MINUS_2);
    // gx1 = x1^3 + A x1^2 + x1 = x1 (x1 (x1 + A) + 1)
    let gx1 = &x1 * &(&(&x1 * &(&x1 + &a)) + &one);
    let legendre = gx1.pow_public(&P_MINUS_1_HALF).to_bytes();
    // Non-square exactly when the Legendre symbol is -1 (0 counts as a square).
    let non_square = legendre.ct_eq(&P_MINUS_1).unwrap_u8();
    let x2 = &(-&x1) - &a;
    Fe::select(&x1, &x2, non_square).to_bytes()
}

/// `G_X25519.calculate_generator(H = SHA-512, PRS, CI, sid)`: the generator's
/// encoding. It is a function of the password, hence secret and wiped on drop.
pub fn calculate_generator(prs: &[u8], ci: &[u8], sid: &[u8]) -> Zeroizing<Share> {
    let mut h = Sha512::new();
    hash_lv(&mut h, DSI);
    hash_lv(&mut h, prs);
    hash_lv(&mut h, &vec![0u8; zpad_len(DSI, prs, H_S_IN_BYTES)]);
    hash_lv(&mut h, ci);
    hash_lv(&mut h, sid);
    let mut digest = h.finalize();
    let mut u = Zeroizing::new([0u8; 32]);
    u.copy_from_slice(&digest[..32]);
    digest.as_mut_slice().zeroize();
    // decodeUCoordinate (clearing bit 255) happens inside the field decoding.
    Zeroizing::new(elligator2(&u))
}

/// `G_X25519.sample_scalar()`: 32 random bytes (X25519 clamps them when used).
pub fn sample_scalar(rng: &dyn SecureRandom) -> Result<Zeroizing<[u8; 32]>, PakeError> {
    let mut y = Zeroizing::new([0u8; 32]);
    rng.fill(&mut y[..])
        .map_err(|_| PakeError::Internal("the system random generator failed".into()))?;
    Ok(y)
}

/// `G_X25519.scalar_mult(y, g) = X25519(y, g)`.
pub fn scalar_mult(y: &[u8; 32], point: &[u8; 32]) -> Share {
    MontgomeryPoint(*point).mul_clamped(*y).to_bytes()
}

/// `G_X25519.scalar_mult_vfy(y, X) = X25519(y, X)`, failing with
/// [`PakeError::InvalidPoint`] when the result is the neutral element (all zero).
pub fn scalar_mult_vfy(y: &[u8; 32], point: &[u8; 32]) -> Result<Zeroizing<Share>, PakeError> {
    let k = Zeroizing::new(scalar_mult(y, point));
    if bool::from(k.ct_eq(&IDENTITY)) {
        return Err(PakeError::InvalidPoint);
    }
    Ok(k)
}

/// `ISK = H(lv_cat(DSI_ISK, sid, K) || transcript)`.
fn isk_from(sid: &[u8], k: &[u8; 32], transcript: &[u8]) -> Isk {
    let mut h = Sha512::new();
    hash_lv(&mut h, DSI_ISK);
    hash_lv(&mut h, sid);
    hash_lv(&mut h, k);
    h.update(transcript);
    let mut digest = h.finalize();
    let mut isk = Zeroizing::new([0u8; ISK_LEN]);
    isk.copy_from_slice(&digest);
    digest.as_mut_slice().zeroize();
    isk
}

/// ISK of the initiator-responder mode:
/// `H(lv_cat(DSI_ISK, sid, K) || transcript_ir(Ya, ADa, Yb, ADb))`.
pub fn isk_ir(sid: &[u8], k: &[u8; 32], ya: &[u8], ada: &[u8], yb: &[u8], adb: &[u8]) -> Isk {
    isk_from(sid, k, &transcript_ir(ya, ada, yb, adb))
}

/// ISK of the symmetric mode:
/// `H(lv_cat(DSI_ISK, sid, K) || transcript_oc(Ya, ADa, Yb, ADb))`.
pub fn isk_sy(sid: &[u8], k: &[u8; 32], ya: &[u8], ada: &[u8], yb: &[u8], adb: &[u8]) -> Isk {
    isk_from(sid, k, &transcript_oc(ya, ada, yb, adb))
}

/// `sid_output = H("CPaceSidOutput" || transcript_ir(Ya, ADa, Yb, ADb))`.
pub fn sid_output_ir(ya: &[u8], ada: &[u8], yb: &[u8], adb: &[u8]) -> [u8; 64] {
    let mut h = Sha512::new();
    h.update(SID_OUTPUT_PREFIX);
    h.update(transcript_ir(ya, ada, yb, adb));
    h.finalize().into()
}

/// `sid_output = H("CPaceSidOutput" || transcript_oc(Ya, ADa, Yb, ADb))`.
pub fn sid_output_oc(ya: &[u8], ada: &[u8], yb: &[u8], adb: &[u8]) -> [u8; 64] {
    let mut h = Sha512::new();
    h.update(SID_OUTPUT_PREFIX);
    h.update(transcript_oc(ya, ada, yb, adb));
    h.finalize().into()
}

/// One party of a CPace run: its secret scalar (wiped on drop), its share, and
/// the session's `sid` and own associated data. The generator is not kept.
pub struct Cpace {
    y: Zeroizing<[u8; 32]>,
    share: Share,
    sid: Vec<u8>,
    ad: Vec<u8>,
}

impl fmt::Debug for Cpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the scalar.
        f.debug_struct("Cpace")
            .field("share", &crate::identity::to_hex(&self.share))
            .finish_non_exhaustive()
    }
}

impl Cpace {
    /// Starts a run: `g = calculate_generator(PRS, CI, sid)`, `y = sample_scalar()`,
    /// `Y = scalar_mult(y, g)`. Send [`Cpace::share`] with `ad` to the peer.
    pub fn start(
        prs: &[u8],
        ci: &[u8],
        sid: &[u8],
        ad: &[u8],
        rng: &dyn SecureRandom,
    ) -> Result<Cpace, PakeError> {
        let y = sample_scalar(rng)?;
        Cpace::start_with_scalar(prs, ci, sid, ad, y)
    }

    /// As [`Cpace::start`] with a given scalar (test vectors; never reuse a
    /// scalar across sessions).
    pub fn start_with_scalar(
        prs: &[u8],
        ci: &[u8],
        sid: &[u8],
        ad: &[u8],
        y: Zeroizing<[u8; 32]>,
    ) -> Result<Cpace, PakeError> {
        let g = calculate_generator(prs, ci, sid);
        let share = scalar_mult(&y, &g);
        // Only reachable if the generator were a low-order point (probability
        // about 2^-250 per password/session): the peer would reject the share anyway.
        if bool::from(share.ct_eq(&IDENTITY)) {
            return Err(PakeError::Internal(
                "the CPace generator is a low-order point".into(),
            ));
        }
        Ok(Cpace {
            y,
            share,
            sid: sid.to_vec(),
            ad: ad.to_vec(),
        })
    }

    /// This party's public share Y.
    pub fn share(&self) -> &Share {
        &self.share
    }

    /// K = scalar_mult_vfy(y, peer share).
    fn k(&self, peer: &[u8; 32]) -> Result<Zeroizing<Share>, PakeError> {
        scalar_mult_vfy(&self.y, peer)
    }

    /// ISK_IR when this party is the initiator A (peer = B with `Yb`, `ADb`).
    pub fn isk_as_initiator(&self, yb: &[u8; 32], adb: &[u8]) -> Result<Isk, PakeError> {
        let k = self.k(yb)?;
        Ok(isk_ir(&self.sid, &k, &self.share, &self.ad, yb, adb))
    }

    /// ISK_IR when this party is the responder B (peer = A with `Ya`, `ADa`).
    pub fn isk_as_responder(&self, ya: &[u8; 32], ada: &[u8]) -> Result<Isk, PakeError> {
        let k = self.k(ya)?;
        Ok(isk_ir(&self.sid, &k, ya, ada, &self.share, &self.ad))
    }

    /// ISK_SY of the symmetric mode (same result for both parties).
    pub fn isk_symmetric(&self, peer: &[u8; 32], peer_ad: &[u8]) -> Result<Isk, PakeError> {
        let k = self.k(peer)?;
        Ok(isk_sy(&self.sid, &k, &self.share, &self.ad, peer, peer_ad))
    }
}

// ---------------------------------------------------------------------------
// CribCall PIN pairing (SPEC.md §7.2)
// ---------------------------------------------------------------------------

/// First element of the channel identifier.
pub const PIN_CI_LABEL: &[u8] = b"cribcall-pin-v1";
/// ADa: the monitor is the initiator (its share goes in `PIN_REQUIRED.pakeMsgA`).
pub const PIN_AD_MONITOR: &[u8] = b"monitor";
/// ADb: the listener is the responder (its share goes in `PIN_SUBMIT.pakeMsgB`).
pub const PIN_AD_LISTENER: &[u8] = b"listener";
/// HMAC-SHA512 label of the listener's confirmation key.
pub const PIN_LISTENER_CONFIRM_LABEL: &[u8] = b"cribcall pin listener confirm v1";
/// HMAC-SHA512 label of the monitor's confirmation key.
pub const PIN_MONITOR_CONFIRM_LABEL: &[u8] = b"cribcall pin monitor confirm v1";
/// Digits of a pairing PIN.
pub const PIN_DIGITS: usize = 6;
/// Longest accepted `pairingSessionId`, in UTF-8 bytes.
pub const MAX_SESSION_ID_LEN: usize = 256;

/// `CI = lv_cat("cribcall-pin-v1", monitor_fp, listener_fp)`: both certificate
/// fingerprints (SHA-256 of the DER) as each side observed them in TLS.
pub fn channel_identifier(monitor_fp: &[u8; 32], listener_fp: &[u8; 32]) -> Vec<u8> {
    lv_cat(&[PIN_CI_LABEL, monitor_fp, listener_fp])
}

/// PRS: exactly six ASCII digits.
fn check_pin(pin: &str) -> Result<&[u8], PakeError> {
    let b = pin.as_bytes();
    if b.len() != PIN_DIGITS || !b.iter().all(u8::is_ascii_digit) {
        return Err(PakeError::InvalidArgument(
            "the PIN must be exactly 6 ASCII digits".into(),
        ));
    }
    Ok(b)
}

/// sid: the UTF-8 bytes of `pairingSessionId`, 1 to 256 bytes.
fn check_sid(sid: &str) -> Result<&[u8], PakeError> {
    if sid.is_empty() || sid.len() > MAX_SESSION_ID_LEN {
        return Err(PakeError::InvalidArgument(format!(
            "the pairing session id must be 1 to {MAX_SESSION_ID_LEN} bytes, got {}",
            sid.len()
        )));
    }
    Ok(sid.as_bytes())
}

/// The two key-confirmation tags of a PIN pairing, each HMAC-SHA256 over the
/// transcript's JCS bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct PinTags {
    /// Sent by the listener in `PIN_SUBMIT.authTag`.
    pub listener_tag: [u8; 32],
    /// Sent by the monitor in `PAIR_ACCEPTED.authTag`.
    pub monitor_tag: [u8; 32],
}

impl fmt::Debug for PinTags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinTags")
            .field("listener_tag", &crate::identity::to_hex(&self.listener_tag))
            .field("monitor_tag", &crate::identity::to_hex(&self.monitor_tag))
            .finish()
    }
}

/// `HMAC-SHA512(key = ISK, label)[..32]`.
fn confirm_key(isk: &[u8; ISK_LEN], label: &[u8]) -> Result<Zeroizing<[u8; 32]>, PakeError> {
    let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(isk)
        .map_err(|_| PakeError::Internal("HMAC-SHA512 refused the key".into()))?;
    mac.update(label);
    let mut full = mac.finalize().into_bytes();
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&full[..32]);
    full.as_mut_slice().zeroize();
    Ok(key)
}

/// `HMAC-SHA256(key, transcript)`.
fn tag(key: &[u8; 32], transcript: &[u8]) -> Result<[u8; 32], PakeError> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .map_err(|_| PakeError::Internal("HMAC-SHA256 refused the key".into()))?;
    mac.update(transcript);
    Ok(mac.finalize().into_bytes().into())
}

/// Both tags from ISK_IR and the transcript's JCS bytes.
pub fn pin_tags(isk: &[u8; ISK_LEN], transcript: &[u8]) -> Result<PinTags, PakeError> {
    let k_listener = confirm_key(isk, PIN_LISTENER_CONFIRM_LABEL)?;
    let k_monitor = confirm_key(isk, PIN_MONITOR_CONFIRM_LABEL)?;
    Ok(PinTags {
        listener_tag: tag(&k_listener, transcript)?,
        monitor_tag: tag(&k_monitor, transcript)?,
    })
}

/// The monitor's side of a PIN pairing (CPace initiator). It keeps its scalar
/// for the session's life: the same share `Ya` serves every attempt of the
/// session (up to 3). Wiped on drop.
#[derive(Debug)]
pub struct PinInitiator {
    cpace: Cpace,
}

impl PinInitiator {
    /// Starts a session; returns the state and `Ya` for `PIN_REQUIRED.pakeMsgA`.
    /// `ci` is [`channel_identifier`]`(monitor_fp, listener_fp)`.
    pub fn new(
        pin: &str,
        sid: &str,
        ci: &[u8],
        rng: &dyn SecureRandom,
    ) -> Result<(PinInitiator, Share), PakeError> {
        let y = sample_scalar(rng)?;
        PinInitiator::with_scalar(pin, sid, ci, y)
    }

    /// As [`PinInitiator::new`] with a given scalar (tests).
    pub fn with_scalar(
        pin: &str,
        sid: &str,
        ci: &[u8],
        y: Zeroizing<[u8; 32]>,
    ) -> Result<(PinInitiator, Share), PakeError> {
        let prs = check_pin(pin)?;
        let sid = check_sid(sid)?;
        let cpace = Cpace::start_with_scalar(prs, ci, sid, PIN_AD_MONITOR, y)?;
        let share = *cpace.share();
        Ok((PinInitiator { cpace }, share))
    }

    /// `Ya`.
    pub fn share(&self) -> &Share {
        self.cpace.share()
    }

    /// Given the listener's `Yb` (`PIN_SUBMIT.pakeMsgB`) and the transcript's JCS
    /// bytes, derives ISK_IR and both tags; the caller compares `listener_tag`
    /// with the received `authTag` in constant time. Rejects low-order points.
    pub fn confirm(&self, yb: &[u8; 32], transcript: &[u8]) -> Result<PinTags, PakeError> {
        let isk = self.cpace.isk_as_initiator(yb, PIN_AD_LISTENER)?;
        pin_tags(&isk, transcript)
    }
}

/// The listener's side (CPace responder): from the monitor's `Ya`
/// (`PIN_REQUIRED.pakeMsgA`) computes its own share `Yb` (for
/// `PIN_SUBMIT.pakeMsgB`) and both tags. The scalar is wiped before returning.
pub fn pin_respond(
    pin: &str,
    sid: &str,
    ci: &[u8],
    ya: &[u8; 32],
    transcript: &[u8],
    rng: &dyn SecureRandom,
) -> Result<(Share, PinTags), PakeError> {
    let y = sample_scalar(rng)?;
    pin_respond_with_scalar(pin, sid, ci, ya, transcript, y)
}

/// As [`pin_respond`] with a given scalar (tests).
pub fn pin_respond_with_scalar(
    pin: &str,
    sid: &str,
    ci: &[u8],
    ya: &[u8; 32],
    transcript: &[u8],
    y: Zeroizing<[u8; 32]>,
) -> Result<(Share, PinTags), PakeError> {
    let prs = check_pin(pin)?;
    let sid = check_sid(sid)?;
    let cpace = Cpace::start_with_scalar(prs, ci, sid, PIN_AD_LISTENER, y)?;
    let isk = cpace.isk_as_responder(ya, PIN_AD_MONITOR)?;
    let tags = pin_tags(&isk, transcript)?;
    Ok((*cpace.share(), tags))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

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
}
