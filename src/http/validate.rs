//! Checks on a parsed request head that hyper leaves to the server, run
//! before routing (issue 9, items 6 and 8). hyper already answers 400 for a
//! malformed request line or header, 431 for more than 100 headers, and
//! handles `Expect: 100-continue`; what it accepts and nginx refuses is
//! refused here, with nginx's status codes.

use std::net::Ipv6Addr;

use http::{header, HeaderMap, Request, StatusCode, Version};

/// Why a request is refused: the status and a one-line reason for the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: StatusCode,
    pub reason: &'static str,
}

fn reject(status: StatusCode, reason: &'static str) -> Result<(), Rejection> {
    Err(Rejection { status, reason })
}

/// Checks the request head; `max_head` is `--max-header-size`.
pub fn check<B>(req: &Request<B>, max_head: usize) -> Result<(), Rejection> {
    // hyper's limit is on its read buffer, which a single read may overshoot:
    // heads of up to twice the limit got through (item 8).
    if head_size(req) > max_head {
        return reject(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "431 Request Header Fields Too Large: the request head exceeds --max-header-size",
        );
    }
    check_framing(req.headers())?;
    check_host(req)?;
    check_expect(req.headers())
}

/// The size of the head as sent (request line and header lines), give or
/// take optional whitespace, from what hyper parsed.
fn head_size<B>(req: &Request<B>) -> usize {
    let uri = req.uri();
    let target = uri.path_and_query().map_or(1, |pq| pq.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len() + 3)
        + uri.scheme_str().map_or(0, str::len);
    let line = req.method().as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let fields: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + 2 + v.len() + 2)
        .sum();
    line + fields + 2
}

/// Only `Transfer-Encoding: chunked` alone is understood, as in nginx: any
/// other coding list (`identity, chunked`, `gzip, chunked`) is 501, so a
/// proxy in front that reads the framing differently cannot smuggle a
/// second request through us. Both framings at once is 400 (RFC 9112 6.3
/// allows refusing it; nginx does).
fn check_framing(h: &HeaderMap) -> Result<(), Rejection> {
    let mut te = h.get_all(header::TRANSFER_ENCODING).iter();
    let Some(first) = te.next() else {
        return Ok(());
    };
    let chunked_only = te.next().is_none() && first.as_bytes().eq_ignore_ascii_case(b"chunked");
    if !chunked_only {
        return reject(
            StatusCode::NOT_IMPLEMENTED,
            "501 Not Implemented: only Transfer-Encoding: chunked is supported",
        );
    }
    if h.contains_key(header::CONTENT_LENGTH) {
        return reject(
            StatusCode::BAD_REQUEST,
            "400 Bad Request: both Content-Length and Transfer-Encoding",
        );
    }
    Ok(())
}

/// RFC 9112 3.2: 400 for an HTTP/1.1 request without Host, with two, or
/// with one that is not `host[:port]`. An absolute-form request target's
/// authority is checked the same way; it wins over Host (see vars.rs).
fn check_host<B>(req: &Request<B>) -> Result<(), Rejection> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return reject(StatusCode::BAD_REQUEST, "400 Bad Request: two Host headers");
    }
    if let Some(h) = host {
        if !valid_host(h.as_bytes()) {
            return reject(
                StatusCode::BAD_REQUEST,
                "400 Bad Request: invalid Host header",
            );
        }
    }
    match req.uri().authority() {
        Some(a) if !valid_host(a.as_str().as_bytes()) => reject(
            StatusCode::BAD_REQUEST,
            "400 Bad Request: invalid host in the request target",
        ),
        Some(_) => Ok(()),
        None if host.is_none() && req.version() == Version::HTTP_11 => reject(
            StatusCode::BAD_REQUEST,
            "400 Bad Request: HTTP/1.1 requires a Host header",
        ),
        None => Ok(()),
    }
}

