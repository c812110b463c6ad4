//! `spindle php-info`: the effective PHP configuration, as `php -i` shows
//! it, for the same php.ini, conf.d and `-d` entries `spindle serve` uses.

use std::io::Write;

use crate::config::{resolve_php_ini, PhpInfoArgs};
use crate::php;

struct Stdout;

impl php::Handler for Stdout {
    fn write(&mut self, data: &[u8]) -> bool {
        std::io::stdout().write_all(data).is_ok()
    }
    fn flush(&mut self) -> bool {
        std::io::stdout().flush().is_ok()
    }
    fn header(&mut self, _line: &[u8]) {}
    fn headers_done(&mut self, _status: u16, _default_content_type: bool) {}
    fn read_body(&mut self, _buf: &mut [u8]) -> usize {
        0
    }
    fn log(&mut self, msg: &[u8], _level: i32) {
        eprintln!("{}", String::from_utf8_lossy(msg));
    }
    fn heartbeat(&mut self, _secs: i64) -> bool {
        false
    }
    fn finish_request(&mut self) -> bool {
        false
    }
    fn request_id(&self) -> u64 {
        0
    }
    fn worker_id(&self) -> u64 {
        0
    }
}

/// Prints phpinfo() as text. Runs PHP in this (single-threaded) process.
pub fn run(args: &PhpInfoArgs) -> Result<(), Box<dyn std::error::Error>> {
    let ini = resolve_php_ini(args.php_ini.as_deref())?;
    php::set_phpinfo_as_text();
    php::startup(ini.as_deref(), &args.define)?;
    let script = std::env::temp_dir().join(format!("spindle-phpinfo-{}.php", std::process::id()));
    std::fs::write(&script, "<?php phpinfo();")?;
    let mut filename = script.as_os_str().as_encoded_bytes().to_vec();
    filename.push(0);
    let req = php::Request {
        method: b"GET\0",
        request_uri: b"/\0",
        query_string: b"\0",
        script_filename: &filename,
        content_type: None,
        content_length: -1,
        cookie: None,
        authorization: None,
        server_vars: Vec::new(),
        request_time: 0.0,
    };
    let outcome = php::execute(&req, &mut Stdout);
    let _ = std::fs::remove_file(&script);
    if outcome.startup_failed || outcome.fatal {
        return Err("phpinfo() failed".into());
    }
    Ok(())
}
