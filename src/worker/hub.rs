//! The hub seen from a worker: `spindle_publish()` sends a `MSG_PUBLISH`
//! and blocks for the `MSG_PUBLISHED` answer; `spindle_subscribe()` records
//! a hand-off that rides in the request's final output message (issue 11).

use super::{exit, Exchange};
use crate::ipc::{self, Decoder, Encoder};
use crate::php;

/// Why `spindle_publish()` and `spindle_subscribe()` fail without `--hub`.
const HUB_OFF: &str = "the hub is off: start spindle with --hub to use spindle_publish(), mercure_publish() and spindle_subscribe()";
/// The hand-off rides in the final output message, beside up to one output
/// chunk: its selectors are bounded so the message always fits.
const HANDOFF_MAX: usize = 64 * 1024;

impl Exchange<'_> {
    /// Puts the encoded hand-off between the head (if it is still here) and
    /// the body bytes, where the master reads it. Only hand-off requests pay
    /// for the copy.
    pub(super) fn insert_handoff(&mut self, h: &[u8]) {
        let body = self.out.as_slice()[self.body_at..].to_vec();
        self.out.truncate(self.body_at);
        self.out.raw(h);
        self.out.raw(&body);
        self.body_at += h.len();
    }

    /// Blocks until the master answers a `MSG_PUBLISH`. An abort for this
    /// request may arrive first on the same socket: it is noted, not lost.
    fn wait_published(&mut self, cap: usize) -> Result<String, String> {
        let mut buf = vec![0u8; cap];
        loop {
            let r = match ipc::recv_msg(self.sock, &mut buf, false) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(
                        worker = self.worker_id,
                        "recvmsg on the control socket: {e}"
                    );
                    exit(1);
                }
            };
            if r.len == 0 {
                exit(0);
            }
            let mut d = Decoder::new(&buf[..r.len]);
            match d.u8() {
                Ok(ipc::MSG_ABORT) => {
                    if d.u64() == Ok(self.id) {
                        self.aborted = true;
                    }
                }
                Ok(ipc::MSG_PUBLISHED) => {
                    let (Ok(id), Ok(ok)) = (d.u64(), d.u8()) else {
                        tracing::error!(worker = self.worker_id, "bad MSG_PUBLISHED");
                        exit(1);
                    };
                    if id != self.id {
                        continue;
                    }
                    let text = String::from_utf8_lossy(d.rest()).into_owned();
                    return if ok == 1 { Ok(text) } else { Err(text) };
                }
                other => {
                    tracing::warn!(
                        worker = self.worker_id,
                        "unexpected message {other:?} while waiting for a publish"
                    );
                }
            }
        }
    }

    /// `spindle_publish()`: sends the update, waits for the master's answer.
    pub(super) fn publish_update(&mut self, u: &php::Update<'_>) -> Result<String, String> {
        if !self.hub {
            return Err(HUB_OFF.into());
        }
        let mut flags = 0;
        if u.private {
            flags |= ipc::PUB_PRIVATE;
        }
        let retry = match u.retry {
            Some(r) if r < 0 => return Err("retry must not be negative".into()),
            Some(r) => {
                flags |= ipc::PUB_RETRY;
                r as u64
            }
            None => 0,
        };
        for t in &u.topics {
            utf8(t, "a topic")?;
        }
        if let Some(id) = u.id {
            utf8(id, "the id")?;
        }
        if let Some(t) = u.event_type {
            utf8(t, "the type")?;
        }
        let mut m = Encoder::with_capacity(64 + u.data.len());
        m.u8(ipc::MSG_PUBLISH)
            .u64(self.id)
            .u8(flags)
            .u64(retry)
            .u32(u.topics.len() as u32);
        for t in &u.topics {
            m.str(t);
        }
        m.opt_str(u.id).opt_str(u.event_type).raw(u.data);
        if m.len() > ipc::MAX_MESSAGE {
            return Err(format!(
                "the update is too large (at most {} KiB)",
                ipc::MAX_MESSAGE / 1024 - 1
            ));
        }
        if let Err(e) = ipc::send_msg(self.sock, &[m.as_slice()], None, false) {
            tracing::error!(worker = self.worker_id, "sendmsg to the master: {e}");
            exit(1);
        }
        // Room for the answer: the id (the caller's, or a generated uuid)
        // or a short reason.
        self.wait_published(1024 + u.id.map_or(0, |i| i.len()))
    }

    /// `spindle_subscribe()`: checks the hand-off and keeps it, encoded,
    /// for the final output message.
    pub(super) fn record_handoff(&mut self, h: &php::Handoff<'_>) -> Result<(), String> {
        if !self.hub {
            return Err(HUB_OFF.into());
        }
        if self.ended {
            return Err("the response has ended already (tokio_finish_request())".into());
        }
        if h.topics.is_empty() {
            return Err("at least one topic selector is needed".into());
        }
        for sel in h.topics.iter().chain(&h.private) {
            let sel = utf8(sel, "a topic selector")?;
            crate::hub::topics::Selector::parse(sel)
                .map_err(|e| format!("invalid topic selector: {e}"))?;
        }
        let mut e = Encoder::with_capacity(256);
        e.u32(h.topics.len() as u32);
        for t in &h.topics {
            e.str(t);
        }
        e.u32(h.private.len() as u32);
        for t in &h.private {
            e.str(t);
        }
        e.opt_str(h.last_event_id);
        match h.retry {
            Some(r) if r < 0 => return Err("retry must not be negative".into()),
            Some(r) => e.u8(1).u64(r as u64),
            None => e.u8(0),
        };
        if e.len() > HANDOFF_MAX {
            return Err(format!(
                "the topic selectors are too long (at most {} KiB in all)",
                HANDOFF_MAX / 1024
            ));
        }
        // The last call wins: a script may change its mind.
        self.handoff = Some(e.into_vec());
        Ok(())
    }
}

/// `v` as text, or an error naming `what`.
fn utf8<'a>(v: &'a [u8], what: &str) -> Result<&'a str, String> {
    std::str::from_utf8(v).map_err(|_| format!("{what} must be valid UTF-8"))
}
