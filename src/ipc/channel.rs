//! The master's asynchronous end of a worker's control socket.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

/// A control socket registered with tokio's reactor.
#[derive(Debug)]
pub struct Channel {
    fd: AsyncFd<OwnedFd>,
}

impl Channel {
    /// Registers `sock`. Must be called inside the tokio runtime.
    pub fn new(sock: OwnedFd) -> io::Result<Channel> {
        // SAFETY: the OwnedFd is a valid open descriptor, owned by the AsyncFd
        // from here on, and OwnedFd::as_raw_fd always returns that same
        // descriptor until it is dropped together with the AsyncFd.
        let fd = unsafe { AsyncFd::register(sock) }.map_err(io::Error::from)?;
        Ok(Channel { fd })
    }

    /// Sends one message, waiting for buffer space.
    pub async fn send(&self, msg: &[u8], fd: Option<&OwnedFd>) -> io::Result<()> {
        loop {
            let mut guard = self.fd.writable().await?;
            match guard
                .try_io(|s| super::send_msg(s.as_raw_fd(), &[msg], fd.map(|f| f.as_raw_fd()), true))
            {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Receives what messages are queued (at least one, at most
    /// `bufs.len()`), lengths into `lens`; returns how many. A first length
    /// of 0 means the peer is gone. Cancel-safe, like [`Channel::recv`].
    pub async fn recv_many(&self, bufs: &mut [Vec<u8>], lens: &mut [usize]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|s| super::recv_many(s.as_raw_fd(), bufs, lens)) {
                Ok(Ok(n)) => {
                    // Fewer messages than asked for: the queue is empty now.
                    // Forget the readiness, so the next call waits for the
                    // reactor instead of trying a recvmmsg that can only
                    // fail with EAGAIN (one wasted syscall per request on
                    // the hot path, and one per idle slot). A message that
                    // arrived meanwhile bumped the readiness tick, which
                    // clear_ready leaves alone. At end of file (a 0 length)
                    // readiness stays, so the next call sees it at once.
                    if n < bufs.len() && n > 0 && lens[0] > 0 {
                        guard.clear_ready();
                    }
                    return Ok(n);
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Receives one message into `buf`; `Ok(0)` when the peer is gone.
    /// Cancel-safe: a message is either received whole or left queued.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|s| super::recv_msg(s.as_raw_fd(), buf, true)) {
                Ok(r) => return r.map(|r| r.len),
                Err(_would_block) => continue,
            }
        }
    }
}

/// Waits until `fd` turns readable (a pidfd: its process exited).
/// Must be called inside the tokio runtime.
pub async fn readable(fd: OwnedFd) -> io::Result<()> {
    // SAFETY: as in Channel::new: the AsyncFd owns the valid descriptor
    // and deregisters it before closing it.
    let fd = unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?;
    fd.readable().await.map(|_| ())
}
