//! Bindings of the PIN pairing PAKE (CPace, SPEC.md §7.2). All cryptography lives
//! in `cribcall_core::cpace`.

use crate::Code;
use cribcall_core::cpace::{self, PakeError, PinInitiator, SystemRandom};
use cribcall_core::{ct, identity};
use napi::bindgen_prelude::*;
use napi_derive::napi;

fn pake_err(e: PakeError) -> Error<Code> {
    Error::new(Code(e.code()), e.to_string())
}

fn invalid(msg: impl Into<String>) -> Error<Code> {
    Error::new(Code("ERR_INVALID_ARG"), msg.into())
}

fn fingerprint(what: &str, s: &str) -> Result<[u8; 32], Code> {
    identity::parse_fingerprint(s).map_err(|e| invalid(format!("{what}: {e}")))
}

/// CI from the two fingerprints as this side observed them in TLS.
fn channel(monitor_fingerprint: &str, listener_fingerprint: &str) -> Result<Vec<u8>, Code> {
    Ok(cpace::channel_identifier(
        &fingerprint("monitorFingerprint", monitor_fingerprint)?,
        &fingerprint("listenerFingerprint", listener_fingerprint)?,
    ))
}

/// A received share: exactly 32 bytes, else it is not a valid point encoding.
fn share(peer_share: &[u8]) -> Result<[u8; 32], Code> {
    peer_share.try_into().map_err(|_| {
        Error::new(
            Code("ERR_PAKE_INVALID_POINT"),
            format!(
                "a PAKE share is 32 bytes (X25519 u-coordinate), got {}",
                peer_share.len()
            ),
        )
    })
}

/// The two key-confirmation tags of a PIN pairing, each HMAC-SHA256 (32 bytes)
/// over the JCS bytes of the pairing transcript.
#[napi(object)]
pub struct PinTags {
    /// The listener's tag (`PIN_SUBMIT.authTag`).
    pub listener_tag: Buffer,
    /// The monitor's tag (`PAIR_ACCEPTED.authTag`).
    pub monitor_tag: Buffer,
}

impl From<cpace::PinTags> for PinTags {
    fn from(t: cpace::PinTags) -> Self {
        PinTags {
            listener_tag: t.listener_tag.to_vec().into(),
            monitor_tag: t.monitor_tag.to_vec().into(),
        }
    }
}

/// The listener's result of `pinPakeRespond`.
#[napi(object)]
pub struct PinPakeResponse {
    /// The listener's CPace share Yb (32 bytes) for `PIN_SUBMIT.pakeMsgB`.
    pub share: Buffer,
    /// The listener's tag (`PIN_SUBMIT.authTag`).
    pub listener_tag: Buffer,
    /// The tag the monitor must send in `PAIR_ACCEPTED.authTag`; compare with `tagsEqual`.
    pub monitor_tag: Buffer,
}

/// The monitor's side of a PIN pairing session (CPace initiator,
/// CPACE-X25519-SHA512). It keeps its secret scalar for the session's life, so
/// the same `share` serves every attempt; call `destroy()` when the session ends
/// (the secret is wiped then, or when the object is garbage-collected).
#[napi]
pub struct PinPakeInitiator {
    inner: Option<PinInitiator>,
    share: [u8; 32],
}

#[napi]
impl PinPakeInitiator {
    /// Starts a session. `pin`: exactly 6 ASCII digits; `sessionId`: the
    /// `pairingSessionId` (1 to 256 UTF-8 bytes); fingerprints: 64 hex
    /// characters (SHA-256 of the certificates as observed in TLS).
    /// Throws `ERR_INVALID_ARG` for a malformed argument.
    #[napi(factory)]
    pub fn start(
        pin: String,
        session_id: String,
        monitor_fingerprint: String,
        listener_fingerprint: String,
    ) -> Result<Self, Code> {
        let ci = channel(&monitor_fingerprint, &listener_fingerprint)?;
        let rng = SystemRandom::new();
        let (inner, share) = PinInitiator::new(&pin, &session_id, &ci, &rng).map_err(pake_err)?;
        Ok(PinPakeInitiator {
            inner: Some(inner),
            share,
        })
    }

    /// The monitor's CPace share Ya (32 bytes) for `PIN_REQUIRED.pakeMsgA`.
    #[napi(getter)]
    pub fn share(&self) -> Buffer {
        self.share.to_vec().into()
    }

    /// Derives both tags from the listener's share Yb (`PIN_SUBMIT.pakeMsgB`)
    /// and the transcript's JCS bytes; compare `listenerTag` with the received
    /// `authTag` using `tagsEqual`. Throws `ERR_PAKE_INVALID_POINT` for a share
    /// that is not 32 bytes or is a low-order point, `ERR_PAKE_DESTROYED` after
    /// `destroy()`.
    #[napi]
    pub fn confirm(&self, peer_share: Buffer, transcript: Buffer) -> Result<PinTags, Code> {
        let inner = self.inner.as_ref().ok_or_else(|| {
            Error::new(
                Code("ERR_PAKE_DESTROYED"),
                "this PIN pairing session was destroyed".to_owned(),
            )
        })?;
        let yb = share(&peer_share)?;
        inner
            .confirm(&yb, &transcript)
            .map(PinTags::from)
            .map_err(pake_err)
    }

    /// Wipes the secret scalar; later `confirm` calls throw `ERR_PAKE_DESTROYED`.
    #[napi]
    pub fn destroy(&mut self) {
        self.inner = None;
    }
}

/// The listener's side of a PIN pairing (CPace responder): from the monitor's
/// share Ya (`PIN_REQUIRED.pakeMsgA`), the PIN the user typed and the
/// transcript's JCS bytes, returns the listener's share Yb and both tags. The
/// secret scalar is wiped before returning. Throws `ERR_INVALID_ARG` for a
/// malformed PIN, session id or fingerprint, `ERR_PAKE_INVALID_POINT` for a
/// share that is not 32 bytes or is a low-order point.
#[napi]
pub fn pin_pake_respond(
    pin: String,
    session_id: String,
    monitor_fingerprint: String,
    listener_fingerprint: String,
    peer_share: Buffer,
    transcript: Buffer,
) -> Result<PinPakeResponse, Code> {
    let ci = channel(&monitor_fingerprint, &listener_fingerprint)?;
    let ya = share(&peer_share)?;
    let rng = SystemRandom::new();
    let (yb, tags) =
        cpace::pin_respond(&pin, &session_id, &ci, &ya, &transcript, &rng).map_err(pake_err)?;
    Ok(PinPakeResponse {
        share: yb.to_vec().into(),
        listener_tag: tags.listener_tag.to_vec().into(),
        monitor_tag: tags.monitor_tag.to_vec().into(),
    })
}

/// Constant-time equality of two tags (false when the lengths differ; the time
/// depends only on the lengths).
#[napi]
pub fn tags_equal(a: Buffer, b: Buffer) -> bool {
    ct::eq(&a, &b)
}
