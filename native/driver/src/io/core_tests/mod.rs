//! The connection core without sockets, threads or sleeps: a monitor's and a
//! listener's quiche connections, built with our TLS contexts and quiche
//! configuration, exchange datagrams in memory, and our deadline policy
//! (`on_deadlines`) is driven with a fake clock.
//!
//! `pair` is the harness; the tests are grouped by what they check: the
//! handshake and its failures, the deadlines, close ordering, NAT rebinding.
//! quiche's own timers (the idle timeout, loss recovery) read the real
//! clock, so the idle timeout is tested over loopback (`tests/`), not here.

mod close;
mod deadlines;
mod handshake;
mod pair;
mod pmtud;
mod rebinding;
