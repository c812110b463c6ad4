//! PHP as the workers run it: --php-ini, one OPcache shared by all workers,
//! tokio_finish_request(), a fatal error after output was sent
//! (issue 10, item 7).

mod support;

use std::time::{Duration, Instant};

use support::{client, read_until_closed, Server, TempDir};

/// A docroot in a temp dir holding `files` (name, PHP source).
fn docroot(tag: &str, files: &[(&str, &str)]) -> TempDir {
    let dir = TempDir::new(tag);
    for (name, src) in files {
        std::fs::write(dir.path().join(name), src).unwrap();
    }
    dir
}

fn get(s: &Server, path: &str) -> (u16, String) {
    let r = client().get(s.url(path)).send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

#[test]
fn php_ini_file_takes_effect_and_conf_d_still_loads() {
    let dir = docroot(
        "phpini",
        &[(
            "ini.php",
            "<?php echo ini_get('memory_limit'), ' ', ini_get('max_input_vars'), ' ', \
             (opcache_get_status(false)['opcache_enabled'] ?? false) ? 'opcache' : 'no-opcache';",
        )],
    );
    let ini = dir.path().join("custom.ini");
    std::fs::write(&ini, "memory_limit = 99M\nmax_input_vars = 1234\n").unwrap();
    let www = dir.path().to_path_buf();
    let s = Server::start_in(&www, &["--php-ini", ini.to_str().unwrap()]);
    // conf.d (where Debian enables OPcache) is scanned with any php.ini.
    assert_eq!(get(&s, "/ini.php"), (200, "99M 1234 opcache".into()));
}

/// Workers are forked from one PHP, so a script one worker compiled is in the
/// cache the other reads. Per-worker caches would each start empty.
#[test]
fn one_opcache_is_shared_by_all_workers() {
    let dir = docroot(
        "opcache",
        &[
            ("cached.php", "<?php echo getmypid();"),
            (
                "status.php",
                "<?php $s = opcache_get_status(true); echo getmypid(), ' ', \
                 isset($s['scripts'][__DIR__ . '/cached.php']) ? 'cached' : 'absent';",
            ),
        ],
    );
    // Files this young are not cached by default (opcache.file_update_protection).
    let s = Server::start_in(
        dir.path(),
        &["--workers", "2", "-d", "opcache.file_update_protection=0"],
    );
    let (status, compiled_by) = get(&s, "/cached.php");
    assert_eq!(status, 200);
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        // Two at once, so both workers answer.
        let a = std::thread::spawn({
            let url = s.url("/status.php");
            move || client().get(url).send().unwrap().text().unwrap()
        });
        let b = get(&s, "/status.php").1;
        for answer in [a.join().unwrap(), b] {
            let (pid, state) = answer.split_once(' ').unwrap();
            if pid != compiled_by {
                assert_eq!(
                    state, "cached",
                    "worker {pid} does not see {compiled_by}'s script"
                );
                return;
            }
        }
        assert!(
            Instant::now() < end,
            "only worker {compiled_by} ever answered"
        );
    }
}

#[test]
fn tokio_finish_request_completes_the_response_while_the_script_continues() {
    let marker = format!("spindle-tokio-finish-{}", std::process::id());
    let path = std::env::temp_dir().join(&marker);
    let _ = std::fs::remove_file(&path);
    let dir = docroot(
        "finish",
        &[(
            "finish.php",
            &format!(
                "<?php echo 'done '; var_export(tokio_finish_request()); echo 'discarded'; \
                 usleep(800000); file_put_contents(sys_get_temp_dir() . '/{marker}', 'after');"
            ),
        )],
    );
    let s = Server::start_in(dir.path(), &[]);
    let t = Instant::now();
    let (status, body) = get(&s, "/finish.php");
    let took = t.elapsed();
    assert_eq!((status, body.as_str()), (200, "done "));
    assert!(
        took < Duration::from_millis(600),
        "the client waited for the script: {took:?}"
    );
    assert!(!path.exists(), "the script had already ended");
    let end = Instant::now() + Duration::from_secs(5);
    while !path.exists() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap_or_default(), "after");
    let _ = std::fs::remove_file(&path);
}

/// Once output has gone out, the status cannot change: the response keeps
/// its 200 and ends normally with what was sent, the error goes to the log,
/// and the worker serves on.
#[test]
fn a_fatal_error_after_output_keeps_the_200_and_ends_the_response() {
    let dir = docroot(
        "latefatal",
        &[
            (
                "late.php",
                "<?php echo \"partial\\n\"; flush(); spindle_late_fatal_marker();",
            ),
            ("pid.php", "<?php echo getmypid();"),
        ],
    );
    let s = Server::start_in(dir.path(), &["--workers", "1"]);
    let before = get(&s, "/pid.php").1;
    let mut tcp = std::net::TcpStream::connect(s.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    use std::io::Write;
    tcp.write_all(b"GET /late.php HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let out = String::from_utf8_lossy(&read_until_closed(&mut tcp)).into_owned();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("partial\n"), "{out:?}");
    assert!(
        out.ends_with("0\r\n\r\n"),
        "ends like a complete response: {out:?}"
    );
    assert!(
        s.wait_for_log("spindle_late_fatal_marker", Duration::from_secs(5)),
        "{}",
        s.log()
    );
    assert_eq!(get(&s, "/pid.php").1, before, "the same worker serves on");
}
