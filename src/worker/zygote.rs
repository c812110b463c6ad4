//! The zygote: a single-threaded process that started PHP's module layer
//! (php.ini, extensions, OPcache's shared memory) and forks workers from that
//! state on request, so every worker shares one OPcache, as FPM's children do.
//!
//! The master is multi-threaded once tokio runs, and forking a multi-threaded
//! process is unsafe (only the forking thread survives, locks held by others
//! stay locked forever). So the zygote is a fresh exec of this binary
//! (`spindle __zygote`), single-threaded from its first instruction, and the
//! master only ever asks it for workers over a socket. A reload (SIGHUP)
//! starts a new zygote the same way, so php.ini and OPcache start afresh.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering::Relaxed};
use std::sync::Mutex;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, getppid, ForkResult, Pid, User};

use super::WorkerKind;
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
    /// PHP refused to start: php.ini, an extension, `-d`, `--user`.
    config: bool,
}

impl ZygoteError {
    /// The failure is the configuration's (PHP could not start with it),
    /// not the system's: `spindle` exits with the configuration-error code.
    pub fn is_config(&self) -> bool {
        self.config
    }
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
            config: false,
        }
    }
}

/// The master's handle on the zygote process.
#[derive(Debug)]
pub struct Zygote {
    sock: Mutex<OwnedFd>,
    pid: Pid,
    child: Mutex<Option<Child>>,
    /// Worker mode: how long the worker script took to boot when this
    /// zygote tried it (see `probe_worker_script`).
    boot_time: Option<std::time::Duration>,
}

impl Drop for Zygote {
    fn drop(&mut self) {
        // The socket closes right after this (a field), which makes the
        // zygote exit; its workers, all replaced by then, die with it.
        // Reap it on a plain thread, never blocking an async one.
        let child = self.child.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut child) = child {
            std::thread::spawn(move || {
                let _ = child.wait();
            });
        }
    }
}

/// The descriptor number the zygote finds its control socket on.
const ZYGOTE_FD: i32 = 3;

/// What `spindle __zygote` runs with (passed by [`Zygote::start`]).
#[derive(Debug, Clone, clap::Args)]
pub struct ZygoteArgs {
    /// The master's pid: the zygote exits when it is gone.
    #[arg(long)]
    pub parent: i32,
    #[arg(long)]
    pub php_ini: Option<std::path::PathBuf>,
    #[arg(short = 'd', value_parser = crate::config::parse_define)]
    pub define: Vec<(String, String)>,
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long)]
    pub worker: Option<std::path::PathBuf>,
}

