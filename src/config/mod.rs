//! Command line and settings.
//!
//! Two phases, as ripgrep does it: [`ServeArgs`] is what the user wrote
//! (clap parses and type-checks it), [`Settings`] is what the server runs with
//! (canonical paths, resolved defaults), produced by [`ServeArgs::resolve`],
//! which checks everything that can be checked before anything starts.
//!
//! - [`args`]: the flags (clap), and the types and parsers of their values;
//! - [`file`]: `--config FILE`, merged in as flags;
//! - [`settings`]: [`Settings`] and the checks that produce them;
//! - [`hub_tls`]: the same for the hub, TLS and ACME options.

mod args;
mod file;
mod hub_tls;
mod settings;

use std::fmt;

use clap::{Parser, Subcommand};

pub use args::{parse_define, parse_size, Listen, PhpInfoArgs, ServeArgs, Symlinks, TrustedProxy};
pub use file::parse_args;
pub use settings::{resolve_php_ini, FrontController, PhpSettings, Settings, WorkerRoute};

/// Debian's php.ini for the embed SAPI, read by default when it exists.
pub const DEFAULT_PHP_INI: &str = "/etc/php/8.2/embed/php.ini";

#[derive(Debug, Parser)]
#[command(
    name = "spindle",
    version,
    about = "A PHP application server with streaming flush()"
)]
pub struct Cli {
    /// Log format: text or json.
    #[arg(long, global = true, value_name = "FORMAT", env = "SPINDLE_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a directory of PHP files and static assets over HTTP/1.1.
    Serve(Box<ServeArgs>),
    /// Print the effective PHP configuration (phpinfo() as text, like `php -i`)
    /// for the php.ini and -d entries `serve` would use.
    PhpInfo(PhpInfoArgs),
    /// Internal: the process that starts PHP and forks workers.
    #[command(name = "__zygote", hide = true)]
    Zygote(crate::worker::ZygoteArgs),
}

/// A setting that cannot be used; names the option and why.
#[derive(Debug)]
pub struct ConfigError {
    option: &'static str,
    detail: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.option, self.detail)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// A configuration error found outside this module (`php-info`).
    pub fn new(option: &'static str, detail: impl Into<String>) -> ConfigError {
        bad(option, detail)
    }
}

fn bad(option: &'static str, detail: impl Into<String>) -> ConfigError {
    ConfigError {
        option,
        detail: detail.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("12X").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("99999999999G").is_err());
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            "127.0.0.1:80".parse::<Listen>(),
            Ok(Listen::Tcp("127.0.0.1:80".parse().unwrap()))
        );
        assert_eq!(
            "[::1]:8080".parse::<Listen>(),
            Ok(Listen::Tcp("[::1]:8080".parse().unwrap()))
        );
        assert_eq!(
            "unix:/run/s.sock".parse::<Listen>(),
            Ok(Listen::Unix("/run/s.sock".into()))
        );
        assert!("localhost".parse::<Listen>().is_err());
        assert!("unix:".parse::<Listen>().is_err());
    }

    #[test]
    fn defines() {
        assert_eq!(parse_define("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_define("memory_limit").is_err());
        assert_eq!(parse_define("a="), Ok(("a".into(), "".into())));
        assert!(parse_define("=x").is_err());
    }
}
