//! Headers with documented meaning: `Allow` on 405, `Forwarded` (RFC 7239)
//! winning over `X-Forwarded-*` from a trusted proxy (issue 10, item 7).

mod support;

use support::{client, json, Server};

#[test]
fn method_not_allowed_on_static_files_says_what_is_allowed() {
    let s = Server::start(&[]);
    for method in ["POST", "PUT", "DELETE"] {
        let raw = s.raw(
            format!("{method} /static/style.css HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert!(raw.starts_with("HTTP/1.1 405"), "{method}: {raw}");
        let allow = raw
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("allow")
                    .then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("{method}: no Allow header: {raw}"));
        assert_eq!(allow, "GET, HEAD", "{method}");
    }
}

#[test]
fn forwarded_wins_over_x_forwarded_from_a_trusted_proxy() {
    let s = Server::start(&["--trusted-proxy", "127.0.0.1"]);
    let v = json(
        client()
            .get(s.url("/info.php"))
            .header("Forwarded", "for=198.51.100.9;proto=https;host=example.org")
            .header("X-Forwarded-For", "203.0.113.7")
            .header("X-Forwarded-Proto", "http")
            .header("X-Forwarded-Host", "wrong.example")
            .send()
            .unwrap(),
    );
    let server = &v["server"];
    assert_eq!(server["REMOTE_ADDR"], "198.51.100.9", "{server}");
    assert_eq!(server["HTTPS"], "on", "{server}");
    assert_eq!(server["REQUEST_SCHEME"], "https", "{server}");
    assert_eq!(server["HTTP_HOST"], "example.org", "{server}");
    assert_eq!(server["SERVER_NAME"], "example.org", "{server}");

    // The X-Forwarded-* family alone is believed too, so the precedence
    // above is a choice, not the only header read.
    let v = json(
        client()
            .get(s.url("/info.php"))
            .header("X-Forwarded-For", "203.0.113.7")
            .header("X-Forwarded-Host", "xf.example")
            .send()
            .unwrap(),
    );
    assert_eq!(v["server"]["REMOTE_ADDR"], "203.0.113.7", "{}", v["server"]);
    assert_eq!(v["server"]["HTTP_HOST"], "xf.example", "{}", v["server"]);
}

/// nginx never passes a FastCGI reply's connection-level headers on; neither
/// does Spindle. DokuWiki's task runner, an image on every page, sends
/// `Connection: Close` (tests/apps_debian.rs): passed on, it closed the
/// browser's keep-alive connection each time.
#[test]
fn connection_headers_from_php_are_not_passed_on() {
    use std::io::{Read, Write};
    let s = Server::start(&[]);
    let mut tcp = std::net::TcpStream::connect(s.addr).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    for _ in 0..2 {
        tcp.write_all(b"GET /hop_headers.php HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        // The answer is small: read until its 3-byte body is in.
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.ends_with(b"\r\n\r\nGIF") {
            let n = tcp
                .read(&mut buf)
                .expect("a second answer on the same connection");
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        let head = String::from_utf8_lossy(&got).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        for name in ["connection:", "keep-alive:", "upgrade:"] {
            assert!(!head.contains(name), "{name} passed on: {head}");
        }
        assert!(head.contains("content-type: image/gif"), "{head}");
    }
}
