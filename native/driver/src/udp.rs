//! UDP segmentation offload: many equal-size QUIC packets to one address in a
//! single `sendmsg` (GSO, `UDP_SEGMENT`), and many packets of one sender in a
//! single `recvmsg` (GRO, `UDP_GRO`). Linux only; elsewhere, or when the
//! kernel refuses, one datagram per system call as before.
//!
//! A bulk transfer's cost on the IO thread is mostly system calls, one per
//! ~1,350-byte packet in each direction; segmentation offload divides that by
//! up to [`MAX_SEGMENTS`].

use cribcall_core::limits;
use mio::net::UdpSocket;
use std::io;
use std::net::SocketAddr;

/// Packets per GSO batch (the kernel's `UDP_MAX_SEGMENTS` is 64 on older kernels).
pub const MAX_SEGMENTS: usize = 64;
/// Bytes per GSO batch: a batch is one IP datagram before segmentation.
pub const MAX_BATCH_BYTES: usize = 65_000;

/// What the socket can do; decided once at bind time, GSO switched off for
/// good if the kernel ever refuses a segmented send.
#[derive(Debug, Clone, Copy, Default)]
pub struct Offload {
    pub gso: bool,
    pub gro: bool,
}

impl Offload {
    /// Probes GSO and turns GRO on when `wanted` (else both stay off).
    pub fn enable(socket: &UdpSocket, wanted: bool) -> Offload {
        if !wanted {
            return Offload::default();
        }
        sys::enable(socket)
    }
}

/// Sets Don't Fragment on every datagram the socket sends, whatever the
/// kernel believes the path MTU is (`IP_PMTUDISC_PROBE`): a datagram larger
/// than the interface's MTU fails at once (EMSGSIZE) and one larger than the
/// path's is dropped on the way, never fragmented — what path MTU discovery's
/// probes need (RFC 9000 §14.3, RFC 8899). False where it cannot be set (then
/// no probing: packets stay at a size that fits any LAN).
pub fn set_dont_fragment(socket: &UdpSocket, v6: bool) -> bool {
    sys::set_dont_fragment(socket, v6)
}