/// The only expectation HTTP defines is `100-continue` (which hyper
/// answers); anything else is 417 (RFC 9110 10.1.1).
fn check_expect(h: &HeaderMap) -> Result<(), Rejection> {
    let unmet = h
        .get_all(header::EXPECT)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if unmet {
        return reject(
            StatusCode::EXPECTATION_FAILED,
            "417 Expectation Failed: only Expect: 100-continue is supported",
        );
    }
    Ok(())
}

/// `uri-host [ ":" port ]` (RFC 9110 7.2, RFC 3986 3.2.2): an IPv6 literal
/// in brackets, or a reg-name (which covers IPv4) of unreserved characters,
/// sub-delims and percent-escapes. Like nginx, an empty host and `..` are
/// refused too. Nothing else may reach SERVER_NAME, which applications
/// echo into pages and URLs.
pub fn valid_host(v: &[u8]) -> bool {
    if let Some(rest) = v.strip_prefix(b"[") {
        let Some(end) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = std::str::from_utf8(&rest[..end]).ok();
        let port_ok = match &rest[end + 1..] {
            [] => true,
            [b':', port @ ..] => valid_port(port),
            _ => false,
        };
        return port_ok && literal.is_some_and(|s| s.parse::<Ipv6Addr>().is_ok());
    }
    let (host, port) = match v.iter().position(|&b| b == b':') {
        Some(i) => (&v[..i], Some(&v[i + 1..])),
        None => (v, None),
    };
    port.is_none_or(valid_port) && valid_reg_name(host)
}

fn valid_port(p: &[u8]) -> bool {
    p.len() <= 5 && p.iter().all(u8::is_ascii_digit)
}

fn valid_reg_name(host: &[u8]) -> bool {
    if host.is_empty() || host.windows(2).any(|w| w == b"..") {
        return false;
    }
    let mut i = 0;
    while i < host.len() {
        let b = host[i];
        if b == b'%' {
            let hex = host.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
        } else if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for good in [
            "example.com",
            "example.com:8080",
            "127.0.0.1",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:8080",
            "my_host.local",
            "xn--bcher-kva.example",
            "example.com.",
        ] {
            assert!(valid_host(good.as_bytes()), "{good}");
        }
        for bad in [
            "",
            "a b",
            "a/b",
            "a\\b",
            "<script>",
            "a..b",
            "user@host",
            "host:80:80",
            "host:http",
            "[::1",
            "[zz]:80",
            "[::1]x",
            "a%zz",
            ":80",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn framing_and_expect() {
        let req = |pairs: &[(&'static str, &'static str)]| {
            let mut b = Request::builder().uri("/").header("host", "a");
            for (k, v) in pairs {
                b = b.header(*k, *v);
            }
            b.body(()).unwrap()
        };
        assert!(check(&req(&[("transfer-encoding", "chunked")]), 65536).is_ok());
        assert!(check(&req(&[("transfer-encoding", "Chunked")]), 65536).is_ok());
        let status = |r| check(&r, 65536).unwrap_err().status;
        assert_eq!(
            status(req(&[("transfer-encoding", "identity, chunked")])),
            StatusCode::NOT_IMPLEMENTED
        );
        assert_eq!(
            status(req(&[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked")
            ])),
            StatusCode::NOT_IMPLEMENTED
        );
        assert_eq!(
            status(req(&[
                ("transfer-encoding", "chunked"),
                ("content-length", "3")
            ])),
            StatusCode::BAD_REQUEST
        );
        assert!(check(&req(&[("expect", "100-Continue")]), 65536).is_ok());
        assert_eq!(
            status(req(&[("expect", "200-ok")])),
            StatusCode::EXPECTATION_FAILED
        );
        let big = "a".repeat(70_000);
        let r = Request::builder()
            .uri("/")
            .header("host", "a")
            .header("x-big", big.as_str())
            .body(())
            .unwrap();
        assert_eq!(status(r), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
}
