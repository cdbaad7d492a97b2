//! The group object G_X25519: Elligator2, the generator, scalar multiplication,
//! ISK and the session-id output.

use super::field::Fe;
use super::strings::{hash_lv, transcript_ir, transcript_oc, zpad_len};
use super::{
    Isk, PakeError, SecureRandom, Share, DSI, DSI_ISK, H_S_IN_BYTES, IDENTITY, ISK_LEN,
    SID_OUTPUT_PREFIX,
};
use curve25519_dalek::montgomery::MontgomeryPoint;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

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
