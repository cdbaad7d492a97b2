//! CribCall PIN pairing (SPEC.md §7.2) on CPace.

use super::group::sample_scalar;
use super::session::Cpace;
use super::strings::lv_cat;
use super::{PakeError, SecureRandom, Share, ISK_LEN};
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};
use std::fmt;
use zeroize::{Zeroize, Zeroizing};

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
