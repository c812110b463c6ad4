//! Routing, static files and the document root boundary.

mod support;

use support::{client, Server, TempDir};

#[test]
fn directories_map_to_their_index() {
    let s = Server::start(&[]);
    let c = client();
    assert_eq!(
        c.get(s.url("/")).send().unwrap().text().unwrap(),
        "fixtures index"
    );
    let r = c.get(s.url("/sub")).send().unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(r.headers()["location"], "/sub/");
    let r = c.get(s.url("/sub/")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().unwrap().contains("sub index"));
    assert_eq!(
        c.get(s.url("/static/")).send().unwrap().status(),
        404,
        "no directory listings"
    );
    assert_eq!(c.get(s.url("/nope.php")).send().unwrap().status(), 404);
    assert_eq!(c.get(s.url("/nope/")).send().unwrap().status(), 404);
}

#[test]
fn static_files_have_type_validators_and_304() {
    let s = Server::start(&[]);
    let c = client();
    let r = c.get(s.url("/static/style.css")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/css");
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let modified = r.headers()["last-modified"].to_str().unwrap().to_string();
    assert_eq!(r.text().unwrap(), "body { color: red; }\n");
    assert_eq!(
        c.get(s.url("/static/data.json")).send().unwrap().headers()["content-type"],
        "application/json"
    );

    let r = c
        .get(s.url("/static/style.css"))
        .header("If-None-Match", &etag)
        .send()
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.text().unwrap(), "");
    let r = c
        .get(s.url("/static/style.css"))
        .header("If-Modified-Since", &modified)
        .send()
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = c
        .get(s.url("/static/style.css"))
        .header("If-None-Match", "\"other\"")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .get(s.url("/static/style.css"))
        .header("If-Modified-Since", "Mon, 01 Jan 1990 00:00:00 GMT")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);

    let r = c.head(s.url("/static/style.css")).send().unwrap();
    assert_eq!(r.headers()["content-length"], "21");
    assert_eq!(
        c.post(s.url("/static/style.css")).send().unwrap().status(),
        405
    );
}

#[test]
fn large_static_files_stream_complete() {
    let dir = TempDir::new("bigstatic");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("blob.bin"), &data).unwrap();
    let s = Server::start_in(dir.path(), &[]);
    let r = client().get(s.url("/blob.bin")).send().unwrap();
    assert_eq!(r.headers()["content-length"], "3000000");
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    assert!(r.bytes().unwrap() == data);
}

