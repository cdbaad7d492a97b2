//! IO driver of cribcall-quic.
//!
//! An endpoint owns one UDP socket and one OS thread. The thread runs the loop
//! of quiche's own examples: drain the socket, route datagrams by destination
//! connection ID, `recv`, apply commands from the owner, read the control
//! streams, `send` until `Done`, then block in `poll` until a datagram, a
//! command (through a [`mio::Waker`]) or the earliest quiche timeout. An idle
//! endpoint therefore costs no CPU.
//!
//! The owner (the napi layer, or a Rust test) talks to the thread through an
//! [`EndpointHandle`] and receives [`Event`] batches through an [`EventSink`].

pub mod batch;
mod config;
mod conn;
mod error;
mod event;
mod flow;
mod handle;
mod io;
mod ratelimit;
mod retry;
mod sched;
mod shared;
mod stats;
mod udp;

pub use config::EndpointConfig;
pub use error::DriverError;
pub use event::{batch_cost, CloseInfo, ConnectFailure, Event, EventSink};
pub use flow::{Flow, Releaser};
pub use handle::EndpointHandle;
pub(crate) use shared::{lock, Command, ConnShared, Shared};
pub use stats::{Stats, StatsSnapshot};
