//! One settings model: built-in defaults < --config TOML < SPINDLE_* env < flags.

mod support;

use support::{client, run_to_exit, Server, TempDir};

fn write_config(dir: &TempDir, body: &str) -> String {
    let p = dir.path().join("spindle.toml");
    std::fs::write(&p, body).unwrap();
    p.to_string_lossy().into_owned()
}

fn ini(s: &Server) -> String {
    client()
        .get(s.url("/ini.php"))
        .send()
        .unwrap()
        .text()
        .unwrap()
}

#[test]
fn the_file_sets_what_env_and_flags_do_not() {
    let dir = TempDir::new("config");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(
        root.join("ini.php"),
        "<?php echo ini_get('memory_limit'), ' ', tokio_worker_id();",
    )
    .unwrap();
    std::fs::write(
        root.join("mark.php"),
        "<?php error_log('config-test-mark');",
    )
    .unwrap();
    let cfg = write_config(
        &dir,
        &format!(
            "docroot = \"{}\"\nlisten = \"127.0.0.1:0\"\nworkers = 1\ndefine = [\"memory_limit=77M\"]\naccess-log = false\n",
            root.display()
        ),
    );
    // The file alone.
    let s = Server::start_args(&["serve".into(), "--config".into(), cfg.clone()], &[]);
    assert!(ini(&s).starts_with("77M 1"));
    assert!(s.log().contains("workers=1"), "{}", s.log());
    // A later request's PHP log line: by the time it is logged, the access
    // line of /ini.php would have been (issue 10, item 6: no sleep).
    client().get(s.url("/mark.php")).send().unwrap();
    let timeout = std::time::Duration::from_secs(5);
    assert!(s.wait_for_log("config-test-mark", timeout), "{}", s.log());
    assert!(
        !s.log().contains("path=/ini.php"),
        "access-log = false: {}",
        s.log()
    );
    drop(s);
    // The environment beats the file; a flag beats both. access-log = true
    // (from the environment) logs the very line looked for above, so that
    // check can fail.
    let s = Server::start_args(
        &["serve".into(), "--config".into(), cfg.clone()],
        &[("SPINDLE_WORKERS", "2"), ("SPINDLE_ACCESS_LOG", "on")],
    );
    assert!(s.log().contains("workers=2"), "{}", s.log());
    ini(&s);
    assert!(s.wait_for_log("path=/ini.php", timeout), "{}", s.log());
    drop(s);
    let s = Server::start_args(
        &[
            "serve".into(),
            "--config".into(),
            cfg,
            "--workers".into(),
            "3".into(),
            "-d".into(),
            "memory_limit=55M".into(),
        ],
        &[("SPINDLE_WORKERS", "2")],
    );
    assert!(s.log().contains("workers=3"), "{}", s.log());
    // -d from the file and the flag add up; the flag comes last and wins.
    assert!(ini(&s).starts_with("55M"));
}

#[test]
fn bad_files_name_the_key() {
    let dir = TempDir::new("badconfig");
    let fixtures = support::fixtures();
    let fx = fixtures.to_str().unwrap();
    let cfg = write_config(&dir, "workerz = 3\n");
    let (ok, err) = run_to_exit(&["serve", fx, "--config", &cfg]);
    assert!(!ok);
    assert!(err.contains("unknown key 'workerz'"), "{err}");
    assert!(err.contains("workers"), "lists the accepted keys: {err}");

    let cfg = write_config(&dir, "workers = \"many\"\n");
    let (ok, err) = run_to_exit(&["serve", fx, "--config", &cfg]);
    assert!(!ok);
    assert!(err.contains("--workers") && err.contains("many"), "{err}");

    let cfg = write_config(&dir, "access-log = \"sometimes\"\n");
    let (ok, err) = run_to_exit(&["serve", fx, "--config", &cfg]);
    assert!(!ok);
    assert!(
        err.contains("--access-log") && err.contains("on or off"),
        "{err}"
    );

    let cfg = write_config(&dir, "this is not toml\n");
    let (ok, err) = run_to_exit(&["serve", fx, "--config", &cfg]);
    assert!(!ok);
    assert!(err.contains("--config"), "{err}");

    let (ok, err) = run_to_exit(&["serve", fx, "--config", "/nonexistent/spindle.toml"]);
    assert!(!ok);
    assert!(err.contains("/nonexistent/spindle.toml"), "{err}");
}

#[test]
fn php_info_shows_the_effective_php_configuration() {
    let out = std::process::Command::new(support::binary())
        .args(["php-info", "-d", "memory_limit=123M"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Server API => Spindle"), "{text}");
    assert!(text.contains("memory_limit => 123M => 123M"));
    assert!(text.contains("Loaded Configuration File => /etc/php/8.2/embed/php.ini"));
    assert!(text.contains("opcache.enable => On"));
}