#[test]
fn php_source_dotfiles_and_traversal_are_never_served() {
    let s = Server::start(&[]);
    // .php always runs, never shows its source.
    let body = client()
        .get(s.url("/hello.php"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!body.contains("<?php"));
    for path in [
        "/.env",
        "/%2eenv",
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/%2E%2E/Cargo.toml",
        "/sub/..%2f..%2fCargo.toml",
        "/static/%2e%2e/%2e%2e/Cargo.toml",
        "/..%2fCargo.toml",
        "/config.php.bak",
    ] {
        let raw = s
            .raw(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
        let status = raw.lines().next().unwrap_or("");
        assert!(
            status.contains(" 404 ") || status.contains(" 400 "),
            "{path}: {status}"
        );
        assert!(
            !raw.contains("SECRET") && !raw.contains("[package]"),
            "{path} leaked: {raw}"
        );
    }
}

/// With `--symlinks inside` (the default is `follow`, as nginx: see
/// http_hardening.rs).
#[test]
fn symlinks_leaving_the_root_are_refused_when_inside() {
    let dir = TempDir::new("symlink");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(dir.path().join("secret.txt"), "outside-secret").unwrap();
    std::fs::write(
        dir.path().join("outside.php"),
        "<?php echo 'outside-script';",
    )
    .unwrap();
    std::fs::write(root.join("inside.txt"), "inside").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("outside.php"), root.join("leak.php")).unwrap();
    std::os::unix::fs::symlink(dir.path(), root.join("up")).unwrap();
    std::os::unix::fs::symlink(root.join("inside.txt"), root.join("alias.txt")).unwrap();
    let s = Server::start_in(&root, &["--symlinks", "inside"]);
    let c = client();
    for p in [
        "/leak.txt",
        "/leak.php",
        "/up/secret.txt",
        "/up/outside.php",
    ] {
        let r = c.get(s.url(p)).send().unwrap();
        assert_eq!(r.status(), 404, "{p}");
        let body = r.text().unwrap();
        assert!(!body.contains("outside"), "{p}: {body}");
    }
    // A symlink that stays inside is fine.
    assert_eq!(
        c.get(s.url("/alias.txt")).send().unwrap().text().unwrap(),
        "inside"
    );
}

#[test]
fn front_controller_serves_every_non_file_path() {
    let root = support::fixtures().join("app");
    let s = Server::start_in(&root, &["--front-controller", "index.php"]);
    let c = client();
    let r = c.get(s.url("/blog/42?page=2")).send().unwrap();
    let v: serde_json::Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    assert_eq!(v["front"], true);
    assert_eq!(v["script_name"], "/index.php");
    assert_eq!(v["path_info"], "/blog/42");
    assert_eq!(v["request_uri"], "/blog/42?page=2");
    let v: serde_json::Value =
        serde_json::from_str(&c.get(s.url("/")).send().unwrap().text().unwrap()).unwrap();
    assert_eq!(v["front"], true);
    // Existing files are still served as themselves.
    let r = c.get(s.url("/assets/app.css")).send().unwrap();
    assert_eq!(r.headers()["content-type"], "text/css");
    assert_eq!(
        c.get(s.url("/other.php")).send().unwrap().text().unwrap(),
        "other script"
    );
}

/// Debian's WordPress is served from a directory of links into
/// /usr/share/wordpress (tests/apps_debian.rs): a front controller that is a
/// symlink to a script outside the document root must be accepted, as nginx's
/// `try_files ... /index.php` accepts it, unless `--symlinks inside`.
#[test]
fn front_controller_may_be_a_symlink() {
    let dir = TempDir::new("front-link");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::copy(
        support::fixtures().join("app/index.php"),
        dir.path().join("real-index.php"),
    )
    .unwrap();
    std::os::unix::fs::symlink(dir.path().join("real-index.php"), root.join("index.php")).unwrap();
    let s = Server::start_in(&root, &["--front-controller", "index.php"]);
    let r = client().get(s.url("/2024/hello/")).send().unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    assert_eq!(v["script_name"], "/index.php");
    assert_eq!(v["request_uri"], "/2024/hello/");
    drop(s);

    let root = root.display().to_string();
    let (ok, err) = support::run_to_exit(&[
        "serve",
        &root,
        "--front-controller",
        "index.php",
        "--symlinks",
        "inside",
    ]);
    assert!(!ok && err.contains("--front-controller"), "{err}");
    let (ok, err) =
        support::run_to_exit(&["serve", &root, "--front-controller", "../real-index.php"]);
    assert!(!ok && err.contains("--front-controller"), "{err}");
}

#[test]
fn byte_ranges_of_static_files() {
    let dir = TempDir::new("ranges");
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 241) as u8).collect();
    std::fs::write(dir.path().join("video.bin"), &data).unwrap();
    let s = Server::start_in(dir.path(), &[]);
    let c = client();
    let full = c.get(s.url("/video.bin")).send().unwrap();
    assert_eq!(full.headers()["accept-ranges"], "bytes");
    let etag = full.headers()["etag"].to_str().unwrap().to_string();

    let r = c
        .get(s.url("/video.bin"))
        .header("Range", "bytes=100-199")
        .send()
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 100-199/1000000");
    assert_eq!(r.headers()["content-length"], "100");
    assert_eq!(r.bytes().unwrap(), &data[100..200]);

    // Suffix and open-ended ranges; a large one streams from disk.
    let r = c
        .get(s.url("/video.bin"))
        .header("Range", "bytes=-10")
        .send()
        .unwrap();
    assert_eq!(r.bytes().unwrap(), &data[999_990..]);
    let r = c
        .get(s.url("/video.bin"))
        .header("Range", "bytes=300000-")
        .send()
        .unwrap();
    assert_eq!(r.headers()["content-range"], "bytes 300000-999999/1000000");
    assert!(r.bytes().unwrap() == data[300_000..]);

    // Beyond the end: 416 with the size.
    let r = c
        .get(s.url("/video.bin"))
        .header("Range", "bytes=2000000-")
        .send()
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */1000000");

    // If-Range: the range only applies to the same version of the file.
    let r = c
        .get(s.url("/video.bin"))
        .header("Range", "bytes=0-9")
        .header("If-Range", &etag)
        .send()
        .unwrap();
    assert_eq!(r.status(), 206);
    let r = c
        .get(s.url("/video.bin"))
        .header("Range", "bytes=0-9")
        .header("If-Range", "\"old\"")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().unwrap().len(), 1_000_000);
}

#[test]
fn edited_static_files_are_served_fresh() {
    let dir = TempDir::new("fresh");
    let f = dir.path().join("app.css");
    std::fs::write(&f, "a{color:red}").unwrap();
    let s = Server::start_in(dir.path(), &[]);
    let c = client();
    assert_eq!(
        c.get(s.url("/app.css")).send().unwrap().text().unwrap(),
        "a{color:red}"
    );
    assert_eq!(
        c.get(s.url("/app.css")).send().unwrap().text().unwrap(),
        "a{color:red}"
    );
    // Same length, new content; then a new length.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&f, "a{color:tan}").unwrap();
    assert_eq!(
        c.get(s.url("/app.css")).send().unwrap().text().unwrap(),
        "a{color:tan}"
    );
    std::fs::write(&f, "a{color:rebeccapurple}").unwrap();
    assert_eq!(
        c.get(s.url("/app.css")).send().unwrap().text().unwrap(),
        "a{color:rebeccapurple}"
    );
    std::fs::remove_file(&f).unwrap();
    assert_eq!(c.get(s.url("/app.css")).send().unwrap().status(), 404);
}
