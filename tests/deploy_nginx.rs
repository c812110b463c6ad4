//! Behind real nginx (Debian's nginx-light), configured with docker/nginx.conf:
//! a PHP page, an SSE stream whose events arrive one by one while the script
//! sleeps, REMOTE_ADDR from X-Forwarded-For, and a large upload.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{client, Server, TempDir};

struct Nginx {
    child: Child,
    port: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its workers; SIGKILL would orphan them.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx running docker/nginx.conf, pointed at `sock`, on a free port.
fn nginx(dir: &TempDir, sock: &std::path::Path) -> Nginx {
    let port = free_port();
    let site =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker/nginx.conf")).unwrap();
    assert!(site.contains("listen 80;") && site.contains("unix:/run/spindle/spindle.sock"));
    let site = site
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
        .replace(
            "unix:/run/spindle/spindle.sock",
            &format!("unix:{}", sock.display()),
        );
    let d = dir.path().display();
    std::fs::write(dir.path().join("site.conf"), site).unwrap();
    let main = format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
         include {d}/site.conf;\n}}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), main).unwrap();
    let child = Command::new("nginx")
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nginx is installed by scripts/deps.sh test");
    let end = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < end,
            "nginx did not start: {:?}",
            std::fs::read_to_string(dir.path().join("error.log"))
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Nginx { child, port }
}

#[test]
fn behind_nginx() {
    let dir = TempDir::new("nginx");
    // nginx's workers run as www-data: the socket's directory must be reachable.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let sock = dir.path().join("spindle.sock");
    let _spindle = Server::start_unix(
        &support::fixtures(),
        &sock,
        &[
            "--trusted-proxy",
            "unix,127.0.0.1",
            "--socket-mode",
            "0666",
            "-d",
            "upload_max_filesize=32M",
            "-d",
            "post_max_size=64M",
        ],
    );
    let nginx = nginx(&dir, &sock);
    let base = format!("http://127.0.0.1:{}", nginx.port);
    let c = client();

    // A PHP page.
    let r = c.get(format!("{base}/hello.php")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), "Hello, World!");

    // REMOTE_ADDR from X-Forwarded-For: the client claims 203.0.113.7, nginx
    // appends 127.0.0.1 (where it got the request from); both nginx (unix)
    // and 127.0.0.1 are trusted, so the client is 203.0.113.7.
    let r = c
        .get(format!("{base}/info.php"))
        .header("X-Forwarded-For", "203.0.113.7")
        .send()
        .unwrap();
    let v = support::json(r);
    assert_eq!(v["server"]["REMOTE_ADDR"], "203.0.113.7", "{}", v["server"]);
    assert_eq!(v["server"]["SERVER_PORT"], nginx.port.to_string());
    assert_eq!(v["server"]["REQUEST_SCHEME"], "http");

    // An SSE stream arrives event by event while the script sleeps.
    let mut tcp = TcpStream::connect(("127.0.0.1", nginx.port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        tcp,
        "GET /sse/counter.php?n=3&ms=700 HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let start = Instant::now();
    let mut times = Vec::new();
    let mut headers = String::new();
    for line in BufReader::new(tcp).lines() {
        let Ok(line) = line else { break };
        if times.is_empty() && !line.starts_with("data:") {
            headers.push_str(&line.to_lowercase());
            headers.push('\n');
        }
        if line.starts_with("data:") {
            times.push(start.elapsed());
        }
    }
    assert!(
        headers.contains("content-type: text/event-stream"),
        "{headers}"
    );
    assert_eq!(times.len(), 3, "{times:?}");
    assert!(
        times[0] < Duration::from_millis(500),
        "first event buffered by nginx: {times:?}"
    );
    assert!(
        times[1] - times[0] > Duration::from_millis(400),
        "{times:?}"
    );
    assert!(
        times[2] - times[1] > Duration::from_millis(400),
        "{times:?}"
    );

    // A large upload.
    let big: Vec<u8> = (0..20_000_000u32).map(|i| (i % 253) as u8).collect();
    let form = reqwest::blocking::multipart::Form::new().part(
        "big",
        reqwest::blocking::multipart::Part::bytes(big.clone()).file_name("big.bin"),
    );
    let r = c
        .post(format!("{base}/upload.php"))
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v = support::json(r);
    assert_eq!(v["files"]["big"]["size"], 20_000_000);
    assert_eq!(
        v["files"]["big"]["md5"],
        format!("{:x}", md5::compute(&big))
    );
}

#[test]
fn forwarded_headers_from_untrusted_peers_are_ignored() {
    // Directly on TCP, no --trusted-proxy: a client cannot choose its address.
    let s = Server::start(&[]);
    let r = client()
        .get(s.url("/info.php"))
        .header("X-Forwarded-For", "203.0.113.7")
        .header("X-Forwarded-Proto", "https")
        .send()
        .unwrap();
    let v = support::json(r);
    assert_eq!(v["server"]["REMOTE_ADDR"], "127.0.0.1");
    assert!(v["server"].get("HTTPS").is_none());
    // Trusted: believed, including the scheme.
    let s = Server::start(&["--trusted-proxy", "127.0.0.0/8"]);
    let r = client()
        .get(s.url("/info.php"))
        .header("X-Forwarded-For", "203.0.113.7")
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Host", "app.example.com")
        .send()
        .unwrap();
    let v = support::json(r);
    assert_eq!(v["server"]["REMOTE_ADDR"], "203.0.113.7");
    assert_eq!(v["server"]["HTTPS"], "on");
    assert_eq!(v["server"]["REQUEST_SCHEME"], "https");
    assert_eq!(v["server"]["SERVER_PORT"], "443");
    assert_eq!(v["server"]["HTTP_HOST"], "app.example.com");
    assert_eq!(v["server"]["SERVER_NAME"], "app.example.com");
}