/// The zygote process's main: never returns.
pub fn zygote_process(args: ZygoteArgs) -> ! {
    // SAFETY: Zygote::start placed the control socket on ZYGOTE_FD for us,
    // and nothing else in this fresh process owns that descriptor.
    let sock = unsafe { OwnedFd::from_raw_fd(ZYGOTE_FD) };
    let _ = nix::fcntl::fcntl(
        ZYGOTE_FD,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    // No PR_SET_PDEATHSIG here: it follows the parent *thread*, and a
    // zygote started for a reload comes from one of tokio's blocking
    // threads, which exits after 10 s idle and took the zygote and every
    // worker with it (issue 9, item 1). The zygote ends when its control
    // socket reports the master's end closed instead, which happens however
    // the master goes, and is checked below before PHP starts.
    if getppid() != Pid::from_raw(args.parent) {
        // The master died before we got here.
        // SAFETY: _exit takes no pointers and never returns.
        unsafe { libc::_exit(0) }
    }
    set_process_name("spindle-zygote");
    let php = PhpSettings {
        ini_path: args.php_ini,
        defines: args.define,
        user: args.user,
        worker: args.worker,
    };
    zygote_main(sock, &php)
}

impl Zygote {
    /// Starts a zygote process (a fresh exec of this binary, so it works
    /// from the multi-threaded master too), which starts PHP and reports back.
    pub fn start(php: &PhpSettings) -> Result<Zygote, ZygoteError> {
        let (master_end, zygote_end) = ipc::seqpacket_pair()?;
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.arg("__zygote")
            .arg("--parent")
            .arg(nix::unistd::getpid().as_raw().to_string());
        if let Some(ini) = &php.ini_path {
            cmd.arg("--php-ini").arg(ini);
        }
        for (k, v) in &php.defines {
            cmd.arg("-d").arg(format!("{k}={v}"));
        }
        if let Some(user) = &php.user {
            cmd.arg("--user").arg(user);
        }
        if let Some(worker) = &php.worker {
            cmd.arg("--worker").arg(worker);
        }
        cmd.stdin(Stdio::null());
        let child_fd = zygote_end.as_raw_fd();
        // Runs in the forked child just before exec, where only
        // async-signal-safe calls are allowed (the master has other threads).
        // SAFETY: only dup2/fcntl, which are async-signal-safe; no allocation, no lock.
        unsafe {
            cmd.pre_exec(move || {
                if child_fd == ZYGOTE_FD {
                    if libc::fcntl(ZYGOTE_FD, libc::F_SETFD, 0) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                } else if libc::dup2(child_fd, ZYGOTE_FD) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| ZygoteError {
            detail: format!("cannot start the zygote process: {e}"),
            config: false,
        })?;
        drop(zygote_end);
        let pid = Pid::from_raw(child.id() as i32);
        let mut zygote = Zygote {
            sock: Mutex::new(master_end),
            pid,
            child: Mutex::new(Some(child)),
            boot_time: None,
        };
        let mut buf = vec![0u8; 4096];
        let r = {
            let sock = zygote.sock.lock().unwrap_or_else(|p| p.into_inner());
            ipc::recv_msg(sock.as_raw_fd(), &mut buf, false)?
        };
        let mut d = Decoder::new(&buf[..r.len]);
        match d.u8() {
            Ok(MSG_READY) => {
                zygote.boot_time = d.u64().ok().map(std::time::Duration::from_micros);
                Ok(zygote)
            }
            Ok(MSG_FAILED) => Err(ZygoteError {
                detail: String::from_utf8_lossy(d.str().unwrap_or(b"PHP failed to start"))
                    .into_owned(),
                config: true,
            }),
            _ => Err(ZygoteError {
                detail: "PHP failed to start (the zygote exited; see the messages above)".into(),
                config: true,
            }),
        }
    }

    /// Forks a worker with id `worker_id`; returns the master's end of its
    /// control socket and its pid.
    pub fn spawn_worker(
        &self,
        worker_id: u64,
        kind: WorkerKind,
    ) -> Result<(OwnedFd, Pid), ZygoteError> {
        let (master_end, worker_end) = ipc::seqpacket_pair()?;
        let sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        let mut m = Encoder::with_capacity(16);
        m.u8(MSG_SPAWN)
            .u64(worker_id)
            .u8(u8::from(kind == WorkerKind::Script));
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
                    config: false,
                })?;
                Ok((master_end, Pid::from_raw(pid as i32)))
            }
            Ok(MSG_FAILED) => Err(ZygoteError {
                detail: String::from_utf8_lossy(d.str().unwrap_or(b"fork failed")).into_owned(),
                config: false,
            }),
            _ => Err(ZygoteError {
                detail: "the zygote is gone".into(),
                config: false,
            }),
        }
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Worker mode: how long the worker script took to boot in this
    /// zygote's trial run.
    pub fn boot_time(&self) -> Option<std::time::Duration> {
        self.boot_time
    }

    /// A descriptor that becomes readable once the zygote process has
    /// exited (a pidfd), so the master notices a killed zygote at once
    /// instead of at the next fork.
    pub fn exit_fd(&self) -> io::Result<OwnedFd> {
        // SAFETY: pidfd_open takes a pid and flags, no pointers. The zygote
        // is our child and not reaped before `reap`, so its pid cannot name
        // another process.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, self.pid.as_raw(), 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pidfd_open returned a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }

    /// Collects the exit status of a zygote that has exited, so it is not
    /// left a zombie until its last worker is replaced; logs how it ended.
    pub fn reap(&self) {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(Ok(Some(status))) = child.as_mut().map(|c| c.try_wait()) {
            tracing::warn!(pid = self.pid.as_raw(), "the zygote exited: {status}");
        }
    }
}

/// The name `top`, `ps -o comm` and `pgrep` show (at most 15 bytes).
fn set_process_name(name: &str) {
    if let Ok(c) = std::ffi::CString::new(name) {
        let _ = nix::sys::prctl::set_name(&c);
    }
}

/// The worker's control socket, for [`on_zygote_exit`].
static MASTER_SOCK: AtomicI32 = AtomicI32::new(-1);

/// Makes this worker end when the master is gone, even while PHP is stuck in
/// a loop that never reads the control socket, yet survive the zygote alone
/// being killed (an operator's `kill -9`, the OOM killer): its request then
/// finishes normally and the master starts a new zygote for later forks.
///
/// The kernel sends SIGPWR when the zygote exits (PR_SET_PDEATHSIG; the
/// zygote is single-threaded, so the "parent" it watches is the whole
/// process), and the zygote exits when the master closes its socket. The
/// handler then checks whether the master's end of this worker's socket is
/// closed too. PHP's own signal handling leaves SIGPWR alone.
fn die_with_master(sock: RawFd, zygote: Pid) {
    MASTER_SOCK.store(sock, Relaxed);
    let action = SigAction::new(
        SigHandler::Handler(on_zygote_exit),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handler only calls poll and _exit, both async-signal-safe,
    // and reads an atomic; it saves and restores errno.
    if let Err(e) = unsafe { sigaction(Signal::SIGPWR, &action) } {
        tracing::warn!("sigaction(SIGPWR): {e}");
    }
    if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGPWR) {
        tracing::warn!("prctl(PR_SET_PDEATHSIG): {e}");
    }
    if getppid() != zygote {
        // The zygote died before prctl took effect: check once by hand.
        on_zygote_exit(0);
    }
}

extern "C" fn on_zygote_exit(_: libc::c_int) {
    let fd = MASTER_SOCK.load(Relaxed);
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: errno is thread-local and valid for the life of the thread;
    // poll gets one valid pollfd; _exit never returns. All three are
    // async-signal-safe.
    unsafe {
        let errno = *libc::__errno_location();
        if libc::poll(&mut p, 1, 0) == 1 && p.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            libc::_exit(0);
        }
        *libc::__errno_location() = errno;
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
    if let Some(name) = &php.user {
        if let Err(e) = drop_privileges(name) {
            let mut m = Encoder::default();
            m.u8(MSG_FAILED)
                .str(format!("--user {name}: {e}").as_bytes());
            let _ = ipc::send_msg(fd, &[m.as_slice()], None, false);
            // SAFETY: _exit takes no pointers and never returns.
            unsafe { libc::_exit(1) }
        }
    }
    let mut ready = Encoder::with_capacity(16);
    ready.u8(MSG_READY);
    if let Some(script) = &php.worker {
        match probe_worker_script(script) {
            Ok(took) => {
                ready.u64(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
            }
            Err(why) => {
                let mut m = Encoder::default();
                m.u8(MSG_FAILED).str(why.as_bytes());
                let _ = ipc::send_msg(fd, &[m.as_slice()], None, false);
                // SAFETY: _exit takes no pointers and never returns.
                unsafe { libc::_exit(1) }
            }
        }
    }
    let _ = ipc::send_msg(fd, &[ready.as_slice()], None, false);
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
        let (Ok(MSG_SPAWN), Ok(worker_id), Ok(runs_script), Some(worker_sock)) =
            (d.u8(), d.u64(), d.u8(), r.fd)
        else {
            tracing::error!("zygote: unexpected message");
            continue;
        };
        // SAFETY: the zygote is single-threaded.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                drop(sock);
                die_with_master(worker_sock.as_raw_fd(), me);
                set_process_name(&format!("spindle-w{worker_id}"));
                // Rust's runtime handles SIGSEGV/SIGBUS to report stack
                // overflows, and lets a signal that is not a guard-page fault
                // through once. A worker must die of the first one, whatever
                // sent it, so the master sees the crash.
                for sig in [Signal::SIGSEGV, Signal::SIGBUS] {
                    // SAFETY: restoring the default disposition installs no
                    // handler, so no async-signal-safety obligations arise.
                    let _ = unsafe {
                        nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl)
                    };
                }
                let script = php.worker.as_deref().filter(|_| runs_script == 1);
                super::run(worker_sock, worker_id, script)
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

/// How long the worker script may take to boot at startup or reload.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Reads the probe's report until it closes the pipe; `None` when that takes
/// longer than `limit`.
fn read_report(rx: &mut std::io::PipeReader, limit: std::time::Duration) -> Option<String> {
    use std::io::Read;
    let end = std::time::Instant::now() + limit;
    let mut report = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = end.saturating_duration_since(std::time::Instant::now());
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(rx.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) if left.is_zero() => return None,
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(_) => return None,
        }
        match rx.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&report).into_owned()),
            Ok(n) => report.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// Worker mode: boots the worker script in a child (so the zygote's PHP
