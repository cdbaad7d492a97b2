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

//!
//! Files: `strings` (the draft's byte-string utilities), `field` (GF(2^255 - 19)),
//! `group` (G_X25519: Elligator2, the generator, scalar multiplication, ISK),
//! `session` (one party of a CPace run), `pin` (CribCall's PIN pairing).

pub use ring::rand::{SecureRandom, SystemRandom};
use std::fmt;
use zeroize::Zeroizing;

mod field;
mod group;
mod pin;
mod session;
mod strings;
#[cfg(test)]
mod tests;

pub use group::{
    calculate_generator, elligator2, isk_ir, isk_sy, sample_scalar, scalar_mult, scalar_mult_vfy,
    sid_output_ir, sid_output_oc,
};
pub use pin::{
    channel_identifier, pin_respond, pin_respond_with_scalar, pin_tags, PinInitiator, PinTags,
    MAX_SESSION_ID_LEN, PIN_AD_LISTENER, PIN_AD_MONITOR, PIN_CI_LABEL, PIN_DIGITS,
    PIN_LISTENER_CONFIRM_LABEL, PIN_MONITOR_CONFIRM_LABEL,
};
pub use session::Cpace;
pub use strings::{
    generator_string, lexicographically_larger, lv_cat, o_cat, prepend_len, transcript_ir,
    transcript_oc,
};

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
