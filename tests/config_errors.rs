//! Configuration errors stop startup with one message naming the cause and
//! one documented exit status, 2 (issue 9, item 12).

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{binary, fixtures, TempDir};

/// Runs `spindle` with `args` and `env`; its exit code and stderr, or
/// `None` for the code when it was still running after a few seconds
/// (a server that started although it should not have).
fn exit_of<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut child = Command::new(binary())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(8);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (code, err)
}

fn serve(extra: &[&str]) -> Vec<String> {
    let fx = fixtures().to_string_lossy().into_owned();
    let mut v: Vec<String> = ["serve", &fx, "--listen", "127.0.0.1:0", "--workers", "1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// The last line spindle printed (PHP itself prints its own line first).
fn last_line(err: &str) -> &str {
    err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("")
}

#[test]
fn a_php_ini_syntax_error_stops_startup_naming_file_and_line() {
    let dir = TempDir::new("badini");
    let ini = dir.path().join("php.ini");
    std::fs::write(&ini, "memory_limit = 64M\nbroken = )\n").unwrap();
    let ini = ini.to_str().unwrap();
    let (code, err) = exit_of(&serve(&["--php-ini", ini]), &[]);
    assert_eq!(code, Some(2), "{err}");
    let line = last_line(&err);
    assert!(line.contains(ini) && line.contains("on line 2"), "{err}");

    // A broken file in the scanned conf.d directory, too.
    let good = dir.path().join("good.ini");
    std::fs::write(&good, "memory_limit = 64M\n").unwrap();
    let confd = dir.path().join("conf.d");
    std::fs::create_dir(&confd).unwrap();
    std::fs::write(confd.join("20-ok.ini"), "display_errors = Off\n").unwrap();
    std::fs::write(confd.join("30-bad.ini"), "\n\nx = \"unterminated\n").unwrap();
    let (code, err) = exit_of(
        &serve(&["--php-ini", good.to_str().unwrap()]),
        &[("PHP_INI_SCAN_DIR", confd.to_str().unwrap())],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(last_line(&err).contains("30-bad.ini"), "{err}");

    // A -d entry PHP cannot parse.
    let (code, err) = exit_of(&serve(&["-d", "x=\"unterminated"]), &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(last_line(&err).contains("-d"), "{err}");
}

#[test]
fn a_define_without_a_value_is_refused() {
    let (code, err) = exit_of(&serve(&["-d", "memory_limit"]), &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("memory_limit") && err.contains("no value"),
        "{err}"
    );
    assert!(!err.contains("PHP Warning"), "{err}");
}

#[test]
fn php_ini_naming_a_directory_says_so() {
    let dir = TempDir::new("inidir");
    let (code, err) = exit_of(&serve(&["--php-ini", dir.path().to_str().unwrap()]), &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is a directory"), "{err}");
}

#[test]
fn a_bad_toml_file_prints_one_line() {
    let dir = TempDir::new("badtoml");
    let cfg = dir.path().join("spindle.toml");
    std::fs::write(&cfg, "workers = 2\nlisten = [\n").unwrap();
    let (code, err) = exit_of(&serve(&["--config", cfg.to_str().unwrap()]), &[]);
    assert_eq!(code, Some(2), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("spindle.toml") && lines[0].contains("line "),
        "{err}"
    );
}

#[test]
fn every_configuration_error_exits_2_and_runtime_failures_1() {
    for extra in [
        &["--workers", "0"][..],
        &["--no-such-flag"],
        &["--listen", "nowhere"],
        &["--max-header-size", "1K"],
        &["--symlinks", "sometimes"],
    ] {
        let (code, err) = exit_of(&serve(extra), &[]);
        assert_eq!(code, Some(2), "{extra:?}: {err}");
    }
    let (code, err) = exit_of(&["serve", "/nonexistent/docroot"], &[]);
    assert_eq!(code, Some(2), "{err}");

    // Not a configuration error: the address is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let fx = fixtures();
    let (code, err) = exit_of(
        &[
            "serve",
            fx.to_str().unwrap(),
            "--listen",
            &addr,
            "--workers",
            "1",
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{err}");
}

#[test]
fn worker_match_options_are_checked_and_named() {
    // Each case: the extra arguments, the option the message must name and
    // a word of the reason.
    for (extra, option, why) in [
        (
            &["--worker-match", "/api/*"][..],
            "--worker-match",
            "needs --worker",
        ),
        (
            &["--worker", "worker/echo.php", "--worker-processes", "1"],
            "--worker-processes",
            "only with --worker-match",
        ),
        (
            &["--worker", "worker/echo.php", "--worker-match", "api/*"],
            "--worker-match",
            "starts with /",
        ),
        (
            &["--worker", "worker/echo.php", "--worker-match", "/api/[x"],
            "--worker-match",
            "/api/[x",
        ),
        (
            &[
                "--worker",
                "worker/echo.php",
                "--worker-match",
                "/api/*",
                "--worker-processes",
                "3",
            ],
            "--worker-processes",
            "between 1 and 1",
        ),
    ] {
        // Two workers unless the case says otherwise.
        let mut args = serve(extra);
        if !extra.contains(&"--workers") {
            args[5] = "2".into();
        }
        let (code, err) = exit_of(&args, &[]);
        assert_eq!(code, Some(2), "{extra:?}: {err}");
        let line = last_line(&err);
        assert!(
            line.contains(option) && line.contains(why),
            "{extra:?}: {err}"
        );
    }
    // `serve()` passes --workers 1: one process cannot be both kinds.
    let (code, err) = exit_of(
        &serve(&["--worker", "worker/echo.php", "--worker-match", "/api/*"]),
        &[],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(last_line(&err).contains("--workers"), "{err}");
}
