//! Where and as whom Spindle listens: the Unix socket's mode, a stale socket
//! file replaced while a live one is refused, a master that is not root
//! (issue 10, item 7).

mod support;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use support::{fixtures, run_to_exit, Server, TempDir};

/// GET /hello.php over the Unix socket; the whole answer.
fn hello_over(sock: &std::path::Path) -> String {
    let mut c = UnixStream::connect(sock).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /hello.php HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn socket_mode_sets_the_unix_socket_permissions() {
    let dir = TempDir::new("sockmode");
    let sock = dir.path().join("default.sock");
    let s = Server::start_unix(&fixtures(), &sock, &[]);
    assert_eq!(mode(&sock), 0o660, "the documented default");
    drop(s);
    for (flag, want) in [("0600", 0o600), ("0666", 0o666)] {
        let sock = dir.path().join(format!("{flag}.sock"));
        let _s = Server::start_unix(&fixtures(), &sock, &["--socket-mode", flag]);
        assert_eq!(mode(&sock), want, "--socket-mode {flag}");
        assert!(hello_over(&sock).ends_with("Hello, World!"));
    }
}

#[test]
fn a_stale_socket_is_replaced_and_a_live_one_refused() {
    let dir = TempDir::new("stale");
    // Stale: the file of a socket nobody listens on any more.
    let stale = dir.path().join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    // A child another test forks in that instant holds a copy of the
    // listener until it execs (CI saw a connect succeed once): wait for it.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while UnixStream::connect(&stale).is_ok() {
        assert!(std::time::Instant::now() < end, "the listener never closed");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(stale.exists());
    let s = Server::start_unix(&fixtures(), &stale, &[]);
    assert!(hello_over(&stale).ends_with("Hello, World!"));
    drop(s);

    // Live: another server listens there; Spindle must not steal its path.
    let live = dir.path().join("live.sock");
    let other = UnixListener::bind(&live).unwrap();
    let (ok, err) = run_to_exit(&[
        "serve",
        fixtures().to_str().unwrap(),
        "--workers",
        "1",
        "--listen",
        &format!("unix:{}", live.display()),
    ]);
    assert!(!ok, "started on a live socket: {err}");
    assert!(err.contains(&live.display().to_string()), "{err}");
    // The other server still owns its socket.
    let _c = UnixStream::connect(&live).expect("the live socket still works");
    other.accept().unwrap();
}

/// Without root, Spindle runs as the user who started it: master and
/// workers alike, and it serves.
#[test]
fn the_master_runs_without_root() {
    // As root, the test drops to nobody; otherwise it already is not root.
    let root = nix::unistd::geteuid().is_root();
    let uid = if root {
        let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        nobody.uid.as_raw()
    } else {
        nix::unistd::geteuid().as_raw()
    };
    let args: Vec<String> = [
        "serve",
        fixtures().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let s = Server::start_args_as(&args, &[], root.then_some(uid));
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).unwrap();
    let master_uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        master_uid.split_whitespace().nth(1),
        Some(uid.to_string().as_str()),
        "{master_uid}"
    );
    let r = support::client().get(s.url("/pid.php")).send().unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().unwrap();
    assert_eq!(
        body.split(' ').nth(1),
        Some(uid.to_string().as_str()),
        "{body}"
    );
    let r = support::client()
        .get(s.url("/static/data.json"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}
