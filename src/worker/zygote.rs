//! The zygote: a single-threaded process that started PHP's module layer
//! (php.ini, extensions, OPcache's shared memory) and forks workers from that
//! state on request, so every worker shares one OPcache, as FPM's children do.
//!
//! The master is multi-threaded once tokio runs, and forking a multi-threaded
//! process is unsafe (only the forking thread survives, locks held by others
//! stay locked forever). So the master forks the zygote first, before any
//! thread exists, and afterwards only asks it for workers over a socket.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Mutex;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, getppid, ForkResult, Pid};

use crate::config::PhpSettings;
use crate::ipc::{self, Decoder, Encoder};
use crate::php;

const MSG_SPAWN: u8 = 10;
const MSG_SPAWNED: u8 = 11;
const MSG_FAILED: u8 = 12;
const MSG_READY: u8 = 13;

/// The zygote could not start or answer.
#[derive(Debug)]
pub struct ZygoteError {
    detail: String,
}

impl fmt::Display for ZygoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for ZygoteError {}

impl From<io::Error> for ZygoteError {
    fn from(e: io::Error) -> Self {
        ZygoteError {
            detail: format!("zygote: {e}"),
        }
    }
}

/// The master's handle on the zygote process.
#[derive(Debug)]
pub struct Zygote {
    sock: Mutex<OwnedFd>,
    pid: Pid,
}

impl Zygote {
    /// Forks the zygote, which starts PHP and reports back.
    ///
    /// Must be called while the process is still single-threaded.
    pub fn start(php: &PhpSettings) -> Result<Zygote, ZygoteError> {
        let (master_end, zygote_end) = ipc::seqpacket_pair()?;
        let master_pid = nix::unistd::getpid();
        // SAFETY: the caller guarantees this process has a single thread, so
        // the child starts with a consistent copy of every lock and allocator.
        match unsafe { fork() }
            .map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("fork: {e}")))?
        {
            ForkResult::Child => {
                drop(master_end);
                die_with_parent(master_pid);
                zygote_main(zygote_end, php)
            }
            ForkResult::Parent { child } => {
                drop(zygote_end);
                let mut buf = vec![0u8; 4096];
                let r = ipc::recv_msg(master_end.as_raw_fd(), &mut buf, false)?;
                let mut d = Decoder::new(&buf[..r.len]);
                match d.u8() {
                    Ok(MSG_READY) => Ok(Zygote {
                        sock: Mutex::new(master_end),
                        pid: child,
                    }),
                    Ok(MSG_FAILED) => Err(ZygoteError {
                        detail: String::from_utf8_lossy(d.str().unwrap_or(b"PHP failed to start"))
                            .into_owned(),
                    }),
                    _ => Err(ZygoteError {
                        detail: "PHP failed to start (the zygote exited; see the messages above)"
                            .into(),
                    }),
                }
            }
        }
    }

    /// Forks a worker with id `worker_id`; returns the master's end of its
    /// control socket and its pid.
    pub fn spawn_worker(&self, worker_id: u64) -> Result<(OwnedFd, Pid), ZygoteError> {
        let (master_end, worker_end) = ipc::seqpacket_pair()?;
        let sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        let mut m = Encoder::with_capacity(16);
        m.u8(MSG_SPAWN).u64(worker_id);
        ipc::send_msg(
            sock.as_raw_fd(),
            &[m.as_slice()],
            Some(worker_end.as_raw_fd()),
            false,
        )?;
        drop(worker_end);
        let mut buf = [0u8; 512];
        let r = ipc::recv_msg(sock.as_raw_fd(), &mut buf, false)?;
        let mut d = Decoder::new(&buf[..r.len]);
        match d.u8() {
            Ok(MSG_SPAWNED) => {
                let pid = d.u32().map_err(|_| ZygoteError {
                    detail: "zygote: bad reply".into(),
                })?;
                Ok((master_end, Pid::from_raw(pid as i32)))
            }
            Ok(MSG_FAILED) => Err(ZygoteError {
                detail: String::from_utf8_lossy(d.str().unwrap_or(b"fork failed")).into_owned(),
            }),
            _ => Err(ZygoteError {
                detail: "the zygote is gone".into(),
            }),
        }
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }
}

/// Asks the kernel to SIGKILL this process when its parent dies, so no
/// worker or zygote outlives a crashed master.
fn die_with_parent(parent: Pid) {
    if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL) {
        tracing::warn!("prctl(PR_SET_PDEATHSIG): {e}");
    }
    if getppid() != parent {
        // The parent died before prctl took effect.
        // SAFETY: _exit takes no pointers and never returns.
        unsafe { libc::_exit(0) }
    }
}

fn zygote_main(sock: OwnedFd, php: &PhpSettings) -> ! {
    let fd = sock.as_raw_fd();
    if let Err(e) = php::startup(php.ini_path.as_deref(), &php.defines) {
        let mut m = Encoder::default();
        m.u8(MSG_FAILED).str(e.to_string().as_bytes());
        let _ = ipc::send_msg(fd, &[m.as_slice()], None, false);
        // SAFETY: _exit takes no pointers and never returns.
        unsafe { libc::_exit(1) }
    }
    let _ = ipc::send_msg(fd, &[&[MSG_READY]], None, false);
    let me = nix::unistd::getpid();
    let mut buf = [0u8; 512];
    loop {
        reap_workers();
        let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(250u16)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                tracing::error!("zygote: poll: {e}");
                // SAFETY: as above.
                unsafe { libc::_exit(1) }
            }
        }
        let r = match ipc::recv_msg(fd, &mut buf, false) {
            Ok(r) if r.len > 0 => r,
            // The master closed its end: shut down with it.
            Ok(_) => {
                // SAFETY: as above.
                unsafe { libc::_exit(0) }
            }
            Err(e) => {
                tracing::error!("zygote: recvmsg: {e}");
                // SAFETY: as above.
                unsafe { libc::_exit(1) }
            }
        };
        let mut d = Decoder::new(&buf[..r.len]);
        let (Ok(MSG_SPAWN), Ok(worker_id), Some(worker_sock)) = (d.u8(), d.u64(), r.fd) else {
            tracing::error!("zygote: unexpected message");
            continue;
        };
        // SAFETY: the zygote is single-threaded.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                drop(sock);
                die_with_parent(me);
                super::run(worker_sock, worker_id)
            }
            Ok(ForkResult::Parent { child }) => {
                drop(worker_sock);
                let mut m = Encoder::with_capacity(8);
                m.u8(MSG_SPAWNED).u32(child.as_raw() as u32);
                let _ = ipc::send_msg(fd, &[m.as_slice()], None, false);
            }
            Err(e) => {
                let mut m = Encoder::default();
                m.u8(MSG_FAILED).str(format!("fork: {e}").as_bytes());
                let _ = ipc::send_msg(fd, &[m.as_slice()], None, false);
            }
        }
    }
}

/// Collects exited workers, logging the ones that did not exit cleanly.
fn reap_workers() {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => {
                if code != 0 {
                    tracing::warn!("worker process {pid} exited with status {code}");
                }
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                tracing::warn!("worker process {pid} was killed by {sig}");
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
