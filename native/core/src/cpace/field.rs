//! Field arithmetic mod 2^255 - 19 on fiat-crypto's verified, constant-time
//! primitives (used by Elligator2).

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
