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

/// Receives up to `bufs.len()` messages in one `recvmmsg` call without
/// waiting; their lengths go to `lens`. Returns how many arrived. A first
/// message of length 0 means the peer closed the socket. Messages carrying
/// descriptors are not expected here (the worker never sends any).
///
/// One syscall for a burst of small flushes instead of one per flush: a
/// SOCK_SEQPACKET reader cannot otherwise take many messages at once the way
/// a stream reader takes many bytes.
pub fn recv_many(sock: RawFd, bufs: &mut [Vec<u8>], lens: &mut [usize]) -> io::Result<usize> {
    let n = bufs.len().min(lens.len());
    let mut iovs: Vec<libc::iovec> = bufs[..n]
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    let mut hdrs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            // SAFETY: mmsghdr is a plain C struct for which all-zero bytes
            // are a valid (empty) value.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    loop {
        // No control buffers are given: the kernel writes only into `bufs`
        // and the headers.
        // SAFETY: `hdrs` holds `n` headers whose iovecs point into `bufs`, all alive and exclusively borrowed.
        let r = unsafe {
            libc::recvmmsg(
                sock,
                hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let got = r as usize;
        for (i, h) in hdrs[..got].iter().enumerate() {
            if h.msg_hdr.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "IPC message larger than the receive buffer",
                ));
            }
            lens[i] = h.msg_len as usize;
        }
        if got == 0 {
            lens[0] = 0;
            return Ok(1);
        }
        return Ok(got);
    }
}
