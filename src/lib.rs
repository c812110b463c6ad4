//! Spindle: a PHP application server.
//!
//! The master process runs tokio + hyper ([`http`]) and dispatches PHP
//! requests ([`pool`]) to prefork worker processes ([`worker`]) over a small
//! framed protocol ([`ipc`]). Workers run PHP through Spindle's own SAPI
//! module (`ext/`, wrapped by [`php`]).

pub mod admin;
pub mod config;
pub mod http;
pub mod hub;
pub mod info;
pub mod ipc;
pub mod metrics;
pub mod php;
pub mod pool;
pub mod server;
pub mod worker;

/// `Spindle/<version>`, as SERVER_SOFTWARE and the `Server` header report it.
pub const SERVER_SOFTWARE: &str = concat!("Spindle/", env!("CARGO_PKG_VERSION"));
