//! One party of a CPace run.

use super::group::{
    calculate_generator, isk_ir, isk_sy, sample_scalar, scalar_mult, scalar_mult_vfy,
};
use super::{Isk, PakeError, SecureRandom, Share, IDENTITY};
use std::fmt;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

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
