//! Why a client connection did not come up: the classification of a failed
//! handshake into the stable code the owner sees.
//!
//! | what happened (first that applies)                      | code                     |
//! |---------------------------------------------------------|--------------------------|
//! | the server's certificate is not the pinned one          | `ERR_PIN_MISMATCH`       |
//! | the pin check failed otherwise                          | `ERR_HANDSHAKE_FAILED`   |
//! | we closed it (handshake timeout, endpoint closing, …)   | our error code, else `ERR_CONNECTION_CLOSED` |
//! | a stateless reset from the server                       | `ERR_CONNECTION_RESET`   |
//! | the server refused it: CONNECTION_REFUSED (busy)        | `ERR_CONNECTION_REFUSED` |
//! | the server closed it: application code UNAUTHORIZED     | `ERR_PEER_REJECTED`      |
//! | the server closed it: any other application code        | `ERR_HANDSHAKE_FAILED`   |
//! | the server sent a TLS alert refusing our certificate    | `ERR_PEER_REJECTED`      |
//! | the server sent any other TLS alert or transport error  | `ERR_HANDSHAKE_FAILED`   |
//! | quiche failed it locally                                | `ERR_HANDSHAKE_FAILED`   |
//! | nothing heard (idle timeout)                            | `ERR_HANDSHAKE_TIMEOUT`  |
//! | anything else                                           | `ERR_HANDSHAKE_FAILED`   |

use super::{Conn, CONNECTION_REFUSED};
use crate::ConnectFailure;
use cribcall_core::codes;
use cribcall_core::identity::to_hex;
use cribcall_core::tls::PinFailure;

impl Conn {
    /// Why a client connection failed before it was reported as connected.
    pub fn connect_failure(&self) -> ConnectFailure {
        if let Some(failure) = self.pin_failure() {
            return failure;
        }
        if let Some((_, reason, code)) = &self.local_close {
            return failure(code.unwrap_or("ERR_CONNECTION_CLOSED"), reason.clone());
        }
        if self.reset {
            return failure(
                "ERR_CONNECTION_RESET",
                "stateless reset: the server no longer has this connection".into(),
            );
        }
        if let Some(e) = self.q.peer_error() {
            let (code, message) = peer_close(e);
            return failure(code, message);
        }
        if let Some(e) = self.q.local_error() {
            return failure(
                "ERR_HANDSHAKE_FAILED",
                format!(
                    "handshake failed locally (error 0x{:x}) {}",
                    e.error_code,
                    String::from_utf8_lossy(&e.reason)
                ),
            );
        }
        if self.q.is_timed_out() {
            return failure("ERR_HANDSHAKE_TIMEOUT", "no answer from the server".into());
        }
        failure(
            "ERR_HANDSHAKE_FAILED",
            "the connection closed before the handshake completed".into(),
        )
    }

    /// The failure our certificate verifier recorded for the pinned server
    /// certificate, if any: a mismatch names both fingerprints.
    fn pin_failure(&self) -> Option<ConnectFailure> {
        let recorded = self
            .pin_record
            .as_ref()?
            .lock()
            .ok()
            .and_then(|g| g.clone())?;
        Some(match recorded {
            PinFailure::Mismatch { expected, actual } => ConnectFailure {
                code: "ERR_PIN_MISMATCH",
                message: recorded.describe(),
                expected: Some(to_hex(&expected)),
                actual: Some(to_hex(&actual)),
            },
            other => failure("ERR_HANDSHAKE_FAILED", other.describe()),
        })
    }
}

/// A failure without fingerprints.
fn failure(code: &'static str, message: String) -> ConnectFailure {
    ConnectFailure {
        code,
        message,
        expected: None,
        actual: None,
    }
}

/// The code and message for a handshake the server closed: a refusal
/// (CONNECTION_REFUSED: busy), an application close (only UNAUTHORIZED
/// rejects this client), a TLS alert (0x100 + alert) or another transport error.
fn peer_close(e: &quiche::ConnectionError) -> (&'static str, String) {
    let reason = String::from_utf8_lossy(&e.reason).into_owned();
    if !e.is_app && e.error_code == CONNECTION_REFUSED {
        (
            "ERR_CONNECTION_REFUSED",
            format!("the server refused the connection (busy): {reason}"),
        )
    } else if e.is_app {
        (
            // Only UNAUTHORIZED is a refusal of this client; any other
            // code (busy, internal error) is worth retrying.
            if e.error_code == codes::UNAUTHORIZED {
                "ERR_PEER_REJECTED"
            } else {
                "ERR_HANDSHAKE_FAILED"
            },
            format!(
                "the server closed the connection during the handshake (code {}): {reason}",
                e.error_code
            ),
        )
    } else if (0x100..0x200).contains(&e.error_code) {
        tls_alert(e.error_code - 0x100)
    } else {
        (
            "ERR_HANDSHAKE_FAILED",
            format!(
                "the server closed the handshake with transport error 0x{:x} {reason}",
                e.error_code
            ),
        )
    }
}

/// The code and message for a TLS alert from the server: the alerts about
/// our certificate (bad, unsupported, revoked, expired, unknown, unknown CA,
/// access denied, required) reject this client; any other aborts the handshake.
fn tls_alert(alert: u64) -> (&'static str, String) {
    let refused = matches!(alert, 42..=46 | 48 | 49 | 116);
    (
        if refused {
            "ERR_PEER_REJECTED"
        } else {
            "ERR_HANDSHAKE_FAILED"
        },
        format!(
            "the server {} our certificate (TLS alert {alert}{})",
            if refused {
                "refused"
            } else {
                "aborted the handshake with"
            },
            alert_name(alert)
                .map(|n| format!(" {n}"))
                .unwrap_or_default()
        ),
    )
}

/// The name of a TLS alert (RFC 8446 §6), for the ones a handshake may end with.
fn alert_name(alert: u64) -> Option<&'static str> {
    Some(match alert {
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        48 => "unknown_ca",
        49 => "access_denied",
        80 => "internal_error",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => return None,
    })
}
