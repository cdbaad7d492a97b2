//! Sans-IO core of cribcall-quic: pure functions and state machines with no
//! sockets and no threads, unit-tested in isolation.
//!
//! - [`framing`]: the control stream's length-prefixed frames.
//! - [`identity`]: device certificates and fingerprints.
//! - [`tls`]: the TLS policy (pinning, client admission) decided inside the handshake.
//! - [`limits`]: the numbers every buffer and timer is bounded by.
//! - [`codes`]: application error codes shared with the protocol.
//! - [`reset`]: stateless reset tokens and sizes.
//! - [`qr`]: the QR pairing secret and proof (SPEC.md §7.1).

pub mod codes;
pub mod cpace;
pub mod ct;
pub mod framing;
pub mod identity;
pub mod jcs;
pub mod limits;
pub mod qr;
pub mod reset;
pub mod tls;
