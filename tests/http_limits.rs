//! Issue 9, items 3 and 5: what a client can make the master hold. Request
//! bodies have a read timeout and a shared memory budget (past it they go to
//! an unnamed file on disk); the static file cache is bounded in bytes.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use support::{client, json, Server, TempDir};

fn md5_hex(data: &[u8]) -> String {
    format!("{:x}", md5::compute(data))
}

/// Bytes that do not repeat in any short period, so a body cut or shifted
/// anywhere changes its md5.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| ((i ^ seed).wrapping_mul(2654435761) >> 13) as u8)
        .collect()
}

/// The master's resident memory, in bytes.
fn vm_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kb * 1024
}

/// What the master's open files hold: (bytes in memfds, bytes in files
/// under `dir`). Files opened as `O_TMPFILE` or unlinked still show in
/// /proc/PID/fd with their directory.
fn held_bytes(pid: u32, dir: &Path) -> (u64, u64) {
    let (mut memfd, mut disk) = (0, 0);
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return (0, 0);
    };
    for fd in fds.flatten() {
        // An fd may close between the listing and these calls: skip it.
        let (Ok(target), Ok(meta)) = (std::fs::read_link(fd.path()), fd.path().metadata()) else {
            continue;
        };
        if target.to_string_lossy().starts_with("/memfd:spindle-body") {
            memfd += meta.len();
        } else if target.starts_with(dir) {
            disk += meta.len();
        }
    }
    (memfd, disk)
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

fn dir_is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

/// A POST head for `/body_md5.php`; `len` None sends the body chunked.
fn post_head(len: Option<usize>) -> String {
    let framing = match len {
        Some(n) => format!("Content-Length: {n}"),
        None => "Transfer-Encoding: chunked".to_string(),
    };
    format!(
        "POST /body_md5.php HTTP/1.1\r\nHost: t\r\n{framing}\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
}

#[test]
fn a_stalled_body_gets_408_within_the_body_timeout() {
    let s = Server::start(&["--body-timeout", "1"]);
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(post_head(Some(1_000_000)).as_bytes()).unwrap();
    c.write_all(&pattern(100_000, 1)).unwrap();
    let stalled = Instant::now();
    let mut out = Vec::new();
    // The server answers and closes; a server with no body timeout leaves
    // this read to time out with nothing.
    let _ = c.read_to_end(&mut out);
    let took = stalled.elapsed();
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 408"), "got {took:?}: {out:?}");
    assert!(
        out.to_ascii_lowercase().contains("connection: close"),
        "{out}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "408 after {took:?}, expected about 1 s"
    );
}

#[test]
fn the_body_timeout_is_between_reads_not_for_the_whole_body() {
    // A slow but live upload takes longer than --body-timeout in total and
    // still arrives whole: the timeout counts from the last byte, as nginx's
    // client_body_timeout does.
    let s = Server::start(&["--body-timeout", "1"]);
    let body = pattern(8 * 4096, 2);
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(post_head(Some(body.len())).as_bytes()).unwrap();
    let start = Instant::now();
    for piece in body.chunks(4096) {
        c.write_all(piece).unwrap();
        // The client's own pace, not synchronisation: 8 pieces 400 ms apart.
        std::thread::sleep(Duration::from_millis(400));
    }
    assert!(start.elapsed() > Duration::from_secs(2));
    let mut out = vec![0u8; 4096];
    let n = c.read(&mut out).unwrap();
    let out = String::from_utf8_lossy(&out[..n]);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains(&md5_hex(&body)), "{out}");
}

#[test]
fn stalled_uploads_do_not_pin_the_masters_memory() {
    // The attack, scaled down: 20 clients send 8 MB of a 20 MB body
    // and stall, 20 more send 900 KB of a chunked body and stall. Before the
    // fix all 178 MB sat in memfds; now the memory part is bounded by
    // --max-body-memory and the rest is in unnamed files on disk.
    let spool = TempDir::new("spool-stall");
    let s = Server::start(&[
        "--max-body-memory",
        "4M",
        "--body-spool-dir",
        spool.path().to_str().unwrap(),
    ]);
    let pid = s.pid();
    let r = client().get(s.url("/hello.php")).send().unwrap();
    assert_eq!(r.status(), 200);
    let rss_before = vm_rss(pid);
    let (memfd_before, _) = held_bytes(pid, spool.path());
    assert_eq!(memfd_before, 0);

    const LARGE: usize = 8_000_000;
    const MEDIUM: usize = 900_000;
    let senders: Vec<_> = (0..40)
        .map(|i| {
            let addr = s.addr;
            std::thread::spawn(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                if i < 20 {
                    c.write_all(post_head(Some(20_000_000)).as_bytes()).unwrap();
                    c.write_all(&pattern(LARGE, i)).unwrap();
                } else {
                    c.write_all(post_head(None).as_bytes()).unwrap();
                    c.write_all(format!("{MEDIUM:x}\r\n").as_bytes()).unwrap();
                    c.write_all(&pattern(MEDIUM, i)).unwrap();
                }
                c // held open, stalled, until the test ends
            })
        })
        .collect();
    let conns: Vec<TcpStream> = senders.into_iter().map(|t| t.join().unwrap()).collect();
    let expected = (20 * LARGE + 20 * MEDIUM) as u64;
    let mut held = (0, 0);
    let arrived = wait_until(Duration::from_secs(60), || {
        held = held_bytes(pid, spool.path());
        held.0 + held.1 >= expected
    });
    assert!(arrived, "the master holds {held:?} of {expected} bytes");
    let (memfd, disk) = held;
    let rss_growth = vm_rss(pid).saturating_sub(rss_before);
    eprintln!(
        "stalled: memfds {memfd} B, disk {disk} B, master RSS +{} KiB",
        rss_growth / 1024
    );
    assert!(
        memfd <= 4 << 20,
        "memfds hold {memfd} bytes, over the 4M budget"
    );
    assert!(
        disk >= expected - (4 << 20),
        "only {disk} bytes went to disk"
    );
    assert!(
        rss_growth < 32 << 20,
        "the master's RSS grew by {rss_growth} bytes"
    );
    assert!(dir_is_empty(spool.path()), "spool files have no names");
    drop(conns);
    // Once the clients are gone the spool files are closed.
    assert!(wait_until(Duration::from_secs(10), || held_bytes(
        pid,
        spool.path()
    ) == (0, 0)));
    assert!(dir_is_empty(spool.path()));
}