/// Sends `buf`: one datagram, or (GSO) consecutive `segment`-byte datagrams
/// with a shorter last one. A GSO send the kernel refuses goes out one
/// datagram at a time; see [`after_gso_error`] for when GSO is switched off
/// for good. Returns the system calls made.
pub fn send(
    socket: &UdpSocket,
    off: &mut Offload,
    buf: &[u8],
    segment: usize,
    to: SocketAddr,
) -> io::Result<u64> {
    if buf.len() <= segment || segment == 0 {
        return socket.send_to(buf, to).map(|_| 1);
    }
    if off.gso {
        match sys::send_gso(socket, buf, segment, to) {
            Ok(()) => return Ok(1),
            Err(e) => match after_gso_error(e.raw_os_error(), segment) {
                GsoError::SwitchOff => off.gso = false,
                GsoError::OneByOne => {}
                GsoError::Fail => return Err(e),
            },
        }
    }
    // One by one. A WouldBlock after the first leaves the rest unsent:
    // quiche's loss recovery resends them, as for any datagram the socket drops.
    let mut calls = 0;
    for chunk in buf.chunks(segment) {
        match socket.send_to(chunk, to) {
            Ok(_) => calls += 1,
            // A probe larger than the interface: lost, as it would be on the way.
            Err(e) if too_large(&e) => calls += 1,
            Err(e) if calls == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(calls)
}

/// What a refused GSO send means.
#[derive(Debug, PartialEq, Eq)]
enum GsoError {
    /// The device or kernel cannot segment: one datagram per call from now on.
    SwitchOff,
    /// This batch only: its segments are larger than the interface takes (a
    /// path MTU probe starts a batch of its own size; the kernel refuses
    /// segments above the MTU with EINVAL, a datagram with EMSGSIZE). Sent one
    /// by one, the probe fails alone; batches of the path's size still go.
    OneByOne,
    /// Anything else (WouldBlock, unreachable): the caller's to handle.
    Fail,
}

/// How to go on after a GSO send failed with `code` for `segment`-byte
/// segments. A refusal of segments no larger than any path carries
/// ([`limits::MAX_SEND_UDP_PAYLOAD`]) is the device's; above that it may be
/// this batch's size.
fn after_gso_error(code: Option<i32>, segment: usize) -> GsoError {
    let Some(code) = code else {
        return GsoError::Fail;
    };
    if code == sys::EMSGSIZE {
        GsoError::OneByOne
    } else if !sys::gso_refused(code) {
        GsoError::Fail
    } else if segment > limits::MAX_SEND_UDP_PAYLOAD {
        GsoError::OneByOne
    } else {
        GsoError::SwitchOff
    }
}

/// EMSGSIZE: larger than the interface's MTU (with Don't Fragment set).
fn too_large(e: &io::Error) -> bool {
    e.raw_os_error() == Some(sys::EMSGSIZE)
}

/// Receives into `buf`: `(bytes, sender, segment)`, where `segment` is the
/// size of each coalesced datagram (the last may be shorter), or the whole
/// length when nothing was coalesced.
pub fn recv(
    socket: &UdpSocket,
    off: &Offload,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, usize)> {
    if off.gro {
        return sys::recv_gro(socket, buf);
    }
    let (n, from) = socket.recv_from(buf)?;
    Ok((n, from, n))
}

#[cfg(target_os = "linux")]
mod sys {
    use super::Offload;
    use mio::net::UdpSocket;
    use socket2::{SockAddr, SockAddrStorage};
    use std::io;
    use std::mem::{size_of, zeroed};
    use std::net::SocketAddr;
    use std::os::fd::AsRawFd;

    // From <linux/udp.h>; libc does not export them on every target.
    const UDP_SEGMENT: libc::c_int = 103;
    const UDP_GRO: libc::c_int = 104;
    pub const EMSGSIZE: i32 = libc::EMSGSIZE;

    /// Sets an int socket option; true if the kernel took it.
    fn set_int(socket: &UdpSocket, level: libc::c_int, name: libc::c_int, v: libc::c_int) -> bool {
        // SAFETY: the socket is open; `v` outlives the call and the length is its size.
        let r = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                level,
                name,
                (&v as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        r == 0
    }

    pub fn set_dont_fragment(socket: &UdpSocket, v6: bool) -> bool {
        if v6 {
            // A dual-stack socket sends IPv4 too: set both where the kernel lets us.
            let _ = set_int(
                socket,
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                libc::IP_PMTUDISC_PROBE,
            );
            set_int(
                socket,
                libc::IPPROTO_IPV6,
                libc::IPV6_MTU_DISCOVER,
                libc::IPV6_PMTUDISC_PROBE,
            )
        } else {
            set_int(
                socket,
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                libc::IP_PMTUDISC_PROBE,
            )
        }
    }

    pub fn enable(socket: &UdpSocket) -> Offload {
        let fd = socket.as_raw_fd();
        let mut seg: libc::c_int = 0;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `fd` is an open UDP socket; `seg` and `len` are valid for
        // the duration of the call and `len` holds the size of `seg`.
        let gso = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_UDP,
                UDP_SEGMENT,
                (&mut seg as *mut libc::c_int).cast(),
                &mut len,
            )
        } == 0;
        let gro = set_int(socket, libc::SOL_UDP, UDP_GRO, 1);
        Offload { gso, gro }
    }

    /// EIO: the route's device cannot segment; EINVAL/EOPNOTSUPP: the kernel
    /// does not take this segmentation. GSO is switched off after either.
    pub fn gso_refused(code: i32) -> bool {
        code == libc::EIO || code == libc::EINVAL || code == libc::EOPNOTSUPP
    }

    /// Room for one cmsg carrying a `u16` or an `int`, 8-byte aligned.
    #[repr(C, align(8))]
    struct CmsgSpace([u8; 64]);

    pub fn send_gso(
        socket: &UdpSocket,
        buf: &[u8],
        segment: usize,
        to: SocketAddr,
    ) -> io::Result<()> {
        let addr = SockAddr::from(to);
        let seg =
            u16::try_from(segment).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let mut iov = libc::iovec {
            iov_base: buf.as_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        let mut control = CmsgSpace([0; 64]);
        // SAFETY: an all-zero msghdr is a valid empty header.
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_name = addr.as_ptr() as *mut libc::c_void;
        msg.msg_namelen = addr.len();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as usize;
        msg.msg_controllen = space as _;
        // SAFETY: `msg_control` points at `control` (64 bytes, 8-aligned),
        // which is at least CMSG_SPACE(2) bytes, so the first header and its
        // 2-byte payload lie inside it.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_UDP;
            (*cmsg).cmsg_type = UDP_SEGMENT;
            (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), seg);
        }
        // SAFETY: every pointer in `msg` (address, iovec over `buf`, control)
        // is valid until the call returns; the kernel only reads them.
        let n = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn recv_gro(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, usize)> {
        let mut storage = SockAddrStorage::zeroed();
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut control = CmsgSpace([0; 64]);
        // SAFETY: an all-zero msghdr is a valid empty header.
        let mut msg: libc::msghdr = unsafe { zeroed() };
        // SAFETY: SockAddrStorage is a transparent sockaddr_storage; viewing it
        // as one only gives its address to recvmsg, which writes at most its size.
        msg.msg_name = (unsafe { storage.view_as::<libc::sockaddr_storage>() }
            as *mut libc::sockaddr_storage)
            .cast();
        msg.msg_namelen = storage.size_of();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = control.0.len() as _;
        // SAFETY: every pointer in `msg` is valid and writable for the sizes
        // given until the call returns.
        let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        let mut segment = n;
        // SAFETY: the kernel set msg_controllen to the bytes of control data it
        // wrote inside `control`; CMSG_FIRSTHDR/NXTHDR stay within that length,
        // and a UDP_GRO cmsg carries an int.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_UDP && (*cmsg).cmsg_type == UDP_GRO {
                    let size =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                    if size > 0 {
                        segment = size as usize;
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        // SAFETY: recvmsg wrote a socket address of msg_namelen bytes into `storage`.
        let from = unsafe { SockAddr::new(storage, msg.msg_namelen) }
            .as_socket()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an IP sender"))?;
        Ok((n, from, segment.min(n)))
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use super::Offload;
    use mio::net::UdpSocket;
    use std::io;
    use std::net::SocketAddr;

    /// Never matches an OS error code.
    pub const EMSGSIZE: i32 = i32::MIN;

    pub fn enable(_socket: &UdpSocket) -> Offload {
        Offload::default()
    }

    pub fn set_dont_fragment(_socket: &UdpSocket, _v6: bool) -> bool {
        false
    }

    pub fn gso_refused(_code: i32) -> bool {
        true
    }

    pub fn send_gso(_s: &UdpSocket, _b: &[u8], _seg: usize, _to: SocketAddr) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    pub fn recv_gro(s: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, usize)> {
        let (n, from) = s.recv_from(buf)?;
        Ok((n, from, n))
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_refused_gso_send_switches_gso_off_only_for_sizes_every_path_carries() {
        let big = limits::PMTUD_MAX_UDP_PAYLOAD;
        let small = limits::MAX_SEND_UDP_PAYLOAD;
        let cases = [
            // (errno, segment size, outcome)
            (Some(libc::EIO), small, GsoError::SwitchOff),
            (Some(libc::EINVAL), small, GsoError::SwitchOff),
            (Some(libc::EOPNOTSUPP), 1_200, GsoError::SwitchOff),
            // A probe's batch on a 1,500-byte interface: EINVAL for the segment size.
            (Some(libc::EINVAL), big, GsoError::OneByOne),
            (Some(libc::EIO), 1_472, GsoError::OneByOne),
            (Some(libc::EMSGSIZE), big, GsoError::OneByOne),
            (Some(libc::EMSGSIZE), small, GsoError::OneByOne),
            (Some(libc::EAGAIN), big, GsoError::Fail),
            (Some(libc::ECONNREFUSED), small, GsoError::Fail),
            (None, small, GsoError::Fail),
        ];
        for (code, segment, want) in cases {
            assert_eq!(after_gso_error(code, segment), want, "{code:?} {segment}");
        }
    }
}
