//! Address validation with Retry (RFC 9000 §8.1.2): tokens that are
//! authenticated (HMAC-SHA-256 under a key that never leaves this process),
//! bound to the client's address and port and to the original destination
//! connection ID, and short-lived. Time is passed in.

use ring::hmac;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// First byte of our tokens, so a token from elsewhere is told apart.
const MAGIC: u8 = 0xc7;
const MAC_LEN: usize = 16;
const MAX_CID_LEN: usize = 20;

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not one of ours (another format): treat as if there were no token.
    Foreign,
    /// Ours, but forged, for another address, or malformed.
    Invalid,
    /// Ours and authentic, but too old.
    Expired,
}

pub struct RetryTokens {
    key: hmac::Key,
    epoch: Instant,
    lifetime: Duration,
}

impl RetryTokens {
    pub fn new(key_bytes: &[u8; 32], epoch: Instant, lifetime: Duration) -> RetryTokens {
        RetryTokens {
            key: hmac::Key::new(hmac::HMAC_SHA256, key_bytes),
            epoch,
            lifetime,
        }
    }

    fn mac(&self, addr: &SocketAddr, issued: u64, odcid: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        match addr {
            SocketAddr::V4(a) => {
                ctx.update(&[4]);
                ctx.update(&a.ip().octets());
            }
            SocketAddr::V6(a) => {
                ctx.update(&[6]);
                ctx.update(&a.ip().octets());
            }
        }
        ctx.update(&addr.port().to_be_bytes());
        ctx.update(&issued.to_be_bytes());
        ctx.update(odcid);
        ctx.sign()
    }

    /// A token for a client at `addr` whose first Initial had `odcid`.
    pub fn mint(&self, addr: &SocketAddr, odcid: &[u8], now: Instant) -> Vec<u8> {
        let issued = now.saturating_duration_since(self.epoch).as_millis() as u64;
        let odcid = &odcid[..odcid.len().min(MAX_CID_LEN)];
        let mut t = Vec::with_capacity(1 + 8 + 1 + odcid.len() + MAC_LEN);
        t.push(MAGIC);
        t.extend_from_slice(&issued.to_be_bytes());
        t.push(odcid.len() as u8);
        t.extend_from_slice(odcid);
        t.extend_from_slice(&self.mac(addr, issued, odcid).as_ref()[..MAC_LEN]);
        t
    }

    /// The original destination connection ID a valid token carries.
    pub fn validate(
        &self,
        token: &[u8],
        addr: &SocketAddr,
        now: Instant,
    ) -> Result<Vec<u8>, TokenError> {
        if token.first() != Some(&MAGIC) {
            return Err(TokenError::Foreign);
        }
        if token.len() < 1 + 8 + 1 + MAC_LEN {
            return Err(TokenError::Invalid);
        }
        let mut issued = [0u8; 8];
        issued.copy_from_slice(&token[1..9]);
        let issued = u64::from_be_bytes(issued);
        let cid_len = token[9] as usize;
        if cid_len > MAX_CID_LEN || token.len() != 10 + cid_len + MAC_LEN {
            return Err(TokenError::Invalid);
        }
        let odcid = &token[10..10 + cid_len];
        let mac = &token[10 + cid_len..];
        let expected = self.mac(addr, issued, odcid);
        if !cribcall_core::ct::eq(mac, &expected.as_ref()[..MAC_LEN]) {
            return Err(TokenError::Invalid);
        }
        let age = now
            .saturating_duration_since(self.epoch)
            .as_millis()
            .saturating_sub(u128::from(issued));
        if age > self.lifetime.as_millis() {
            return Err(TokenError::Expired);
        }
        Ok(odcid.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(epoch: Instant) -> RetryTokens {
        RetryTokens::new(&[7u8; 32], epoch, Duration::from_secs(10))
    }

    #[test]
    fn a_token_is_valid_for_its_address_and_lifetime_only() {
        let t0 = Instant::now();
        let rt = tokens(t0);
        let a: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let tok = rt.mint(&a, b"odcid-bytes", t0);
        assert_eq!(
            rt.validate(&tok, &a, t0 + Duration::from_secs(9)),
            Ok(b"odcid-bytes".to_vec())
        );
        let other_port: SocketAddr = "127.0.0.1:4001".parse().unwrap();
        let other_ip: SocketAddr = "127.0.0.2:4000".parse().unwrap();
        assert_eq!(rt.validate(&tok, &other_port, t0), Err(TokenError::Invalid));
        assert_eq!(rt.validate(&tok, &other_ip, t0), Err(TokenError::Invalid));
        assert_eq!(
            rt.validate(&tok, &a, t0 + Duration::from_secs(11)),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn forged_truncated_and_foreign_tokens_are_refused() {
        let t0 = Instant::now();
        let rt = tokens(t0);
        let a: SocketAddr = "[::1]:4000".parse().unwrap();
        let mut tok = rt.mint(&a, b"abc", t0);
        let last = tok.len() - 1;
        tok[last] ^= 1;
        assert_eq!(rt.validate(&tok, &a, t0), Err(TokenError::Invalid));
        let good = rt.mint(&a, b"abc", t0);
        assert_eq!(
            rt.validate(&good[..good.len() - 1], &a, t0),
            Err(TokenError::Invalid)
        );
        assert_eq!(rt.validate(&good[..5], &a, t0), Err(TokenError::Invalid));
        assert_eq!(rt.validate(b"", &a, t0), Err(TokenError::Foreign));
        assert_eq!(
            rt.validate(b"\x01new-token", &a, t0),
            Err(TokenError::Foreign)
        );
        // Another endpoint's key.
        let other = RetryTokens::new(&[8u8; 32], t0, Duration::from_secs(10));
        assert_eq!(other.validate(&good, &a, t0), Err(TokenError::Invalid));
        // A token whose length byte lies.
        let mut lying = good.clone();
        lying[9] = 200;
        assert_eq!(rt.validate(&lying, &a, t0), Err(TokenError::Invalid));
    }
}