/// state stays untouched) and reports whether it reached its request loop,
/// and how long that took.
fn probe_worker_script(script: &std::path::Path) -> Result<std::time::Duration, String> {
    let (mut rx, tx) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the zygote is single-threaded.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(rx);
            let mut tx = tx;
            let report = match super::script::probe(script) {
                Ok(()) => String::new(),
                Err(why) => why,
            };
            let _ = std::io::Write::write_all(&mut tx, report.as_bytes());
            // SAFETY: _exit takes no pointers and never returns; PHP's and
            // Rust's exit handlers must not run in this copy of the zygote.
            unsafe { libc::_exit(0) }
        }
        Ok(ForkResult::Parent { child }) => {
            drop(tx);
            let started = std::time::Instant::now();
            let report = read_report(&mut rx, PROBE_TIMEOUT);
            let status = if report.is_none() {
                // A boot that hangs (a database that never answers) must not
                // hang startup or a reload for ever.
                let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
                let _ = waitpid(child, None);
                return Err(format!(
                    "worker script {} did not reach spindle_handle_request() within {} s",
                    script.display(),
                    PROBE_TIMEOUT.as_secs()
                ));
            } else {
                waitpid(child, None)
            };
            match (report, status) {
                (Some(r), Ok(WaitStatus::Exited(_, 0))) if r.is_empty() => {
                    let took = started.elapsed();
                    tracing::info!(
                        "worker script {} booted in {} ms",
                        script.display(),
                        took.as_millis()
                    );
                    Ok(took)
                }
                (Some(r), Ok(WaitStatus::Exited(_, 0))) => Err(r),
                (_, status) => Err(format!(
                    "worker script {} crashed while booting ({status:?})",
                    script.display()
                )),
            }
        }
        Err(e) => Err(format!("fork: {e}")),
    }
}

/// Becomes `name` (its uid, gid and supplementary groups) for good. Runs in
/// the zygote after PHP's module startup, so workers never hold root, while
/// the master keeps what it needs (its bound socket, the power to kill them).
fn drop_privileges(name: &str) -> Result<(), String> {
    let user = User::from_name(name)
        .map_err(|e| format!("looking up the user: {e}"))?
        .ok_or_else(|| "no such user".to_string())?;
    let cname = std::ffi::CString::new(name).map_err(|_| "bad user name".to_string())?;
    nix::unistd::initgroups(&cname, user.gid).map_err(|e| format!("initgroups: {e}"))?;
    nix::unistd::setgid(user.gid).map_err(|e| format!("setgid: {e}"))?;
    nix::unistd::setuid(user.uid).map_err(|e| format!("setuid: {e}"))?;
    if nix::unistd::setuid(nix::unistd::Uid::from_raw(0)).is_ok() && !user.uid.is_root() {
        return Err("could still regain root".into());
    }
    Ok(())
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
