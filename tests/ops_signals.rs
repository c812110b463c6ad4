//! Signals an operator sends: SIGHUP reloads PHP (php.ini read again),
//! SIGINT stops gracefully like SIGTERM.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use support::{client, Server, TempDir};

/// A docroot whose `ini.php` answers "<memory_limit> <pid>".
fn ini_docroot() -> TempDir {
    let dir = TempDir::new("reload");
    std::fs::create_dir(dir.path().join("www")).unwrap();
    std::fs::write(
        dir.path().join("www/ini.php"),
        "<?php echo ini_get('memory_limit'), ' ', getmypid();",
    )
    .unwrap();
    dir
}

/// (memory_limit, pid) as a worker reports them.
fn ini(s: &Server) -> (String, String) {
    let r = client().get(s.url("/ini.php")).send().unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().unwrap();
    let (limit, pid) = text.split_once(' ').expect("limit and pid");
    (limit.to_string(), pid.to_string())
}

/// Polls until `n` answers in a row report `limit`; the pids that served them.
fn wait_for_limit(s: &Server, limit: &str, n: usize) -> HashSet<String> {
    let end = Instant::now() + Duration::from_secs(10);
    let mut run = HashSet::new();
    let mut streak = 0;
    while streak < n {
        assert!(
            Instant::now() < end,
            "workers never all served memory_limit={limit}; log:\n{}",
            s.log()
        );
        let (got, pid) = ini(s);
        if got == limit {
            streak += 1;
            run.insert(pid);
        } else {
            streak = 0;
            run.clear();
        }
    }
    run
}

/// Issue 10, item 3: a reload really reads php.ini again (recycling workers
/// without a new PHP would keep serving the old value).
#[test]
fn sighup_reads_php_ini_again() {
    let dir = ini_docroot();
    let ini_path = dir.path().join("php.ini");
    std::fs::write(&ini_path, "memory_limit = 100M\n").unwrap();
    let s = Server::start_in(
        &dir.path().join("www"),
        &["--workers", "2", "--php-ini", ini_path.to_str().unwrap()],
    );
    let before = wait_for_limit(&s, "100M", 4);
    for (n, limit) in [(1, "200M"), (2, "300M")] {
        std::fs::write(&ini_path, format!("memory_limit = {limit}\n")).unwrap();
        s.signal(Signal::SIGHUP);
        assert!(
            s.wait_for_log_count("reload: new PHP started", n, Duration::from_secs(10)),
            "{}",
            s.log()
        );
        let after = wait_for_limit(&s, limit, 6);
        assert!(before.is_disjoint(&after), "{before:?} {after:?}");
    }
}

/// Issue 10, item 3: a php.ini that cannot be read at reload fails the
/// reload and leaves the old workers serving with the old settings.
///
/// PHP itself skips an unreadable php.ini silently, so the reload used to
/// "succeed" with the new workers running without it (memory_limit back to
/// PHP's default 128M); startup now checks the file first.
#[test]
fn sighup_with_an_unreadable_php_ini_keeps_the_old_workers() {
    let dir = ini_docroot();
    let ini_path = dir.path().join("php.ini");
    std::fs::write(&ini_path, "memory_limit = 200M\n").unwrap();
    let s = Server::start_in(
        &dir.path().join("www"),
        &["--workers", "2", "--php-ini", ini_path.to_str().unwrap()],
    );
    let serving = wait_for_limit(&s, "200M", 4);

    // php.ini replaced by a directory: the new PHP must not start.
    std::fs::remove_file(&ini_path).unwrap();
    std::fs::create_dir(&ini_path).unwrap();
    s.signal(Signal::SIGHUP);
    assert!(
        s.wait_for_log("reload failed", Duration::from_secs(10)),
        "a php.ini that cannot be read must fail the reload; now serving {:?}; log:\n{}",
        ini(&s),
        s.log()
    );
    for _ in 0..6 {
        let (limit, pid) = ini(&s);
        assert_eq!(limit, "200M", "the old workers keep serving");
        assert!(serving.contains(&pid), "{pid} is not one of {serving:?}");
    }

    // Fixed again: the next reload works.
    std::fs::remove_dir(&ini_path).unwrap();
    std::fs::write(&ini_path, "memory_limit = 300M\n").unwrap();
    s.signal(Signal::SIGHUP);
    assert!(
        s.wait_for_log("reload: new PHP started", Duration::from_secs(10)),
        "{}",
        s.log()
    );
    wait_for_limit(&s, "300M", 6);
}
