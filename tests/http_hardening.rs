//! Request validation and symlink handling that an adversarial review found
//! lacking (issue 9, items 6 to 9): each test sends what nginx refuses and
//! checks that Spindle refuses it the same way.

mod support;

use std::os::unix::fs::symlink;

use support::{client, Server, TempDir};

fn status_line(raw: &str) -> &str {
    raw.lines().next().unwrap_or("")
}

fn responses(raw: &str) -> usize {
    raw.matches("HTTP/1.1 ").count()
}

/// Issue 9, item 6: HTTP/1.1 needs exactly one valid Host (RFC 9112 3.2).
#[test]
fn host_is_required_single_and_valid() {
    let s = Server::start(&["--workers", "1"]);
    for req in [
        &b"GET /hello.php HTTP/1.1\r\nConnection: close\r\n\r\n"[..],
        b"GET /hello.php HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
        b"GET /hello.php HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n",
        b"GET /hello.php HTTP/1.1\r\nHost: a/b\r\nConnection: close\r\n\r\n",
        b"GET /info.php HTTP/1.1\r\nHost: <script>\r\nConnection: close\r\n\r\n",
        b"GET /static/style.css HTTP/1.1\r\nHost: ../x\r\nConnection: close\r\n\r\n",
    ] {
        let raw = s.raw(req);
        assert!(
            status_line(&raw).starts_with("HTTP/1.1 400"),
            "{:?} -> {raw:?}",
            String::from_utf8_lossy(req)
        );
    }
    // HTTP/1.0 had no Host; it still works.
    let raw = s.raw(b"GET /hello.php HTTP/1.0\r\n\r\n");
    assert!(status_line(&raw).starts_with("HTTP/1.0 200"), "{raw}");
    let raw = s.raw(b"GET /hello.php HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n");
    assert!(status_line(&raw).starts_with("HTTP/1.1 200"), "{raw}");
}

/// Issue 9, item 6: an absolute-form target's authority wins over Host.
#[test]
fn absolute_form_authority_wins_over_host() {
    let s = Server::start(&["--workers", "1"]);
    let raw = s.raw(
        b"GET http://good.example:8080/info.php HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    );
    assert!(status_line(&raw).starts_with("HTTP/1.1 200"), "{raw}");
    let body = &raw[raw.find("\r\n\r\n").unwrap() + 4..];
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["server"]["SERVER_NAME"], "good.example", "{body}");
    assert_eq!(v["server"]["HTTP_HOST"], "good.example:8080", "{body}");
}

/// Issue 9, item 7: `GET //static` must not redirect to `//static/`, which a
/// browser reads as the host `static`.
#[test]
fn directory_redirects_are_path_absolute() {
    let s = Server::start(&["--workers", "1"]);
    for (path, want) in [
        ("//static", "/static/"),
        ("///static?x=1", "/static/?x=1"),
        ("/static", "/static/"),
    ] {
        let r = client().get(s.url(path)).send().unwrap();
        assert_eq!(r.status(), 301, "{path}");
        assert_eq!(r.headers()["location"], want, "{path}");
    }
}

