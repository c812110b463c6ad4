//! The master <-> worker protocol.
//!
//! One `SOCK_SEQPACKET` socket pair per worker: the kernel keeps message
//! boundaries, so a message is one `sendmsg` and one `recvmsg`, and a request
//! body's memfd rides along as `SCM_RIGHTS`. Messages are little-endian,
//! length-prefixed fields ([`Encoder`]/[`Decoder`]); strings carry a trailing
//! NUL so the worker can hand pointers into its receive buffer straight to
//! PHP, which wants C strings.
//!
//! Master -> worker: [`MSG_REQUEST`], [`MSG_ABORT`], [`MSG_PUBLISHED`].
//! Worker -> master: [`MSG_OUTPUT`], [`MSG_HEARTBEAT`], [`MSG_PUBLISH`].

mod channel;
mod codec;
mod socket;

pub use channel::{readable, Channel};
pub use codec::{DecodeError, Decoder, Encoder};
pub use socket::{recv_many, recv_msg, send_msg, seqpacket_pair, set_buffer_sizes, Received};

/// A request for PHP. Fields, in order: `u8` flags ([`REQ_BODY_FD`],
/// [`REQ_BODY_INLINE`]), `u64` request id, `f64` request time, `i64` content
/// length (-1: none), `u32` heartbeat limit in seconds (0: timeouts off),
/// strings method, request URI, query string, script filename, optional
/// content type, cookie and authorization, `u32` count of server variables
/// and that many (key, value) string pairs, then the inline body to the end.
pub const MSG_REQUEST: u8 = 1;
/// The client went away: `u64` request id.
pub const MSG_ABORT: u8 = 2;
/// Response bytes: `u8` flags ([`OUT_HEAD`], [`OUT_END`], [`OUT_DONE`],
/// [`OUT_HANDOFF`]), `u64` request id; with `OUT_HEAD` a `u16` status, `u8`
/// head flags ([`HEAD_DEFAULT_CONTENT_TYPE`]), `u32` count and that many
/// header-line strings; with `OUT_HANDOFF` the hand-off (`u32` count and
/// that many topic selectors, `u32` count and that many private selectors,
/// optional string last event id, `u8` 1 when a `u64` retry follows, else
/// 0); then body bytes to the end of the message.
pub const MSG_OUTPUT: u8 = 3;
/// `tokio_request_heartbeat()`: `u64` request id, `u32` seconds.
pub const MSG_HEARTBEAT: u8 = 4;
/// `spindle_publish()`: `u64` request id, `u8` flags ([`PUB_PRIVATE`],
/// [`PUB_RETRY`]), `u64` retry, `u32` count and that many topic strings,
/// optional strings id and type, then the data to the end. The worker
/// waits for the [`MSG_PUBLISHED`] answer.
pub const MSG_PUBLISH: u8 = 5;
/// The answer to [`MSG_PUBLISH`]: `u64` request id, `u8` 1 when published
/// (the event's id follows to the end) or 0 (the reason follows).
pub const MSG_PUBLISHED: u8 = 6;

/// The request body arrives as a memfd passed with the message.
pub const REQ_BODY_FD: u8 = 1;
/// The request body is the tail of the message.
pub const REQ_BODY_INLINE: u8 = 2;
/// The hub is on (`--hub`): `spindle_publish()` and `spindle_subscribe()`
/// may be used. Set by the pool on the way to the worker, so a worker can
/// refuse them at call time without asking the master.
pub const REQ_HUB: u8 = 4;

/// This message carries the status and headers.
pub const OUT_HEAD: u8 = 1;
/// The response is complete for the client.
pub const OUT_END: u8 = 2;
/// The script has finished: the worker is idle again.
pub const OUT_DONE: u8 = 4;
/// The script called `spindle_subscribe()`: the response becomes a hub
/// stream held by the master. Only with [`OUT_DONE`].
pub const OUT_HANDOFF: u8 = 8;

/// The update is private.
pub const PUB_PRIVATE: u8 = 1;
/// The update carries a `retry`.
pub const PUB_RETRY: u8 = 2;

/// The script set no Content-Type; PHP's default is in the header list.
pub const HEAD_DEFAULT_CONTENT_TYPE: u8 = 1;

/// Largest message either side sends. Output is cut into chunks well below
/// it; request headers are bounded by the HTTP layer's header limit.
pub const MAX_MESSAGE: usize = 512 * 1024;
/// Output chunk size: a worker sends what it has once this much is buffered.
pub const OUTPUT_CHUNK: usize = 64 * 1024;
/// Request bodies up to this size travel inside the request message; larger
/// ones are spooled to a memfd.
pub const INLINE_BODY_MAX: usize = 64 * 1024;
