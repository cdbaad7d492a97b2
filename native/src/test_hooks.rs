//! Test-only hooks and oracles, compiled only with the cargo feature `test-hooks`
//! (`npm run build:native:test`, the addon vitest loads); the production addon
//! (`npm run build:native`) has none of them and its `index.d.ts` does not declare
//! them.
//!
//! - `NativeEndpoint._sendRaw`: raw bytes on the control stream (malformed frames).
//! - `NativeEndpoint._injectPanic`: a peer that vanishes (its IO thread panics).
//! - `canonicalStringObject`: the Rust JCS, to check the TypeScript one byte for byte.

use crate::endpoint::NativeEndpoint;
use crate::{invalid, js_err, Code};
use cribcall_core::jcs;
use napi::bindgen_prelude::*;
use napi::JsString;
use napi_derive::napi;

#[napi]
impl NativeEndpoint {
    /// Test hook: queues raw bytes on the control stream without framing.
    #[napi(js_name = "_sendRaw")]
    pub fn send_raw(&self, conn_id: u32, bytes: &[u8]) -> Result<u32, Code> {
        self.handle
            .send_raw(conn_id, bytes)
            .map(|n| n.min(u32::MAX as usize) as u32)
            .map_err(js_err)
    }

    /// Test hook: makes the IO thread panic (the panic is contained and reported).
    #[napi(js_name = "_injectPanic")]
    pub fn inject_panic(&self) -> Result<(), Code> {
        self.handle.inject_panic().map_err(js_err)
    }
}

fn js_string_utf16(s: JsString<'_>, what: &str) -> Result<String, Code> {
    s.into_utf16()
        .and_then(|u| u.as_str())
        .map_err(|_| invalid(format!("{what} is not well-formed UTF-16 (lone surrogate)")))
}

/// RFC 8785 canonical JSON bytes of a flat object whose own enumerable members
/// are all strings (the Rust canonicalizer, for cross-checking the TypeScript
/// one). Throws `ERR_INVALID_ARG` for a non-string member value or a string
/// holding a lone surrogate.
#[napi(ts_args_type = "obj: Record<string, string>")]
pub fn canonical_string_object(obj: Object<'_>) -> Result<Buffer, Code> {
    let names = obj
        .get_property_names()
        .map_err(|e| invalid(format!("cannot list the object's members: {}", e.reason)))?;
    let count = names
        .get_array_length()
        .map_err(|e| invalid(e.reason.clone()))?;
    let mut members: Vec<(String, String)> = Vec::with_capacity(count as usize);
    for i in 0..count {
        let key: JsString<'_> = names
            .get_element(i)
            .map_err(|e| invalid(e.reason.clone()))?;
        let value: JsString<'_> = obj
            .get_property(key)
            .map_err(|_| invalid(format!("member #{i} is not a string")))?;
        let key = js_string_utf16(key, "a member name")?;
        let value = js_string_utf16(value, "a member value")?;
        members.push((key, value));
    }
    jcs::canonical_string_object(&members)
        .map(Buffer::from)
        .map_err(|e| invalid(e.to_string()))
}
