//! The CGI/1.1 variables PHP gets in `$_SERVER`, encoded straight into the
//! worker's request message.

use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;

use http::request::Parts;
use http::{header, Version};

use super::route::Script;
use crate::config::Settings;
use crate::ipc::{self, Encoder};

/// SERVER_SOFTWARE when every path that is not a file goes to a front
/// controller.
const SERVER_SOFTWARE_REWRITING: &str =
    concat!("Spindle/", env!("CARGO_PKG_VERSION"), " (nginx-compatible)");

/// The connection a request came in on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The client; `None` on a Unix socket.
    pub peer: Option<SocketAddr>,
    /// Our side; `None` on a Unix socket.
    pub local: Option<SocketAddr>,
    /// The connection is TLS (HTTPS).
    pub tls: bool,
}

/// The request body as it will reach the worker.
#[derive(Debug)]
pub enum BodyPlacement<'a> {
    None,
    Inline(&'a [u8]),
    /// Spooled to a memfd of this many bytes, sent along with the message.
    Fd(u64),
}

/// Everything the worker needs to run `script` for this request.
pub struct RequestMessage<'a> {
    pub id: u64,
    pub parts: &'a Parts,
    pub script: &'a Script,
    pub conn: &'a ConnInfo,
    pub settings: &'a Settings,
    pub body: BodyPlacement<'a>,
    pub request_time: f64,
}

impl RequestMessage<'_> {
    pub fn encode(&self) -> Vec<u8> {
        let p = self.parts;
        let mut e = Encoder::with_capacity(1024);
        let (flags, content_length, inline) = match self.body {
            BodyPlacement::None => (0, -1, None),
            BodyPlacement::Inline(b) => (ipc::REQ_BODY_INLINE, b.len() as i64, Some(b)),
            BodyPlacement::Fd(n) => (ipc::REQ_BODY_FD, n as i64, None),
        };
        let uri = p.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let query = p.uri.query().unwrap_or("");
        let filename = self.script.filename.as_os_str().as_bytes();
        let content_type = p.headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes());
        let authorization = p.headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
        let cookie = joined(p, header::COOKIE, b"; ");
        e.u8(ipc::MSG_REQUEST)
            .u8(flags)
            .u64(self.id)
            .f64(self.request_time)
            .i64(content_length)
            .u32(if self.settings.request_timeout.is_some() {
                self.settings.max_heartbeat
            } else {
                0
            })
            .str(p.method.as_str().as_bytes())
            .str(uri.as_bytes())
            .str(query.as_bytes())
            .str(filename)
            .opt_str(content_type)
            .opt_str(cookie.as_deref())
            .opt_str(authorization);

        let count_at = e.len();
        e.u32(0);
        let mut n = 0u32;
        let mut var = |e: &mut Encoder, k: &[u8], v: &[u8]| {
            e.str(k).str(v);
            n += 1;
        };

        // HTTP_* for every request header, as FPM gets them from nginx.
        let mut name_buf = Vec::with_capacity(64);
        for name in p.headers.keys() {
            if name == header::CONTENT_TYPE || name == header::CONTENT_LENGTH {
                continue; // CONTENT_TYPE / CONTENT_LENGTH below
            }
            // httpoxy (CVE-2016-5385): a client's "Proxy:" header must not
            // become HTTP_PROXY, which HTTP libraries read as their proxy.
            if name.as_str() == "proxy" {
                continue;
            }
            name_buf.clear();
            name_buf.extend_from_slice(b"HTTP_");
            name_buf.extend(name.as_str().bytes().map(|b| match b {
                b'-' => b'_',
                b => b.to_ascii_uppercase(),
            }));
            let sep: &[u8] = if name == header::COOKIE { b"; " } else { b", " };
            let value = joined(p, name.clone(), sep).unwrap_or_default();
            var(&mut e, &name_buf, &value);
        }

        if let Some(ct) = content_type {
            var(&mut e, b"CONTENT_TYPE", ct);
        }
        if content_length >= 0 {
            var(
                &mut e,
                b"CONTENT_LENGTH",
                content_length.to_string().as_bytes(),
            );
        }
        let docroot = self.settings.docroot.as_os_str().as_bytes();
        var(&mut e, b"DOCUMENT_ROOT", docroot);
        var(&mut e, b"SCRIPT_FILENAME", filename);
        var(&mut e, b"SCRIPT_NAME", &self.script.script_name);
        let mut php_self = self.script.script_name.clone();
        if let Some(pi) = &self.script.path_info {
            var(&mut e, b"PATH_INFO", pi);
            let mut translated = docroot.to_vec();
            translated.extend_from_slice(pi);
            var(&mut e, b"PATH_TRANSLATED", &translated);
            php_self.extend_from_slice(pi);
        }
        var(&mut e, b"PHP_SELF", &php_self);
        var(&mut e, b"REQUEST_URI", uri.as_bytes());
        var(&mut e, b"QUERY_STRING", query.as_bytes());
        var(&mut e, b"REQUEST_METHOD", p.method.as_str().as_bytes());
        let fwd =
            super::proxy::forwarded(&p.headers, self.conn.peer, &self.settings.trusted_proxies);
        let https = self.conn.tls || fwd.as_ref().and_then(|f| f.https).unwrap_or(false);
        var(
            &mut e,
            b"REQUEST_SCHEME",
            if https { b"https" } else { b"http" },
        );
        if https {
            var(&mut e, b"HTTPS", b"on");
        }
        let protocol: &[u8] = match p.version {
            Version::HTTP_10 => b"HTTP/1.0",
            Version::HTTP_2 => b"HTTP/2.0",
            _ => b"HTTP/1.1",
        };
        var(&mut e, b"SERVER_PROTOCOL", protocol);
        var(&mut e, b"GATEWAY_INTERFACE", b"CGI/1.1");
        // Applications ask SERVER_SOFTWARE whether paths that are not files
        // reach index.php: WordPress offers `/%postname%/` permalinks only
        // to "nginx" (try_files) or Apache (mod_rewrite), and to anything
        // else `/index.php/%postname%/`. With a front controller (or a
        // worker script) Spindle routes as nginx's try_files does, so it
        // says so.
        let rewrites =
            self.settings.front_controller.is_some() || self.settings.worker_route.is_some();
        let software = if rewrites {
            SERVER_SOFTWARE_REWRITING
        } else {
            crate::SERVER_SOFTWARE
        };
        var(&mut e, b"SERVER_SOFTWARE", software.as_bytes());
        // A proxy's host is believed only when it is a plain host[:port],
        // as the client's own Host must be (validate.rs): SERVER_NAME and
        // HTTP_HOST end up in pages and URLs.
        let fwd_host = fwd
            .as_ref()
            .and_then(|f| f.host.as_deref())
            .map(str::as_bytes)
            .filter(|h| super::validate::valid_host(h));
        // RFC 9112 3.2.2: an absolute-form target's authority replaces Host.
        let target_host = p.uri.authority().map(|a| a.as_str().as_bytes());
        let host = fwd_host
            .or(target_host)
            .or_else(|| p.headers.get(header::HOST).map(|h| h.as_bytes()));
        if let Some(h) = fwd_host.or(target_host) {
            // Registered after the HTTP_* loop, so it wins over the Host header.
            var(&mut e, b"HTTP_HOST", h);
        }
        let (server_name, host_port) = split_host(host);
        let local = self.conn.local;
        let server_name_owned;
        let server_name = match server_name {
            Some(n) => n,
            None => {
                server_name_owned =
                    local.map_or_else(|| "localhost".to_string(), |a| a.ip().to_string());
                server_name_owned.as_bytes()
            }
        };
        var(&mut e, b"SERVER_NAME", server_name);
        let fwd_port = fwd.as_ref().and_then(|f| {
            f.port
                .or_else(|| f.https.map(|https| if https { 443 } else { 80 }))
        });
        let port = match (fwd_port, local, host_port) {
            (Some(p), _, _) => p.to_string(),
            (None, Some(a), _) => a.port().to_string(),
            (None, None, Some(p)) => String::from_utf8_lossy(p).into_owned(),
            (None, None, None) => "80".to_string(),
        };
        var(&mut e, b"SERVER_PORT", port.as_bytes());
        if let Some(a) = local {
            var(&mut e, b"SERVER_ADDR", a.ip().to_string().as_bytes());
        }
        match (fwd.as_ref().and_then(|f| f.client), self.conn.peer) {
            (Some(client), _) => var(&mut e, b"REMOTE_ADDR", client.to_string().as_bytes()),
            (None, Some(a)) => {
                var(&mut e, b"REMOTE_ADDR", a.ip().to_string().as_bytes());
                var(&mut e, b"REMOTE_PORT", a.port().to_string().as_bytes());
            }
            (None, None) => var(&mut e, b"REMOTE_ADDR", b""),
        }
        var(&mut e, b"REDIRECT_STATUS", b"200");

        let count = n;
        e.as_mut_slice()[count_at..count_at + 4].copy_from_slice(&count.to_le_bytes());
        if let Some(b) = inline {
            e.raw(b);
        }
        e.into_vec()
    }
}

