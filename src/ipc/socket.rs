//! Sending and receiving whole messages, with at most one descriptor each.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::cmsg_space;
use nix::sys::socket::{
    self, sockopt, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};

/// A connected `SOCK_SEQPACKET` pair, close-on-exec.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let (a, b) = socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| os_error("socketpair", e))?;
    set_buffer_sizes(a.as_raw_fd())?;
    set_buffer_sizes(b.as_raw_fd())?;
    Ok((a, b))
}

/// Sizes the kernel buffers so that a [`super::MAX_MESSAGE`] fits, and a few
/// output chunks can be in flight before a worker blocks (backpressure).
pub fn set_buffer_sizes(fd: RawFd) -> io::Result<()> {
    // SAFETY: the caller owns `fd` for the duration of this call.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let size = 2 * super::MAX_MESSAGE;
    socket::setsockopt(&fd, sockopt::SndBuf, &size)
        .map_err(|e| os_error("setsockopt(SO_SNDBUF)", e))?;
    socket::setsockopt(&fd, sockopt::RcvBuf, &size)
        .map_err(|e| os_error("setsockopt(SO_RCVBUF)", e))?;
    Ok(())
}

/// Sends one message, with `fd` attached when given. `nonblocking` returns
/// `WouldBlock` instead of waiting for buffer space.
pub fn send_msg(
    sock: RawFd,
    parts: &[&[u8]],
    fd: Option<RawFd>,
    nonblocking: bool,
) -> io::Result<()> {
    let iov: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    let fds;
    let cmsgs: &[ControlMessage<'_>] = match fd {
        Some(fd) => {
            fds = [fd];
            &[ControlMessage::ScmRights(&fds)]
        }
        None => &[],
    };
    let mut flags = MsgFlags::MSG_NOSIGNAL;
    if nonblocking {
        flags |= MsgFlags::MSG_DONTWAIT;
    }
    loop {
        match socket::sendmsg::<()>(sock, &iov, cmsgs, flags, None) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(io::Error::from(e)),
        }
    }
}

/// One received message.
#[derive(Debug)]
pub struct Received {
    /// Bytes in the buffer; 0 means the peer closed the socket.
    pub len: usize,
    /// The descriptor that came with it, if any.
    pub fd: Option<OwnedFd>,
}

/// Receives one message into `buf`. A message larger than `buf` is an error
/// (`InvalidData`), never silently cut.
pub fn recv_msg(sock: RawFd, buf: &mut [u8], nonblocking: bool) -> io::Result<Received> {
    let mut cmsg = cmsg_space!([RawFd; 1]);
    let mut flags = MsgFlags::MSG_CMSG_CLOEXEC;
    if nonblocking {
        flags |= MsgFlags::MSG_DONTWAIT;
    }
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        let msg = match socket::recvmsg::<()>(sock, &mut iov, Some(&mut cmsg), flags) {
            Ok(m) => m,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(io::Error::from(e)),
        };
        let mut fd = None;
        for c in msg.cmsgs().map_err(io::Error::from)? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for raw in fds {
                    // SAFETY: SCM_RIGHTS just installed `raw` in this process's
                    // descriptor table and nothing else refers to it yet; the
                    // OwnedFd becomes its only owner (extra ones are closed).
                    let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                    if fd.is_none() {
                        fd = Some(owned);
                    }
                }
            }
        }
        if msg.flags.contains(MsgFlags::MSG_TRUNC) || msg.flags.contains(MsgFlags::MSG_CTRUNC) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "IPC message larger than the receive buffer",
            ));
        }
        return Ok(Received { len: msg.bytes, fd });
    }
}

fn os_error(call: &str, e: nix::errno::Errno) -> io::Error {
    io::Error::new(io::Error::from(e).kind(), format!("{call}: {e}"))
}