#[test]
fn spooled_bodies_reach_php_whole_and_leave_no_file() {
    let spool = TempDir::new("spool-md5");
    let dir = spool.path().to_str().unwrap();
    let s = Server::start(&["--body-spool-dir", dir]);
    let cases: [(&str, usize, bool); 4] = [
        ("inline", 10_000, true),
        ("memfd, chunked", 200_000, false),
        ("disk, declared length", 5_000_000, true),
        // Starts in memory and moves to disk as it passes 1 MiB.
        ("memfd then disk, chunked", 3_000_000, false),
    ];
    for (i, (what, len, sized)) in cases.into_iter().enumerate() {
        let data = pattern(len, i as u32);
        let body = if sized {
            reqwest::blocking::Body::from(data.clone())
        } else {
            // A reader of unknown length: reqwest sends it chunked.
            reqwest::blocking::Body::new(std::io::Cursor::new(data.clone()))
        };
        let r = client()
            .post(s.url("/body_md5.php"))
            .header("Content-Type", "application/octet-stream")
            .body(body)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{what}");
        let v: Value = json(r);
        assert_eq!(v["length"], len, "{what}: {v}");
        assert_eq!(v["md5"], md5_hex(&data), "{what}");
    }
    assert!(dir_is_empty(spool.path()), "nothing left in {dir}");
    assert_eq!(held_bytes(s.pid(), spool.path()), (0, 0));

    // With no memory budget even a small body goes to disk, and still
    // arrives.
    let s = Server::start(&["--body-spool-dir", dir, "--max-body-memory", "0"]);
    let data = pattern(1000, 9);
    let v = json(
        client()
            .post(s.url("/body_md5.php"))
            .body(data.clone())
            .send()
            .unwrap(),
    );
    assert_eq!(v["md5"], md5_hex(&data), "{v}");
    assert!(dir_is_empty(spool.path()));
}

#[test]
fn many_distinct_static_files_keep_the_master_small() {
    // The case: distinct 256 KiB files requested once each. 320 of
    // them are 80 MiB; the cache may keep 8 MiB.
    let root = TempDir::new("static-cache");
    const FILES: u32 = 320;
    const SIZE: usize = 256 * 1024;
    for i in 0..FILES {
        std::fs::write(root.path().join(format!("f{i}.bin")), pattern(SIZE, i)).unwrap();
    }
    std::fs::write(root.path().join("warm.txt"), b"warm").unwrap();
    let s = Server::start_in(root.path(), &["--static-cache-size", "8M"]);
    let c = client();
    assert_eq!(c.get(s.url("/warm.txt")).send().unwrap().status(), 200);
    let before = vm_rss(s.pid());
    for i in 0..FILES {
        let r = c.get(s.url(&format!("/f{i}.bin"))).send().unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().unwrap().len(), SIZE);
    }
    let growth = vm_rss(s.pid()).saturating_sub(before);
    eprintln!(
        "{FILES} files of {SIZE} B: master RSS +{} KiB",
        growth / 1024
    );
    assert!(
        growth < 24 << 20,
        "the master grew by {} MiB for an 8 MiB cache",
        growth >> 20
    );
}

#[test]
fn a_cached_file_edited_on_disk_is_served_fresh() {
    let root = TempDir::new("static-fresh");
    let file = root.path().join("page.txt");
    std::fs::write(&file, b"version one").unwrap();
    let s = Server::start_in(root.path(), &[]);
    let get = || {
        client()
            .get(s.url("/page.txt"))
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    assert_eq!(get(), "version one");
    assert_eq!(get(), "version one", "now from the cache");

    // Same length, new content: only the mtime tells. Set it explicitly so
    // a coarse file-system clock cannot hide the edit.
    std::fs::write(&file, b"version two").unwrap();
    let f = std::fs::File::options().write(true).open(&file).unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    drop(f);
    assert_eq!(get(), "version two");

    std::fs::write(&file, b"the third version").unwrap();
    assert_eq!(get(), "the third version");

    // With the cache off, files are still served.
    let s = Server::start_in(root.path(), &["--static-cache-size", "0"]);
    let r = client().get(s.url("/page.txt")).send().unwrap();
    assert_eq!(r.text().unwrap(), "the third version");
}
