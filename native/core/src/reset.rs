//! Stateless resets (RFC 9000 §10.3): tokens derived from a static key, and the
//! rules for answering a packet of an unknown connection.
//!
//! The key is derived from the endpoint's identity (its private key), so an
//! endpoint restarted with the same identity computes the same token for every
//! connection ID it issued before the restart, and can reset those connections
//! the moment their peers send to it (RFC 9000 §10.3.2, "static key").

use ring::hmac;

/// Length of a stateless reset token.
pub const TOKEN_LEN: usize = 16;
/// The smallest stateless reset we send: 1 header byte, 4 unpredictable bytes,
/// the token (RFC 9000 §10.3: "at least 21 bytes").
pub const MIN_RESET_LEN: usize = 1 + 4 + TOKEN_LEN;
/// The size we aim for (RFC 9000 §10.3 recommends at least 41 bytes, so that
/// a reset looks like a packet with a short connection ID).
pub const PREFERRED_RESET_LEN: usize = 43;

const KEY_LABEL: &[u8] = b"cribcall-quic stateless reset key v1";

/// The static key tokens are computed with.
pub struct ResetKey(hmac::Key);

impl ResetKey {
    /// Derives the key from secret bytes (the identity's private key, DER).
    /// The secret itself is not kept.
    pub fn derive(secret: &[u8]) -> ResetKey {
        let prk = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), KEY_LABEL);
        ResetKey(hmac::Key::new(hmac::HMAC_SHA256, prk.as_ref()))
    }

    /// The token of one of our connection IDs.
    pub fn token(&self, cid: &[u8]) -> u128 {
        let tag = hmac::sign(&self.0, cid);
        let mut t = [0u8; TOKEN_LEN];
        t.copy_from_slice(&tag.as_ref()[..TOKEN_LEN]);
        u128::from_be_bytes(t)
    }
}

/// How long a stateless reset answering a `trigger_len`-byte packet may be:
/// smaller than the trigger (so two endpoints cannot loop), at least
/// [`MIN_RESET_LEN`], at most [`PREFERRED_RESET_LEN`]. None: send nothing.
pub fn reset_len(trigger_len: usize) -> Option<usize> {
    let len = trigger_len.checked_sub(1)?.min(PREFERRED_RESET_LEN);
    (len >= MIN_RESET_LEN).then_some(len)
}

/// Writes a stateless reset of `out.len()` bytes: `random` supplies the
/// unpredictable bits (at least `out.len() - TOKEN_LEN` bytes), the header is
/// that of a short-header packet (0b01xxxxxx), the last 16 bytes the token.
pub fn write_reset(out: &mut [u8], random: &[u8], token: u128) -> bool {
    let n = out.len();
    if n < MIN_RESET_LEN || random.len() < n - TOKEN_LEN {
        return false;
    }
    out[..n - TOKEN_LEN].copy_from_slice(&random[..n - TOKEN_LEN]);
    out[0] = 0x40 | (out[0] & 0x3f);
    out[n - TOKEN_LEN..].copy_from_slice(&token.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_depend_on_the_key_and_the_cid_and_are_stable() {
        let a = ResetKey::derive(b"identity one");
        let a2 = ResetKey::derive(b"identity one");
        let b = ResetKey::derive(b"identity two");
        assert_eq!(a.token(b"cid-1"), a2.token(b"cid-1"));
        assert_ne!(a.token(b"cid-1"), a.token(b"cid-2"));
        assert_ne!(a.token(b"cid-1"), b.token(b"cid-1"));
    }

    #[test]
    fn a_reset_is_smaller_than_its_trigger_and_never_below_21_bytes() {
        assert_eq!(reset_len(0), None);
        assert_eq!(reset_len(21), None);
        assert_eq!(reset_len(22), Some(21));
        assert_eq!(reset_len(40), Some(39));
        assert_eq!(reset_len(1200), Some(PREFERRED_RESET_LEN));
        for trigger in 0..2000 {
            if let Some(n) = reset_len(trigger) {
                assert!(n < trigger && (MIN_RESET_LEN..=PREFERRED_RESET_LEN).contains(&n));
            }
        }
    }

    #[test]
    fn written_reset_has_a_short_header_and_ends_with_the_token() {
        let mut out = [0u8; 30];
        let random = [0xffu8; 30];
        assert!(write_reset(
            &mut out,
            &random,
            0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10
        ));
        assert_eq!(out[0] & 0xc0, 0x40);
        assert_eq!(
            &out[14..],
            &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
        );
        assert!(!write_reset(&mut [0u8; 20], &random, 1));
        assert!(!write_reset(&mut out, &[0u8; 3], 1));
    }
}
