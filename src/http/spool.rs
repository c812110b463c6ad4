//! Request bodies on their way to PHP: read with a timeout between reads,
//! kept in memory while a shared budget allows, spooled to an anonymous
//! file on disk past it.
//!
//! Issue 9 item 3: every body over 64 KiB used to go to a memfd, so twenty
//! clients sending most of a 50 MB body and stalling pinned 1 GB of shared
//! memory for as long as they liked. Now the bytes that in-flight bodies hold
//! in memory (inline buffers and memfds alike) are bounded in total by
//! `--max-body-memory`, a body larger than [`MEMFD_BODY_MAX`] never uses
//! memory past its first 64 KiB, and a body that stops arriving for
//! `--body-timeout` gets 408.
//!
//! The file handed to the worker is a memfd or an unnamed file in
//! `--body-spool-dir` (`O_TMPFILE`, or created and unlinked at once where the
//! file system lacks it): the worker reads either through the same
//! descriptor with `pread`, and nothing is left on disk whatever happens to
//! either process.

use std::io::{self, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::config::Settings;
use crate::ipc;

/// A body whose length is known (or has grown) past this is spooled to
/// disk rather than to a memfd: a large upload gains nothing from RAM that
/// the page cache would not give it, and it would crowd out many small ones
/// in the shared budget.
pub const MEMFD_BODY_MAX: u64 = 1024 * 1024;

/// Why a body could not be read; each maps to the status to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoolError {
    /// More than `--max-body-size`: 413.
    TooLarge,
    /// Nothing arrived for `--body-timeout`: 408.
    Stalled,
    /// The client sent a malformed body (bad chunked encoding) or went away.
    Malformed,
    /// Creating or writing the spool file failed: 500 (logged).
    Io,
}

impl SpoolError {
    pub fn status(self) -> StatusCode {
        match self {
            SpoolError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            SpoolError::Stalled => StatusCode::REQUEST_TIMEOUT,
            SpoolError::Malformed => StatusCode::BAD_REQUEST,
            SpoolError::Io => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A read body, ready to be placed in the request message.
#[derive(Debug)]
pub enum Spooled {
    /// Small enough to travel inside the request message.
    Inline(Vec<u8>),
    /// A memfd or an unlinked disk file, positioned anywhere (the worker
    /// uses `pread`), and the body's length.
    File(OwnedFd, u64),
}

/// The memory in-flight bodies may hold, shared by every connection.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    used: AtomicU64,
}

impl MemoryBudget {
    pub fn new(limit: u64) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget {
            limit,
            used: AtomicU64::new(0),
        })
    }

    /// Bytes currently held by bodies in memory.
    #[cfg(test)]
    fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn try_take(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, n: u64) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Bytes of the memory budget held by one body; returned on drop. Held by
/// the request until its response ends, because the worker keeps the memfd
/// (and the master the inline copy in the queued message) until then.
#[derive(Debug)]
pub struct MemoryLease {
    budget: Arc<MemoryBudget>,
    bytes: u64,
}

impl MemoryLease {
    fn new(budget: &Arc<MemoryBudget>) -> MemoryLease {
        MemoryLease {
            budget: budget.clone(),
            bytes: 0,
        }
    }

    fn try_grow(&mut self, n: u64) -> bool {
        let ok = self.budget.try_take(n);
        if ok {
            self.bytes += n;
        }
        ok
    }

    fn release(&mut self) {
        self.budget.give_back(std::mem::take(&mut self.bytes));
    }

    /// Whether this lease holds any memory (so is worth keeping around).
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }
}

impl Drop for MemoryLease {
    fn drop(&mut self) {
        self.release();
    }
}

/// How bodies are read: the settings that matter plus the shared budget.
#[derive(Debug)]
pub struct Spooler {
    max_size: u64,
    timeout: Option<Duration>,
    dir: PathBuf,
    budget: Arc<MemoryBudget>,
}

/// Where the bytes read so far are.
enum Store {
    Memory(Vec<u8>),
    Memfd(std::fs::File),
    Disk(std::fs::File),
}

impl Spooler {
    pub fn new(settings: &Settings) -> Spooler {
        Spooler {
            max_size: settings.max_body_size,
            timeout: settings.body_timeout,
            dir: settings.body_spool_dir.clone(),
            budget: MemoryBudget::new(settings.max_body_memory),
        }
    }

