//! Thin napi layer of cribcall-quic: argument checks, conversion, error mapping.
//! All behaviour lives in `cribcall-core` (sans-IO) and `cribcall-driver` (IO).
//!
//! - this file: the error mapping (`Code`, `js_err`).
//! - [`device`]: `generateIdentity`, `fingerprintOf`.
//! - [`endpoint`]: the `NativeEndpoint` class, its options and constructor;
//!   [`endpoint_methods`]: its other methods, `EndpointStats`.
//! - [`events`]: the event batch handed to JS.
//! - [`pake`]: the PIN pairing (CPace); [`qr`]: the QR pairing proof.
//! - `test_hooks` (only with the cargo feature `test-hooks`, never in the production
//!   addon): `_sendRaw`, `_injectPanic`, `canonicalStringObject`.
#![deny(clippy::all)]

use cribcall_core::identity;
use cribcall_driver::DriverError;
use napi::bindgen_prelude::*;

pub mod device;
pub mod endpoint;
pub mod endpoint_methods;
pub mod events;
pub mod pake;
// QR pairing secret and proof (SPEC.md §7.1).
pub mod qr;
#[cfg(feature = "test-hooks")]
pub mod test_hooks;

/// The `code` a thrown error carries (napi-rs puts the status in `error.code`).
pub struct Code(&'static str);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        self.0
    }
}

/// The one place a Rust error becomes a JS error. (napi-rs's own checks of
/// the JS types passed throw before our code runs, with the napi status —
/// `InvalidArg`, `StringExpected`, … — as `code`; `fromNative` in
/// src/transport/errors.ts turns those into ERR_INVALID_ARG.)
pub(crate) fn js_err(e: DriverError) -> Error<Code> {
    Error::new(Code(e.code()), e.to_string())
}

pub(crate) fn invalid(msg: impl Into<String>) -> Error<Code> {
    Error::new(Code("ERR_INVALID_ARG"), msg.into())
}

pub(crate) fn identity_err(e: identity::IdentityError) -> Error<Code> {
    js_err(DriverError::from(e))
}
