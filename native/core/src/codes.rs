//! Application error codes of the CribCall control channel (protocol brief,
//! "Gating and errors"). They travel in band in `ERROR` frames and as the QUIC
//! application error code of CONNECTION_CLOSE.

pub const OK: u64 = 0;
pub const PROTOCOL_ERROR: u64 = 1;
pub const UNAUTHORIZED: u64 = 2;
pub const UNSUPPORTED_MESSAGE: u64 = 3;
pub const CONFLICT: u64 = 4;
pub const INTERNAL_ERROR: u64 = 5;

/// Name of a code as it appears in the `error` field of an `ERROR` message.
pub fn name(code: u64) -> Option<&'static str> {
    Some(match code {
        OK => "OK",
        PROTOCOL_ERROR => "PROTOCOL_ERROR",
        UNAUTHORIZED => "UNAUTHORIZED",
        UNSUPPORTED_MESSAGE => "UNSUPPORTED_MESSAGE",
        CONFLICT => "CONFLICT",
        INTERNAL_ERROR => "INTERNAL_ERROR",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn table() {
        let table = [
            (0, "OK"),
            (1, "PROTOCOL_ERROR"),
            (2, "UNAUTHORIZED"),
            (3, "UNSUPPORTED_MESSAGE"),
            (4, "CONFLICT"),
            (5, "INTERNAL_ERROR"),
        ];
        for (code, n) in table {
            assert_eq!(super::name(code), Some(n));
        }
        assert_eq!(super::name(6), None);
    }
}
