//! Errors of the handle's synchronous calls and their stable codes.

use cribcall_core::framing::FrameError;
use cribcall_core::identity::IdentityError;
use std::fmt;

/// Errors of the handle's synchronous calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverError {
    InvalidArgument(String),
    Bind(String),
    Tls(String),
    Frame(FrameError),
    NotConnected(u32),
    SendBufferFull { queued: usize, max: usize },
    Closed,
    TooManyConnections(usize),
}

impl DriverError {
    /// The stable error code the JS layer sees.
    pub fn code(&self) -> &'static str {
        match self {
            DriverError::InvalidArgument(_) => "ERR_INVALID_ARG",
            DriverError::Bind(_) => "ERR_BIND",
            DriverError::Tls(_) => "ERR_TLS",
            DriverError::Frame(FrameError::Empty) => "ERR_FRAME_EMPTY",
            DriverError::Frame(FrameError::TooLarge { .. }) => "ERR_FRAME_TOO_LARGE",
            DriverError::NotConnected(_) => "ERR_NOT_CONNECTED",
            DriverError::SendBufferFull { .. } => "ERR_SEND_BUFFER_FULL",
            DriverError::Closed => "ERR_ENDPOINT_CLOSED",
            DriverError::TooManyConnections(_) => "ERR_TOO_MANY_CONNECTIONS",
        }
    }
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriverError::InvalidArgument(m) | DriverError::Bind(m) | DriverError::Tls(m) => {
                write!(f, "{m}")
            }
            DriverError::Frame(e) => write!(f, "{e}"),
            DriverError::NotConnected(id) => write!(f, "connection {id} is not open"),
            DriverError::SendBufferFull { queued, max } => write!(
                f,
                "send buffer full: {queued} bytes queued, limit {max} (the peer is not reading)"
            ),
            DriverError::Closed => write!(f, "the endpoint is closed"),
            DriverError::TooManyConnections(n) => {
                write!(
                    f,
                    "the endpoint already has {n} connections (maxConnections)"
                )
            }
        }
    }
}

impl std::error::Error for DriverError {}

impl From<IdentityError> for DriverError {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::InvalidArgument(m) => DriverError::InvalidArgument(m),
            IdentityError::Crypto(m) => DriverError::Tls(m),
        }
    }
}