/// All values of header `name`, joined with `sep`.
fn joined(p: &Parts, name: header::HeaderName, sep: &[u8]) -> Option<Vec<u8>> {
    let mut it = p.headers.get_all(name).iter();
    let first = it.next()?;
    let mut v = first.as_bytes().to_vec();
    for more in it {
        v.extend_from_slice(sep);
        v.extend_from_slice(more.as_bytes());
    }
    Some(v)
}

/// `example.com:8080` -> (`example.com`, `8080`); `[::1]:80` -> (`[::1]`, `80`).
fn split_host(host: Option<&[u8]>) -> (Option<&[u8]>, Option<&[u8]>) {
    let Some(h) = host.filter(|h| !h.is_empty()) else {
        return (None, None);
    };
    let colon = if h.starts_with(b"[") {
        h.iter()
            .position(|&b| b == b']')
            .and_then(|end| (h.get(end + 1) == Some(&b':')).then_some(end + 1))
    } else {
        h.iter().rposition(|&b| b == b':')
    };
    match colon {
        Some(i) => (Some(&h[..i]), Some(&h[i + 1..])),
        None => (Some(h), None),
    }
}

#[cfg(test)]
mod tests {
    use super::split_host;

    #[test]
    fn host_and_port() {
        assert_eq!(
            split_host(Some(b"example.com:8080")),
            (Some(&b"example.com"[..]), Some(&b"8080"[..]))
        );
        assert_eq!(
            split_host(Some(b"example.com")),
            (Some(&b"example.com"[..]), None)
        );
        assert_eq!(
            split_host(Some(b"[::1]:80")),
            (Some(&b"[::1]"[..]), Some(&b"80"[..]))
        );
        assert_eq!(split_host(Some(b"[::1]")), (Some(&b"[::1]"[..]), None));
        assert_eq!(split_host(None), (None, None));
    }
}