/// Issue 9, item 8: only `Transfer-Encoding: chunked` frames a body; a
/// request smuggled behind `identity, chunked` never runs.
#[test]
fn unknown_transfer_codings_get_501_and_hide_nothing() {
    let s = Server::start(&["--workers", "1"]);
    let raw = s.raw(
        b"POST /hello.php HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n\
          0\r\n\r\nGET /pid.php HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert!(status_line(&raw).starts_with("HTTP/1.1 501"), "{raw}");
    assert_eq!(responses(&raw), 1, "the hidden request ran: {raw}");
    // Plain chunked still works.
    let raw = s.raw(
        b"POST /hello.php HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
          3\r\nabc\r\n0\r\n\r\n",
    );
    assert!(status_line(&raw).starts_with("HTTP/1.1 200"), "{raw}");
}

/// Issue 9, item 8: an expectation we cannot meet is 417 (RFC 9110 10.1.1).
#[test]
fn unknown_expectations_get_417() {
    let s = Server::start(&["--workers", "1"]);
    let raw = s.raw(b"GET /hello.php HTTP/1.1\r\nHost: a\r\nExpect: the-unexpected\r\n\r\n");
    assert!(status_line(&raw).starts_with("HTTP/1.1 417"), "{raw}");
    let raw = s.raw(
        b"POST /hello.php HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    );
    assert!(raw.contains("HTTP/1.1 200"), "{raw}");
}

/// Issue 9, item 8: a head between the limit and twice the limit got
/// through hyper's buffer check.
#[test]
fn heads_just_over_the_limit_get_431() {
    let s = Server::start(&["--workers", "1", "--max-header-size", "64K"]);
    for size in [66 * 1024, 100 * 1024] {
        let big = "a".repeat(size);
        let raw = s.raw(
            format!(
                "GET /hello.php HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        assert!(
            status_line(&raw).starts_with("HTTP/1.1 431"),
            "{size}: {}",
            status_line(&raw)
        );
    }
    let big = "a".repeat(60 * 1024);
    let raw = s.raw(
        format!("GET /hello.php HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert!(status_line(&raw).starts_with("HTTP/1.1 200"), "{raw}");
}

/// Issue 9, item 8: with a large --max-header-size, a head too large for
/// the worker's receive buffer is refused in the master; the worker lives.
#[test]
fn heads_too_large_for_a_worker_get_431_and_the_worker_lives() {
    let s = Server::start(&["--workers", "1", "--max-header-size", "2M"]);
    let pid_before = client()
        .get(s.url("/pid.php"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let big = "a".repeat(600 * 1024);
    let raw = s.raw(
        format!("GET /hello.php HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert!(
        status_line(&raw).starts_with("HTTP/1.1 431"),
        "{}",
        status_line(&raw)
    );
    let pid_after = client()
        .get(s.url("/pid.php"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(pid_before, pid_after, "the worker was replaced");
    // A static file takes no worker: the same head is fine there.
    let raw = s.raw(
        format!(
            "GET /static/style.css HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert!(
        status_line(&raw).starts_with("HTTP/1.1 200"),
        "{}",
        status_line(&raw)
    );
}

/// A document root with links out of it, as Debian's MediaWiki and
/// DokuWiki packages have, and a text file that links to PHP source.
fn linked_tree() -> (TempDir, std::path::PathBuf) {
    let d = TempDir::new("symlinks");
    let root = d.path().join("root");
    let data = d.path().join("var-lib");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(data.join("images")).unwrap();
    std::fs::write(data.join("images/logo.png"), "PNG").unwrap();
    std::fs::write(data.join("plugin.php"), "<?php echo 'plugin';").unwrap();
    symlink(data.join("images"), root.join("images")).unwrap();
    symlink(data.join("plugin.php"), root.join("plugin.php")).unwrap();
    std::fs::write(root.join("config.php"), "<?php $secret = 'hunter2';").unwrap();
    symlink(root.join("config.php"), root.join("config.txt")).unwrap();
    std::fs::write(root.join(".env"), "SECRET=1").unwrap();
    symlink(root.join(".env"), root.join("env.txt")).unwrap();
    (d, root)
}

/// Issue 9, item 9: symlinks out of the root are followed by default, as
/// nginx does; `--symlinks inside` keeps them in.
#[test]
fn symlinks_are_followed_by_default() {
    let (_d, root) = linked_tree();
    let s = Server::start_in(&root, &["--workers", "1"]);
    let r = client().get(s.url("/images/logo.png")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), "PNG");
    let r = client().get(s.url("/plugin.php")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), "plugin");
    drop(s);

    let s = Server::start_in(&root, &["--workers", "1", "--symlinks", "inside"]);
    for p in ["/images/logo.png", "/plugin.php"] {
        assert_eq!(client().get(s.url(p)).send().unwrap().status(), 404, "{p}");
    }
}

/// Issue 9, item 9: `--symlinks owner` follows a link only to a target of
/// the same owner (nginx's `disable_symlinks if_not_owner`).
#[test]
fn symlinks_owner_mode_compares_owners() {
    use std::os::unix::fs::lchown;
    let (_d, root) = linked_tree();
    // Needs two users: the test runs as root (as the suite does here) and
    // gives one link to `nobody`.
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root to chown a symlink"
    );
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    lchown(root.join("images"), Some(nobody.uid.as_raw()), None).unwrap();
    let s = Server::start_in(&root, &["--workers", "1", "--symlinks", "owner"]);
    assert_eq!(
        client()
            .get(s.url("/images/logo.png"))
            .send()
            .unwrap()
            .status(),
        404
    );
    let r = client().get(s.url("/plugin.php")).send().unwrap();
    assert_eq!(r.status(), 200, "same owner: followed");
}

/// Issue 9, item 9: a static file whose target is PHP source (or a dotfile)
/// is never sent, whatever the mode.
#[test]
fn links_to_php_source_are_never_sent() {
    let (_d, root) = linked_tree();
    for mode in ["follow", "owner", "inside"] {
        let s = Server::start_in(&root, &["--workers", "1", "--symlinks", mode]);
        for p in ["/config.txt", "/env.txt"] {
            let r = client().get(s.url(p)).send().unwrap();
            assert_eq!(r.status(), 404, "{mode} {p}");
            let body = r.text().unwrap();
            assert!(
                !body.contains("SECRET") && !body.contains("hunter2"),
                "{mode} {p}"
            );
        }
    }
}