    /// Reads the whole body of request `id`. `declared` is its
    /// Content-Length, if any, to choose the store before the first byte.
    pub async fn read(
        &self,
        mut body: Incoming,
        declared: Option<u64>,
        id: u64,
    ) -> Result<(Spooled, MemoryLease), SpoolError> {
        use http_body::Body as _;
        let mut lease = MemoryLease::new(&self.budget);
        if body.is_end_stream() {
            // Most requests: no body, so no timer to arm.
            return Ok((Spooled::Inline(Vec::new()), lease));
        }
        let mut store = Store::Memory(Vec::new());
        let mut total: u64 = 0;
        let inline_max = ipc::INLINE_BODY_MAX as u64;
        if declared.is_some_and(|n| n > MEMFD_BODY_MAX) {
            store = Store::Disk(self.disk_file(id)?);
        }
        while let Some(data) = self.next_chunk(&mut body).await? {
            total += data.len() as u64;
            if total > self.max_size {
                return Err(SpoolError::TooLarge);
            }
            let n = data.len() as u64;
            store = match store {
                Store::Memory(mut buf) if total <= inline_max && lease.try_grow(n) => {
                    buf.extend_from_slice(&data);
                    Store::Memory(buf)
                }
                Store::Memory(buf) if total <= MEMFD_BODY_MAX && lease.try_grow(n) => {
                    let mut f = memfd_file(id)?;
                    write(&mut f, &buf, id)?;
                    write(&mut f, &data, id)?;
                    Store::Memfd(f)
                }
                Store::Memory(buf) => {
                    lease.release();
                    let mut f = self.disk_file(id)?;
                    write(&mut f, &buf, id)?;
                    write(&mut f, &data, id)?;
                    Store::Disk(f)
                }
                Store::Memfd(mut f) if total <= MEMFD_BODY_MAX && lease.try_grow(n) => {
                    write(&mut f, &data, id)?;
                    Store::Memfd(f)
                }
                Store::Memfd(mut mem) => {
                    // Grew past what memory may hold: move what we have to
                    // disk and give the memory back.
                    let mut f = self.disk_file(id)?;
                    mem.seek(SeekFrom::Start(0))
                        .and_then(|_| io::copy(&mut mem, &mut f))
                        .map_err(|e| io_error(id, "copying the body from its memfd to disk", &e))?;
                    drop(mem);
                    lease.release();
                    write(&mut f, &data, id)?;
                    Store::Disk(f)
                }
                Store::Disk(mut f) => {
                    write(&mut f, &data, id)?;
                    Store::Disk(f)
                }
            };
        }
        let spooled = match store {
            Store::Memory(buf) => Spooled::Inline(buf),
            Store::Memfd(f) | Store::Disk(f) => Spooled::File(OwnedFd::from(f), total),
        };
        Ok((spooled, lease))
    }

    /// The next data frame, skipping trailers; `None` at the end.
    async fn next_chunk(&self, body: &mut Incoming) -> Result<Option<Bytes>, SpoolError> {
        loop {
            let frame = match self.timeout {
                None => body.frame().await,
                // nginx's client_body_timeout: the time between two reads,
                // not for the whole body, so a slow but live upload of a
                // large file is not cut.
                Some(t) => tokio::time::timeout(t, body.frame())
                    .await
                    .map_err(|_| SpoolError::Stalled)?,
            };
            match frame {
                None => return Ok(None),
                Some(Err(_)) => return Err(SpoolError::Malformed),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    fn disk_file(&self, id: u64) -> Result<std::fs::File, SpoolError> {
        // tempfile uses O_TMPFILE where the file system has it and falls
        // back to create-then-unlink: either way the file has no name by
        // the time anyone could see it, so a crash leaves nothing behind.
        tempfile::tempfile_in(&self.dir).map_err(|e| {
            io_error(
                id,
                &format!("creating a body spool file in {}", self.dir.display()),
                &e,
            )
        })
    }
}

fn memfd_file(id: u64) -> Result<std::fs::File, SpoolError> {
    memfd::MemfdOptions::default()
        .close_on_exec(true)
        .create(format!("spindle-body-{}-{id}", std::process::id()))
        .map(memfd::Memfd::into_file)
        .map_err(|e| {
            io_error(
                id,
                "memfd_create for the request body",
                &io::Error::other(e),
            )
        })
}

// Plain blocking writes on the runtime thread, as nginx writes its client
// body temp files: they land in the page cache; a tokio::fs hop per frame
// would cost more than it saves.
fn write(f: &mut std::fs::File, data: &[u8], id: u64) -> Result<(), SpoolError> {
    f.write_all(data)
        .map_err(|e| io_error(id, "writing the request body", &e))
}

fn io_error(id: u64, what: &str, e: &io::Error) -> SpoolError {
    tracing::error!(request = id, "{what}: {e}");
    SpoolError::Io
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_shared_and_returned() {
        let budget = MemoryBudget::new(100);
        let mut a = MemoryLease::new(&budget);
        let mut b = MemoryLease::new(&budget);
        assert!(a.try_grow(60));
        assert!(!b.try_grow(50), "60 + 50 is over 100");
        assert!(b.try_grow(40));
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        b.release();
        b.release(); // twice is harmless
        assert_eq!(budget.used(), 0);
    }
}
