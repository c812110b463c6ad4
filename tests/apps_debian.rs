//! Debian's packaged PHP applications (DokuWiki, MediaWiki, WordPress,
//! phpMyAdmin) served by Spindle and, side by side, by nginx + php-fpm, each
//! set up as its README.Debian says. Every test drives one application
//! through what a user does (log in, edit, post, upload, query) over HTTP on
//! both servers, checks each step, and asserts that both servers gave the
//! same answers: status, content type, redirect target, the response headers
//! applications and browsers act on, the page's title and its links (see
//! `summary`). `scripts/deps.sh test` installs the packages and
//! mariadb-server; each test starts its own MariaDB. docs/applications.md
//! says what was found.
//!
//! Each server gets its own instance of the application (its own database
//! or data directory), named by a unique host name that the client sends in
//! `Host` (Debian's WordPress, DokuWiki and phpMyAdmin pick their
//! configuration by host). The configuration files these packages read from
//! /etc are written under that unique name and removed afterwards, so tests
//! may run in parallel; that needs root, as CI runs.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use reqwest::blocking::{multipart, Client};
use support::engines::MariaDb;
use support::fpm::{php_user, NginxFpm};
use support::{Server, TempDir};

// ---------------------------------------------------------------------------
// The two servers

/// nginx's PHP location, as Debian's default site has it, with
/// snippets/fastcgi-php.conf written out (its relative `include` would
/// resolve next to our nginx.conf): PATH_INFO split off, 404 for a missing
/// script.
const NGINX_PHP: &str = "
    location ~ [^/]\\.php(/|$) {
        fastcgi_split_path_info ^(.+?\\.php)(/.*)$;
        try_files $fastcgi_script_name =404;
        set $path_info $fastcgi_path_info;
        fastcgi_param PATH_INFO $path_info;
        fastcgi_index index.php;
        include /etc/nginx/fastcgi.conf;
        fastcgi_pass unix:{fpm};
    }";

/// One application instance behind one server, and a browser for it: a
/// client with its own cookie jar that sends `host` and reaches the server
/// whatever port the application puts in its links.
struct Site {
    label: &'static str,
    addr: SocketAddr,
    host: String,
    base: String,
    http: Client,
    spindle: Option<Server>,
    nginx: Option<NginxFpm>,
}

/// A unique host name for one application instance.
fn host_name(app: &str, label: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{app}-{}-{}-{label}.test",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn browser(host: &str, addr: SocketAddr) -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .resolve(host, addr)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

impl Site {
    /// `spindle serve docroot` as www-data (when root), plus `extra`.
    fn spindle(host: String, docroot: &Path, extra: &[&str], env: &[(&str, &str)]) -> Site {
        let mut args: Vec<String> = vec![
            "serve".into(),
            docroot.display().to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--workers".into(),
            "2".into(),
            "--access-log".into(),
            "off".into(),
        ];
        if let Some(user) = php_user() {
            args.extend(["--user".into(), user.into()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let server = Server::start_args(&args, env);
        Site {
            label: "spindle",
            addr: server.addr,
            base: format!("http://{host}:{}", server.addr.port()),
            http: browser(&host, server.addr),
            host,
            spindle: Some(server),
            nginx: None,
        }
    }

    /// nginx + php-fpm with `server` as the server block (see NginxFpm).
    fn nginx(host: String, server: &str, env: &[(&str, &str)]) -> Site {
        let pair = NginxFpm::start(server, env, &[]);
        let addr: SocketAddr = ([127, 0, 0, 1], pair.port).into();
        Site {
            label: "nginx",
            addr,
            base: format!("http://{host}:{}", pair.port),
            http: browser(&host, addr),
            host,
            spindle: None,
            nginx: Some(pair),
        }
    }

    /// The application lives under `prefix` (e.g. `/phpmyadmin`): paths
    /// given to `get` and `post` are below it.
    fn under(mut self, prefix: &str) -> Site {
        self.base.push_str(prefix);
        self
    }

    /// A redirect's target (absolute, or a path from the server's root) as
    /// an absolute URL.
    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http") {
            return location.to_string();
        }
        let root = &self.base[..self.base[7..].find('/').map_or(self.base.len(), |i| i + 7)];
        format!("{root}{location}")
    }

    /// The server's log, for failure messages.
    fn log(&self) -> String {
        match (&self.spindle, &self.nginx) {
            (Some(s), _) => s.log(),
            (_, Some(n)) => n.log(),
            _ => String::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    fn send(&self, what: String, req: reqwest::blocking::RequestBuilder) -> Page {
        let resp = req
            .send()
            .unwrap_or_else(|e| panic!("{}: {what}: {e}\n{}", self.label, self.log()));
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        let content_type = header("content-type");
        let location = header("location");
        let mut headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        headers.sort();
        let body = resp.bytes().unwrap().to_vec();
        Page {
            what,
            site: self.label,
            status,
            content_type,
            location,
            headers,
            body,
        }
    }

    fn get(&self, path: &str) -> Page {
        let shown = if path.starts_with("http") {
            self.local(path)
        } else {
            path.to_string()
        };
        self.send(format!("GET {shown}"), self.http.get(self.url(path)))
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(
            format!("POST {path}"),
            self.http.post(self.url(path)).form(form),
        )
    }

    fn post_multipart(&self, path: &str, form: multipart::Form) -> Page {
        self.send(
            format!("POST {path} (multipart)"),
            self.http.post(self.url(path)).multipart(form),
        )
    }

    /// The redirect's target made into a path on this site, for comparing
    /// the two servers (which differ in host and port).
    fn local(&self, location: &str) -> String {
        if !location.starts_with('/') && !location.starts_with("http") {
            return location.to_string();
        }
        let absolute = self.absolute(location);
        match absolute.strip_prefix(&self.base) {
            Some(rest) => rest.to_string(),
            None => absolute,
        }
    }
}

/// One response.
struct Page {
    what: String,
    site: &'static str,
    status: u16,
    content_type: Option<String>,
    location: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Page {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The media type, without parameters.
    fn mime(&self) -> String {
        self.content_type
            .as_deref()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap()
            .trim()
            .to_ascii_lowercase()
    }

    fn title(&self) -> String {
        capture(&self.text(), r"(?s)<title>(.*?)</title>").unwrap_or_default()
    }

    /// Panics, showing the page, unless the status is `status`.
    fn expect(self, status: u16) -> Page {
        assert_eq!(
            self.status,
            status,
            "{}: {}: status {} (location {:?}), body:\n{}",
            self.site,
            self.what,
            self.status,
            self.location,
            tail(&self.text())
        );
        self
    }

    /// Panics, showing the page, unless the body contains `needle`.
    fn contains(self, needle: &str) -> Page {
        assert!(
            self.text().contains(needle),
            "{}: {}: no {needle:?} in:\n{}",
            self.site,
            self.what,
            tail(&self.text())
        );
        self
    }

    /// The value of the hidden input `name` in the page.
    fn input(&self, name: &str) -> String {
        let re = format!(r#"<input[^>]*name="{}"[^>]*>"#, regex::escape(name));
        let tag = capture_all(&self.text(), &re)
            .into_iter()
            .next()
            .unwrap_or_else(|| {
                panic!(
                    "{}: {}: no input {name:?} in:\n{}",
                    self.site,
                    self.what,
                    tail(&self.text())
                )
            });
        capture(&tag, r#"value="([^"]*)""#).unwrap_or_default()
    }
}

/// The end of a long page, where errors usually are.
fn tail(s: &str) -> &str {
    let mut start = s.len().saturating_sub(3000);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

fn capture(text: &str, re: &str) -> Option<String> {
    regex::Regex::new(re)
        .unwrap()
        .captures(text)
        .map(|c| c.get(1).unwrap().as_str().to_string())
}

fn capture_all(text: &str, re: &str) -> Vec<String> {
    regex::Regex::new(re)
        .unwrap()
        .find_iter(text)
        .map(|m| m.as_str().to_string())
        .collect()
}

/// What a user would notice of a response, with the server's host and
/// port, and the values that differ between any two instances (tokens,
/// times), taken out: two servers that behave alike give equal lines.
fn summary(site: &Site, page: &Page, extra: &str) -> String {
    let location = page
        .location
        .as_deref()
        .map(|l| site.local(l))
        .unwrap_or_default();
    let links = if page.mime() == "text/html" {
        links(site, page)
    } else {
        String::new()
    };
    format!(
        "{} -> {} {} {} | {} | {} | {} | {}",
        page.what,
        page.status,
        page.mime(),
        location,
        headers(site, page),
        normalize(site, &page.title()),
        normalize(site, extra),
        links
    )
}

/// The response headers an application or a browser acts on: cookies
/// (name and attributes), caching, downloads, security policies. Headers
/// that the two servers set of their own accord (Date, Server, framing,
/// nginx's `Connection: keep-alive`, ETag and Last-Modified of static
/// files) are left out; Content-Type and Location are compared on their own.
fn headers(site: &Site, page: &Page) -> String {
    let tokens = regex::Regex::new(r"[0-9a-f]{10,}|\b\d{9,}\b|nonce-[^' ]+").unwrap();
    let mut out = Vec::new();
    for (name, value) in &page.headers {
        let value = match name.as_str() {
            "date" | "server" | "content-length" | "transfer-encoding" | "connection"
            | "keep-alive" | "etag" | "last-modified" | "accept-ranges" | "location"
            | "content-type" => continue,
            // The cookie's name and attributes; its value and expiry vary.
            "set-cookie" => {
                let mut parts = value.split(';').map(str::trim);
                let name = parts.next().unwrap_or("").split('=').next().unwrap_or("");
                let attrs: Vec<String> = parts
                    .filter(|a| !a.to_ascii_lowercase().starts_with("expires"))
                    .filter(|a| !a.to_ascii_lowercase().starts_with("max-age"))
                    .map(|a| a.to_ascii_lowercase())
                    .collect();
                format!("{name};{}", attrs.join(";"))
            }
            "expires" => "(date)".to_string(),
            _ => value.clone(),
        };
        let value = tokens
            .replace_all(&normalize(site, &value), "T")
            .into_owned();
        out.push(format!("{name}={value}"));
    }
    out.sort();
    out.dedup();
    out.join(" ")
}

/// `s` with this site's base URL (also percent-encoded), host and port,
/// and the database named after the host, replaced by placeholders.
fn normalize(site: &Site, s: &str) -> String {
    let encoded = site.base.replace(':', "%3A").replace('/', "%2F");
    let host_port = site.base["http://".len()..].split('/').next().unwrap();
    let db = site.host.split('.').next().unwrap().replace('-', "_");
    let s = s
        .replace(&site.base, "BASE")
        .replace(&encoded, "BASE")
        .replace(host_port, "HOST")
        .replace(&site.host, "HOST")
        .replace(&db, "DB");
    // WordPress files uploads by year and month, which may turn between
    // the two runs.
    let month = regex::Regex::new(r"/uploads/\d{4}/\d{2}/").unwrap();
    month.replace_all(&s, "/uploads/YYYY/MM/").into_owned()
}

/// The page's links, form targets and resources, sorted, with this site's
/// base URL and host, tokens and timestamps taken out. Links are built from
/// `$_SERVER` (script name, path info, host, port, scheme), so this is
/// where two servers that set it differently show it.
fn links(site: &Site, page: &Page) -> String {
    let tokens = regex::Regex::new(r"[0-9a-f]{10,}|tok=[0-9a-f]+|\b\d{9,}\b").unwrap();
    let mut all: Vec<String> = capture_all(&page.text(), r#"(?:href|src|action)="[^"]*""#)
        .into_iter()
        .map(|l| {
            let l = l.replace("&amp;", "&").replace("&#038;", "&");
            tokens.replace_all(&normalize(site, &l), "T").into_owned()
        })
        .collect();
    all.sort();
    all.dedup();
    all.join(" ")
}

/// Runs `flow` on both sites and asserts that their transcripts agree,
/// line by line.
fn same_on_both(spindle: &Site, nginx: &Site, flow: impl Fn(&Site) -> Vec<String>) {
    let a = flow(spindle);
    let b = flow(nginx);
    for (x, y) in a.iter().zip(&b) {
        if x != y {
            let xs: Vec<&str> = x.split(' ').collect();
            let ys: Vec<&str> = y.split(' ').collect();
            let only = |p: &[&str], q: &[&str]| {
                p.iter()
                    .filter(|w| !q.contains(w))
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            panic!(
                "spindle and nginx + php-fpm differ at\n{}\n\nonly from spindle: {}\nonly from nginx: {}",
                x.split(" | ").next().unwrap(),
                only(&xs, &ys),
                only(&ys, &xs)
            );
        }
    }
    assert_eq!(a.len(), b.len(), "{a:#?}\n{b:#?}");
}

/// Fails with what to do unless the test runs as root: Debian's packages
/// keep their configuration in /etc.
fn need_root(app: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "{app}: this test writes Debian's per-site configuration in /etc and runs PHP \
         as www-data, so it needs root (CI runs as root)"
    );
}

fn need_package(file: &str, package: &str) {
    assert!(
        Path::new(file).exists(),
        "{file} is missing: `scripts/deps.sh test` installs {package}"
    );
}

/// A document root holding only `name`, a link to `target`: Debian's
/// `Alias /name target` for Apache, the same for both servers here.
fn alias_root(name: &str, target: &str) -> TempDir {
    let root = TempDir::new(name);
    std::os::unix::fs::symlink(target, root.path().join(name)).unwrap();
    root
}

/// Removes files and directories on drop (configuration written in /etc).
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            if p.is_dir() {
                let _ = std::fs::remove_dir_all(p);
            } else {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Runs `cmd` to its end, at most two minutes; its stdout. Fails with its
/// output unless it succeeds.
fn run(cmd: &mut Command) -> String {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let end = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish in 120s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A small PNG (1x1, red), as a user would upload.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x08, 0xd7, 0x63, 0xf8, 0xcf, 0xc0, 0x00,
    0x00, 0x03, 0x01, 0x01, 0x00, 0x18, 0xdd, 0x8d, 0xb0, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

// ---------------------------------------------------------------------------
// DokuWiki

/// A DokuWiki "animal" made with Debian's `dokuwiki-addsite HOST` (virtual
/// host farming, README.Debian), with an admin user added as the script
/// does when asked.
fn dokuwiki_site(host: &str) -> Cleanup {
    let cleanup = Cleanup(vec![
        PathBuf::from(format!("/etc/dokuwiki/farm/{host}")),
        PathBuf::from(format!("/var/lib/dokuwiki/farm/{host}")),
    ]);
    run(Command::new("dokuwiki-addsite").args(["--no-admin", host]));
    let users = format!("/var/lib/dokuwiki/farm/{host}/acl/users.auth.php");
    let md5 = format!("{:x}", md5::compute("wiki-pass-1"));
    let mut text = std::fs::read_to_string(&users).unwrap();
    text.push_str(&format!(
        "tester:{md5}:Test User:tester@example.com:admin,user\n"
    ));
    std::fs::write(&users, text).unwrap();
    // DokuWiki's own URL rewriting (doku.php/page:id), which needs no
    // server rewrite rules but PATH_INFO.
    let local = format!("/etc/dokuwiki/farm/{host}/local.php");
    let mut text = std::fs::read_to_string(&local).unwrap();
    text.push_str("$conf['userewrite'] = 2;\n");
    std::fs::write(&local, text).unwrap();
    cleanup
}

fn dokuwiki_flow(site: &Site) -> Vec<String> {
    let mut t = Vec::new();

    // The wiki's directory, asked for without its slash, then its index,
    // which redirects to the start page.
    // (The servers' own redirect pages differ: nginx sends HTML, Spindle
    // plain text; browsers show neither.)
    let p = site.get("");
    let location = site.local(p.location.as_deref().unwrap_or_default());
    t.push(format!("GET (no slash) -> {} {location}", p.status));
    assert_eq!((p.status, location.as_str()), (301, "/"), "{}", site.label);
    let p = site.get("/");
    t.push(summary(site, &p, ""));
    let start = p.location.clone().unwrap_or_default();
    assert!(
        [301, 302, 303].contains(&p.status) && start.contains("doku.php"),
        "{}: / -> {} {start:?}",
        site.label,
        p.status
    );
    let p = site
        .get(&site.absolute(&start))
        .expect(200)
        .contains("This topic does not exist yet");
    t.push(summary(site, &p, ""));

    // Log in with the form and its security token.
    let p = site.get("/doku.php?id=start&do=login").expect(200);
    let sectok = p.input("sectok");
    t.push(summary(site, &p, ""));
    let p = site.post(
        "/doku.php?id=start&do=login",
        &[
            ("sectok", &sectok),
            ("id", "start"),
            ("do", "login"),
            ("u", "tester"),
            ("p", "wiki-pass-1"),
        ],
    );
    t.push(summary(site, &p, ""));
    let p = site
        .get("/doku.php?id=start")
        .expect(200)
        .contains("Test User");
    t.push(summary(site, &p, ""));

    // Create a page with the editor's form.
    let p = site.get("/doku.php?id=spindle:hello&do=edit").expect(200);
    let sectok = p.input("sectok");
    let changecheck = p.input("changecheck");
    t.push(summary(site, &p, ""));
    let p = site.post(
        "/doku.php?id=spindle:hello&do=edit",
        &[
            ("sectok", &sectok),
            ("id", "spindle:hello"),
            ("rev", "0"),
            ("date", ""),
            ("prefix", ""),
            ("suffix", ""),
            ("changecheck", &changecheck),
            ("target", "section"),
            (
                "wikitext",
                "====== Hello from a test ======\n\nSome **bold** text, äöü.\n",
            ),
            ("summary", "first"),
            ("do[save]", "1"),
        ],
    );
    t.push(summary(site, &p, ""));
    let p = site
        .get("/doku.php?id=spindle:hello")
        .expect(200)
        .contains("Hello from a test</h1>")
        .contains("<strong>bold</strong> text, äöü.");
    t.push(summary(site, &p, ""));
    // The same page by the URL DokuWiki now links to (path info).
    let p = site
        .get("/doku.php/spindle:hello")
        .expect(200)
        .contains("Hello from a test</h1>");
    assert!(
        p.text().contains("doku.php/spindle:hello?do=edit"),
        "{}: links are not doku.php/id: {}",
        site.label,
        tail(&p.text())
    );
    t.push(summary(site, &p, ""));

    // Upload an image with the media manager's form, then fetch it.
    let p = site
        .get("/doku.php?id=spindle:hello&do=media&ns=spindle")
        .expect(200);
    let sectok = p.input("sectok");
    t.push(summary(site, &p, ""));
    let form = multipart::Form::new()
        .text("sectok", sectok)
        .text("mediaid", "dot.png")
        .part(
            "upload",
            multipart::Part::bytes(PNG.to_vec())
                .file_name("dot.png")
                .mime_str("image/png")
                .unwrap(),
        );
    let p = site.post_multipart(
        "/doku.php?id=spindle:hello&do=media&ns=spindle&tab_files=upload",
        form,
    );
    t.push(summary(site, &p, ""));
    let p = site
        .get("/lib/exe/fetch.php?media=spindle:dot.png")
        .expect(200);
    assert_eq!(p.mime(), "image/png", "{}", site.label);
    assert_eq!(
        p.body, PNG,
        "{}: the uploaded image came back changed",
        site.label
    );
    t.push(summary(site, &p, &format!("{} bytes", p.body.len())));
    // fetch.php answers conditional and range requests itself (304, 206):
    // the server must pass them through untouched.
    let etag = p
        .headers
        .iter()
        .find(|(k, _)| k == "etag")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("{}: fetch.php sent no ETag", site.label));
    let p = site.send(
        "GET fetch.php If-None-Match".into(),
        site.http
            .get(site.url("/lib/exe/fetch.php?media=spindle:dot.png"))
            .header("If-None-Match", etag),
    );
    assert_eq!((p.status, p.body.len()), (304, 0), "{}", site.label);
    t.push(summary(site, &p, ""));
    let p = site.send(
        "GET fetch.php Range".into(),
        site.http
            .get(site.url("/lib/exe/fetch.php?media=spindle:dot.png"))
            .header("Range", "bytes=8-15"),
    );
    assert_eq!(p.status, 206, "{}", site.label);
    assert_eq!(p.body, &PNG[8..16], "{}", site.label);
    t.push(summary(site, &p, ""));

    // The template's CSS and JavaScript, built by PHP, and a static image
    // reached through Debian's lib/tpl symlink into /var/lib/dokuwiki.
    let p = site.get("/lib/exe/css.php?t=dokuwiki").expect(200);
    assert!(p.text().contains(".dokuwiki"), "{}: css.php", site.label);
    t.push(summary(site, &p, ""));
    // The task runner, which pages load as an image: it sends a GIF, then
    // goes on indexing.
    let p = site
        .get("/lib/exe/taskrunner.php?id=spindle:hello")
        .expect(200);
    assert_eq!(p.mime(), "image/gif", "{}", site.label);
    // It says `Connection: Close`; the server, not PHP, owns the connection.
    let close = p
        .headers
        .iter()
        .any(|(k, v)| k == "connection" && v.eq_ignore_ascii_case("close"));
    assert!(
        !close,
        "{}: the task runner closed the connection",
        site.label
    );
    t.push(summary(site, &p, ""));
    let p = site.get("/lib/exe/js.php?t=dokuwiki").expect(200);
    assert!(p.text().contains("DOKU_BASE"), "{}: js.php", site.label);
    t.push(summary(site, &p, ""));
    let p = site.get("/lib/tpl/dokuwiki/images/logo.png").expect(200);
    t.push(summary(site, &p, ""));
    t
}

#[test]
fn dokuwiki() {
    need_package("/usr/share/dokuwiki/doku.php", "dokuwiki");
    need_root("dokuwiki");
    // At http://host/dokuwiki/, as Debian's apache.conf serves it.
    let docroot = alias_root("dokuwiki", "/usr/share/dokuwiki");
    let sh = host_name("dw", "spindle");
    let nh = host_name("dw", "nginx");
    let _animals = (dokuwiki_site(&sh), dokuwiki_site(&nh));
    let spindle = Site::spindle(sh, docroot.path(), &[], &[]).under("/dokuwiki");
    let nginx = Site::nginx(
        nh,
        &format!(
            "root {};\n index index.php;\n\
             location ~ /dokuwiki/(conf|bin|inc|vendor)/ {{ deny all; }}\n{NGINX_PHP}",
            docroot.path().display()
        ),
        &[],
    )
    .under("/dokuwiki");
    same_on_both(&spindle, &nginx, dokuwiki_flow);
}

// ---------------------------------------------------------------------------
// WordPress

/// Debian's WordPress reads /etc/wordpress/config-HOST.php (README.Debian);
/// this one points at a database of the private MariaDB and at a
/// wp-content directory of its own (uploads, with Debian's themes and
/// plugins linked in).
struct WordPress {
    _config: Cleanup,
    content: TempDir,
}

fn wordpress_site(host: &str, db: &MariaDb) -> WordPress {
    let name = host.split('.').next().unwrap().replace('-', "_");
    db.database(&name, "wp-db-pass");
    let content = TempDir::new("wp-content");
    for dir in ["themes", "plugins", "languages"] {
        std::os::unix::fs::symlink(
            Path::new("/var/lib/wordpress/wp-content").join(dir),
            content.path().join(dir),
        )
        .unwrap();
    }
    std::fs::create_dir(content.path().join("uploads")).unwrap();
    if let Some(user) = php_user() {
        run(Command::new("chown").args([user, &content.path().display().to_string()]));
        run(Command::new("chown")
            .args([user, &content.path().join("uploads").display().to_string()]));
    }
    let file = PathBuf::from(format!("/etc/wordpress/config-{host}.php"));
    let mut keys = String::new();
    for k in [
        "AUTH_KEY",
        "SECURE_AUTH_KEY",
        "LOGGED_IN_KEY",
        "NONCE_KEY",
        "AUTH_SALT",
        "SECURE_AUTH_SALT",
        "LOGGED_IN_SALT",
        "NONCE_SALT",
    ] {
        keys.push_str(&format!("define('{k}', '{k}-{host}');\n"));
    }
    std::fs::write(
        &file,
        format!(
            "<?php\ndefine('DB_NAME', '{name}');\ndefine('DB_USER', '{name}');\n\
             define('DB_PASSWORD', 'wp-db-pass');\ndefine('DB_HOST', '127.0.0.1:{}');\n\
             define('WP_CONTENT_DIR', '{}');\n{keys}",
            db.port,
            content.path().display()
        ),
    )
    .unwrap();
    WordPress {
        _config: Cleanup(vec![file]),
        content,
    }
}

/// What Spindle serves for Debian's WordPress: /usr/share/wordpress with
/// wp-content replaced by the site's own, as Apache's `Alias /wp-content`
/// does in README.Debian (Spindle has no aliases; links do the same).
fn wordpress_docroot(content: &Path) -> TempDir {
    let root = TempDir::new("wp-root");
    for entry in std::fs::read_dir("/usr/share/wordpress").unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() == "wp-content" {
            continue;
        }
        std::os::unix::fs::symlink(entry.path(), root.path().join(entry.file_name())).unwrap();
    }
    std::os::unix::fs::symlink(content, root.path().join("wp-content")).unwrap();
    root
}

/// The value of `name` in a JSON body.
fn json_field(page: &Page, name: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&page.body)
        .unwrap_or_else(|e| panic!("{}: {}: {e}: {}", page.site, page.what, tail(&page.text())));
    v[name].clone()
}

fn wordpress_flow(site: &Site) -> Vec<String> {
    let mut t = Vec::new();

    // A fresh site sends the visitor to the installer.
    let p = site.get("/");
    t.push(summary(site, &p, ""));
    assert_eq!(
        p.location.as_deref().map(|l| site.local(l)).as_deref(),
        Some("/wp-admin/install.php"),
        "{}: {}",
        site.label,
        p.text()
    );
    let p = site.get("/wp-admin/install.php").expect(200);
    t.push(summary(site, &p, ""));
    let p = site
        .post(
            "/wp-admin/install.php?step=2",
            &[
                ("weblog_title", "Spindle Test Blog"),
                ("user_name", "admin"),
                ("admin_password", "wp-admin-pass-1"),
                ("admin_password2", "wp-admin-pass-1"),
                ("pw_weak", "on"),
                ("admin_email", "admin@example.com"),
                ("blog_public", "1"),
                ("language", ""),
            ],
        )
        .expect(200)
        .contains("WordPress has been installed");
    t.push(summary(site, &p, ""));

    // Log in: wp-login.php sets a test cookie first, as for a browser.
    let p = site.get("/wp-login.php").expect(200);
    t.push(summary(site, &p, ""));
    let p = site.post(
        "/wp-login.php",
        &[
            ("log", "admin"),
            ("pwd", "wp-admin-pass-1"),
            ("wp-submit", "Log In"),
            ("redirect_to", &site.url("/wp-admin/")),
            ("testcookie", "1"),
        ],
    );
    t.push(summary(site, &p, ""));
    assert_eq!(p.status, 302, "{}: login: {}", site.label, tail(&p.text()));
    let p = site.get("/wp-admin/").expect(200).contains("Dashboard");
    t.push(summary(site, &p, ""));

    // Publish a post through the REST API, with the nonce the block editor
    // uses (the API is reached with ?rest_route= before permalinks exist).
    let p = site
        .get("/wp-admin/admin-ajax.php?action=rest-nonce")
        .expect(200);
    let nonce = p.text();
    let p = site.send(
        "POST /?rest_route=/wp/v2/posts".into(),
        site.http
            .post(site.url("/?rest_route=/wp/v2/posts"))
            .header("X-WP-Nonce", nonce.trim())
            .header("Content-Type", "application/json")
            .body(serde_json::json!({
                "title": "Hello from Spindle",
                "content": "<!-- wp:paragraph --><p>A post with <strong>bold</strong> words, äöü.</p><!-- /wp:paragraph -->",
                "status": "publish",
                "slug": "hello-from-spindle",
            })
            .to_string()),
    );
    let p = p.expect(201);
    let id = json_field(&p, "id");
    t.push(summary(site, &p, ""));
    let p = site
        .get(&format!("/?p={id}"))
        .expect(200)
        .contains("Hello from Spindle")
        .contains("<strong>bold</strong> words, äöü.");
    t.push(summary(site, &p, ""));
    let p = site.get("/").expect(200).contains("Hello from Spindle");
    t.push(summary(site, &p, ""));

    // Pretty permalinks, chosen on the settings page as a user would:
    // "Post name", with the value the page offers for it (which differs
    // when WordPress thinks the server cannot rewrite URLs).
    let p = site.get("/wp-admin/options-permalink.php").expect(200);
    let nonce = p.input("_wpnonce");
    let postname = capture(
        &p.text(),
        r#"name="selection"[^>]*value="((?:/index\.php)?/%postname%/)""#,
    )
    .unwrap_or_else(|| panic!("{}: no post name choice: {}", site.label, p.text()));
    t.push(summary(site, &p, &postname));
    let p = site.post(
        "/wp-admin/options-permalink.php",
        &[
            ("_wpnonce", &nonce),
            ("_wp_http_referer", "/wp-admin/options-permalink.php"),
            ("selection", &postname),
            ("permalink_structure", &postname),
            ("category_base", ""),
            ("tag_base", ""),
            ("submit", "Save Changes"),
        ],
    );
    t.push(summary(site, &p, ""));
    let p = site.get(&format!("/?p={id}"));
    t.push(summary(site, &p, ""));
    let permalink = p.location.clone().unwrap_or_else(|| {
        panic!(
            "{}: /?p={id} does not redirect to its permalink",
            site.label
        )
    });
    assert_eq!(
        site.local(&permalink),
        "/hello-from-spindle/",
        "{}: {permalink}",
        site.label
    );
    let p = site
        .get(&site.absolute(&permalink))
        .expect(200)
        .contains("A post with <strong>bold</strong>");
    t.push(summary(site, &p, ""));
    // A post whose slug is not ASCII: its permalink is percent-encoded,
    // which a front controller's PATH_INFO (decoded) and REQUEST_URI (as
    // sent) spell differently.
    let nonce = site
        .get("/wp-admin/admin-ajax.php?action=rest-nonce")
        .expect(200)
        .text();
    let p = site
        .send(
            "POST /wp-json/wp/v2/posts".into(),
            site.http
                .post(site.url("/wp-json/wp/v2/posts"))
                .header("X-WP-Nonce", nonce.trim())
                .header("Content-Type", "application/json")
                .body(
                    serde_json::json!({
                        "title": "Grüße aus Köln",
                        "content": "<!-- wp:paragraph --><p>Ein Beitrag.</p><!-- /wp:paragraph -->",
                        "status": "publish",
                    })
                    .to_string(),
                ),
        )
        .expect(201);
    let link = json_field(&p, "link").as_str().unwrap().to_string();
    t.push(summary(site, &p, &site.local(&link)));
    let p = site
        .get(&link)
        .expect(200)
        .contains("Grüße aus Köln")
        .contains("Ein Beitrag.");
    t.push(summary(site, &p, ""));
    // wp-cron.php answers at once (fastcgi_finish_request()), then runs
    // the due events.
    let p = site.get("/wp-cron.php?doing_wp_cron").expect(200);
    assert!(p.body.is_empty(), "{}: {}", site.label, p.text());
    t.push(summary(site, &p, ""));
    // Pages WordPress makes up at paths that are not files.
    for (path, mime) in [
        ("/feed/", "application/rss+xml"),
        ("/wp-sitemap.xml", "application/xml"),
        ("/robots.txt", "text/plain"),
        ("/?s=Spindle", "text/html"),
        ("/wp-json/", "application/json"),
    ] {
        let p = site.get(path).expect(200);
        assert_eq!(p.mime(), mime, "{}: {path}", site.label);
        t.push(summary(site, &p, ""));
    }
    // WordPress's canonical redirects, and the directory redirect: one hop
    // each, to the same place on both servers (no loops).
    for (path, to) in [
        ("/hello-from-spindle", "/hello-from-spindle/"),
        ("/index.php", "/"),
        ("/wp-admin", "/wp-admin/"),
    ] {
        let p = site.get(path);
        let location = site.local(p.location.as_deref().unwrap_or_default());
        assert_eq!(
            (p.status, location.as_str()),
            (301, to),
            "{}: {path}",
            site.label
        );
        t.push(format!("GET {path} -> {} {location}", p.status));
        site.get(&site.absolute(&p.location.unwrap())).expect(200);
    }
    let p = site.get("/no-such-post/").expect(404);
    t.push(summary(site, &p, ""));
    let p = site.get(&format!("/wp-json/wp/v2/posts/{id}")).expect(200);
    assert_eq!(json_field(&p, "slug"), "hello-from-spindle");
    t.push(summary(site, &p, ""));

    // Upload an image with the browser uploader's form (multipart, $_FILES),
    // then fetch it from wp-content/uploads.
    let p = site
        .get("/wp-admin/media-new.php?browser-uploader")
        .expect(200);
    let nonce = capture(
        &p.text(),
        r#"id="file-form"(?s:.*?)name="_wpnonce" value="([^"]*)""#,
    )
    .unwrap_or_else(|| panic!("{}: no upload form: {}", site.label, tail(&p.text())));
    t.push(summary(site, &p, ""));
    let form = multipart::Form::new()
        .text("post_id", "0")
        .text("_wpnonce", nonce)
        .text("_wp_http_referer", "/wp-admin/media-new.php")
        .text("html-upload", "Upload")
        .part(
            "async-upload",
            multipart::Part::bytes(PNG.to_vec())
                .file_name("dot.png")
                .mime_str("image/png")
                .unwrap(),
        );
    let p = site.post_multipart("/wp-admin/media-new.php", form);
    t.push(summary(site, &p, ""));
    assert_eq!(p.status, 302, "{}: upload: {}", site.label, tail(&p.text()));
    let p = site.get("/wp-json/wp/v2/media").expect(200);
    let list: serde_json::Value = serde_json::from_slice(&p.body).unwrap();
    let src = list[0]["source_url"]
        .as_str()
        .unwrap_or_else(|| panic!("{}: no media: {}", site.label, p.text()));
    let src = src.to_string();
    let p = site.get(&src).expect(200);
    assert_eq!(p.mime(), "image/png", "{}", site.label);
    assert_eq!(
        p.body, PNG,
        "{}: the uploaded image came back changed",
        site.label
    );
    t.push(summary(site, &p, &site.local(&src)));

    // The theme's stylesheet, through Debian's wp-content.
    let p = site
        .get("/wp-content/themes/twentytwentythree/style.css")
        .expect(200);
    t.push(summary(site, &p, ""));
    t
}

#[test]
fn wordpress() {
    need_package("/usr/share/wordpress/wp-config.php", "wordpress");
    need_package(
        "/var/lib/wordpress/wp-content/themes/twentytwentythree",
        "wordpress-theme-twentytwentythree",
    );
    need_root("wordpress");
    let db = MariaDb::start();
    let sh = host_name("wp", "spindle");
    let nh = host_name("wp", "nginx");
    let s_wp = wordpress_site(&sh, &db);
    let n_wp = wordpress_site(&nh, &db);
    let docroot = wordpress_docroot(s_wp.content.path());
    let spindle = Site::spindle(
        sh,
        docroot.path(),
        &["--front-controller", "index.php"],
        &[],
    );
    // Debian's examples/nginx-wordpress.conf.
    let nginx = Site::nginx(
        nh,
        &format!(
            "root /usr/share/wordpress;\n index index.php;\n\
             location / {{ try_files $uri $uri/ /index.php?$args; }}\n\
             location ~ ^/wp-content/(.*)$ {{ alias {}/$1; }}\n{NGINX_PHP}",
            n_wp.content.path().display()
        ),
        &[],
    );
    same_on_both(&spindle, &nginx, wordpress_flow);
}

// ---------------------------------------------------------------------------
// MediaWiki

/// A wiki made with MediaWiki's own installer (maintenance/install.php,
/// SQLite) in a directory of its own; MediaWiki reads its LocalSettings.php
/// from the `MW_CONFIG_FILE` environment variable instead of
/// /etc/mediawiki. Appended, as an admin would: the server taken from the
/// request (one wiki, two servers would otherwise need two installs) and
/// short URLs (`/wiki/Title`, nginx's rewrite or Spindle's front controller).
fn mediawiki_site() -> TempDir {
    let dir = TempDir::new("mediawiki");
    let d = dir.path().display().to_string();
    let mut install = if let Some(user) = php_user() {
        run(Command::new("chown").args([user, &d]));
        let mut c = Command::new("runuser");
        c.args(["-u", user, "--", "php"]);
        c
    } else {
        Command::new("php")
    };
    run(install.args([
        "/usr/share/mediawiki/maintenance/install.php",
        "--dbtype",
        "sqlite",
        "--dbpath",
        &d,
        "--dbname",
        "wiki",
        "--server",
        "http://localhost",
        "--scriptpath",
        "",
        "--confpath",
        &d,
        "--pass",
        "mw-admin-pass-1",
        "Spindle Wiki",
        "Admin",
    ]));
    let settings = dir.path().join("LocalSettings.php");
    let mut text = std::fs::read_to_string(&settings).unwrap();
    text.push_str(
        "\n$wgServer = WebRequest::detectServer();\n\
         $wgArticlePath = \"/wiki/$1\";\n$wgUsePathInfo = true;\n",
    );
    std::fs::write(&settings, text).unwrap();
    dir
}

fn mediawiki_flow(site: &Site) -> Vec<String> {
    let mut t = Vec::new();

    // The main page, by its short URL, by path info and by query.
    let p = site.get("/");
    t.push(summary(site, &p, ""));
    assert_eq!(
        p.location.as_deref().map(|l| site.local(l)).as_deref(),
        Some("/wiki/Main_Page"),
        "{}: / -> {}: {}",
        site.label,
        p.status,
        tail(&p.text())
    );
    for path in [
        "/wiki/Main_Page",
        "/index.php/Main_Page",
        "/index.php?title=Main_Page",
    ] {
        let p = site
            .get(path)
            .expect(200)
            .contains("MediaWiki has been installed");
        assert!(p.title().contains("Spindle Wiki"), "{}", p.title());
        t.push(summary(site, &p, ""));
    }

    // ResourceLoader's scripts and styles.
    let p = site
        .get("/load.php?lang=en&modules=startup&only=scripts&raw=1&skin=vector")
        .expect(200)
        .contains("mw.loader");
    t.push(summary(site, &p, ""));
    let p = site
        .get("/load.php?lang=en&modules=skins.vector.styles.legacy&only=styles&skin=vector")
        .expect(200);
    assert_eq!(p.mime(), "text/css", "{}", site.label);
    t.push(summary(site, &p, ""));
    // A static file, through Debian's resources -> /usr/share link.
    let p = site
        .get("/resources/assets/poweredby_mediawiki_88x31.png")
        .expect(200);
    assert_eq!(p.mime(), "image/png");
    t.push(summary(site, &p, ""));

    // Log in with Special:UserLogin's form.
    let p = site
        .get("/index.php?title=Special:UserLogin&returnto=Main_Page")
        .expect(200);
    let token = p.input("wpLoginToken");
    t.push(summary(site, &p, ""));
    let p = site.post(
        "/index.php?title=Special:UserLogin&returnto=Main_Page",
        &[
            ("title", "Special:UserLogin"),
            ("wpName", "Admin"),
            ("wpPassword", "mw-admin-pass-1"),
            ("wpLoginToken", &token),
            ("authAction", "login"),
            ("force", ""),
            ("wpForceHttps", "1"),
            ("wpFromhttp", "1"),
            ("wpLoginAttempt", "Log in"),
        ],
    );
    t.push(summary(site, &p, ""));
    assert_eq!(p.status, 302, "{}: login: {}", site.label, tail(&p.text()));
    let p = site
        .get("/wiki/Main_Page")
        .expect(200)
        .contains("Special:UserLogout");
    t.push(summary(site, &p, ""));

    // Create a page with the edit form.
    let p = site
        .get("/index.php?title=Spindle_test&action=edit")
        .expect(200);
    let fields: Vec<(String, String)> = [
        "wpEditToken",
        "wpStarttime",
        "wpEdittime",
        "editRevId",
        "wpUnicodeCheck",
    ]
    .iter()
    .map(|f| (f.to_string(), p.input(f)))
    .collect();
    t.push(summary(site, &p, ""));
    let mut form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    form.extend([
        ("wpTextbox1", "== Hello ==\nSome '''bold''' text, äöü.\n"),
        ("wpSummary", "first"),
        ("wpSave", "Save page"),
        ("wpUltimateParam", "1"),
        ("model", "wikitext"),
        ("format", "text/x-wiki"),
    ]);
    let p = site.post("/index.php?title=Spindle_test&action=submit", &form);
    t.push(summary(site, &p, ""));
    assert!(
        [302, 303].contains(&p.status),
        "{}: save: {} {}",
        site.label,
        p.status,
        tail(&p.text())
    );
    let p = site
        .get("/wiki/Spindle_test")
        .expect(200)
        .contains("<b>bold</b> text, äöü.");
    t.push(summary(site, &p, ""));

    // Edit through api.php with a CSRF token, as bots and the visual
    // editor do.
    let p = site
        .get("/api.php?action=query&meta=tokens&format=json")
        .expect(200);
    let v: serde_json::Value = serde_json::from_slice(&p.body).unwrap();
    let token = v["query"]["tokens"]["csrftoken"]
        .as_str()
        .unwrap()
        .to_string();
    let p = site
        .post(
            "/api.php",
            &[
                ("action", "edit"),
                ("title", "Api_page"),
                ("text", "Written through the '''API'''."),
                ("token", &token),
                ("format", "json"),
            ],
        )
        .expect(200);
    assert_eq!(json_field(&p, "edit")["result"], "Success", "{}", p.text());
    t.push(summary(site, &p, ""));
    let p = site
        .get("/wiki/Api_page")
        .expect(200)
        .contains("Written through the <b>API</b>.");
    t.push(summary(site, &p, ""));

    // A title with a subpage, UTF-8 and characters that URLs escape, by
    // each kind of URL, encoded as MediaWiki's own links encode it.
    let p = site
        .post(
            "/api.php",
            &[
                ("action", "edit"),
                ("title", "Grüße/Sub page & C++?"),
                ("text", "A subpage with an awkward name."),
                ("token", &token),
                ("format", "json"),
            ],
        )
        .expect(200);
    assert_eq!(json_field(&p, "edit")["result"], "Success", "{}", p.text());
    let p = site.get("/wiki/Special:AllPages").expect(200);
    let href = capture(&p.text(), r#"href="(/wiki/Gr[^"]*)""#)
        .unwrap_or_else(|| panic!("{}: no link to the subpage", site.label));
    t.push(summary(site, &p, ""));
    let title = href.trim_start_matches("/wiki/").to_string();
    for path in [
        format!("/wiki/{title}"),
        format!("/index.php/{title}"),
        format!("/index.php?title={title}"),
    ] {
        let p = site
            .get(&path)
            .expect(200)
            .contains("A subpage with an awkward name.");
        t.push(summary(site, &p, ""));
    }
    t
}

#[test]
fn mediawiki() {
    need_package("/var/lib/mediawiki/index.php", "mediawiki");
    need_package("/usr/bin/php8.2", "php8.2-cli");
    let s_wiki = mediawiki_site();
    let n_wiki = mediawiki_site();
    let s_conf = s_wiki
        .path()
        .join("LocalSettings.php")
        .display()
        .to_string();
    let n_conf = n_wiki
        .path()
        .join("LocalSettings.php")
        .display()
        .to_string();
    let spindle = Site::spindle(
        host_name("mw", "spindle"),
        Path::new("/var/lib/mediawiki"),
        &["--front-controller", "index.php"],
        &[("MW_CONFIG_FILE", &s_conf)],
    );
    // MediaWiki's short URL recipe for nginx.
    let nginx = Site::nginx(
        host_name("mw", "nginx"),
        &format!(
            "root /var/lib/mediawiki;\n index index.php;\n\
             location /wiki/ {{ rewrite ^/wiki/ /index.php last; }}\n{NGINX_PHP}"
        ),
        &[("MW_CONFIG_FILE", &n_conf)],
    );
    same_on_both(&spindle, &nginx, mediawiki_flow);
}

// ---------------------------------------------------------------------------
// phpMyAdmin

/// Debian's phpMyAdmin reads /etc/phpmyadmin/conf.d/*.php (README.Debian);
/// this snippet sends the site's host to the private MariaDB, and nothing
/// else anywhere else: server 1 with a login form (cookie), server 2 with
/// HTTP Basic authentication. A database and user for the site to log in
/// with.
fn phpmyadmin_site(host: &str, db: &MariaDb) -> Cleanup {
    let name = host.split('.').next().unwrap().replace('-', "_");
    db.database(&name, "pma-db-pass");
    let file = PathBuf::from(format!("/etc/phpmyadmin/conf.d/spindle-test-{host}.php"));
    std::fs::write(
        &file,
        format!(
            "<?php\nif (explode(':', $_SERVER['HTTP_HOST'] ?? '')[0] === '{host}') {{\n\
             $cfg['Servers'][1]['auth_type'] = 'cookie';\n\
             $cfg['Servers'][1]['host'] = '127.0.0.1';\n\
             $cfg['Servers'][1]['connect_type'] = 'tcp';\n\
             $cfg['Servers'][1]['port'] = '{0}';\n\
             $cfg['Servers'][2] = $cfg['Servers'][1];\n\
             $cfg['Servers'][2]['auth_type'] = 'http';\n}}\n",
            db.port
        ),
    )
    .unwrap();
    Cleanup(vec![file])
}

fn phpmyadmin_flow(site: &Site) -> Vec<String> {
    let mut t = Vec::new();
    let user = site.host.split('.').next().unwrap().replace('-', "_");

    // The login page, then a cookie login to the private MariaDB.
    let p = site.get("/").expect(200).contains("pma_username");
    let token = p.input("token");
    t.push(summary(site, &p, ""));
    let p = site.post(
        "/index.php?route=/",
        &[
            ("route", "/"),
            ("token", &token),
            ("set_session", &p.input("set_session")),
            ("pma_username", &user),
            ("pma_password", "pma-db-pass"),
            ("server", "1"),
        ],
    );
    t.push(summary(site, &p, ""));
    assert_eq!(p.status, 302, "{}: login: {}", site.label, tail(&p.text()));
    let home = p.location.clone().unwrap();
    let p = site
        .get(&site.absolute(&home))
        .expect(200)
        .contains("127.0.0.1 via TCP/IP");
    let token = p.input("token");
    t.push(summary(site, &p, ""));

    // Run SQL as the SQL tab does (an XHR to the import route), then read it
    // back through the sql route.
    let p = site
        .post(
            "/index.php?route=/import",
            &[
                ("db", &user),
                ("token", &token),
                (
                    "sql_query",
                    "CREATE TABLE greeting (id INT PRIMARY KEY, words VARCHAR(64)); \
                     INSERT INTO greeting VALUES (1, 'hello from spindle'), (2, 'äöü');",
                ),
                ("sql_delimiter", ";"),
                ("show_query", "1"),
                ("fk_checks", "1"),
                ("SQL", "Go"),
                ("ajax_request", "true"),
                ("ajax_page_request", "true"),
            ],
        )
        .expect(200);
    assert_eq!(
        json_field(&p, "success"),
        true,
        "{}: {}",
        site.label,
        p.text()
    );
    t.push(summary(site, &p, ""));
    let p = site
        .post(
            "/index.php?route=/sql",
            &[
                ("db", &user),
                ("token", &token),
                ("sql_query", "SELECT words FROM greeting ORDER BY id"),
                ("ajax_request", "true"),
                ("ajax_page_request", "true"),
            ],
        )
        .expect(200);
    let message = json_field(&p, "message")
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("hello from spindle") && message.contains("äöü"),
        "{}: {}",
        site.label,
        p.text()
    );
    t.push(summary(site, &p, ""));

    // Import an uploaded .sql file (the Import tab: multipart, $_FILES).
    let form = multipart::Form::new()
        .text("db", user.clone())
        .text("token", token.clone())
        .text("import_type", "database")
        .text("format", "sql")
        .text("charset_of_file", "utf-8")
        .text("sql_compatibility", "NONE")
        .text("noplugin", "")
        .part(
            "import_file",
            multipart::Part::bytes(b"INSERT INTO greeting VALUES (3, 'from a file');\n".to_vec())
                .file_name("more.sql")
                .mime_str("application/sql")
                .unwrap(),
        );
    let p = site
        .post_multipart("/index.php?route=/import", form)
        .expect(200);
    t.push(summary(site, &p, ""));
    let p = site
        .post(
            "/index.php?route=/sql",
            &[
                ("db", &user),
                ("token", &token),
                ("sql_query", "SELECT words FROM greeting WHERE id = 3"),
                ("ajax_request", "true"),
            ],
        )
        .expect(200);
    let message = json_field(&p, "message")
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("from a file"),
        "{}: {}",
        site.label,
        p.text()
    );
    t.push(summary(site, &p, ""));

    // Export the table as SQL, as a download.
    let p = site
        .post(
            "/index.php?route=/export",
            &[
                ("db", &user),
                ("table", "greeting"),
                ("token", &token),
                ("export_type", "table"),
                ("export_method", "quick"),
                ("quick_or_custom", "quick"),
                ("what", "sql"),
                ("allrows", "1"),
                ("output_format", "sendit"),
                ("filename_template", "@TABLE@"),
                ("charset", "utf-8"),
                ("compression", "none"),
                ("sql_structure_or_data", "structure_and_data"),
                ("sql_type", "INSERT"),
                ("sql_insert_syntax", "both"),
                ("sql_max_query_size", "50000"),
            ],
        )
        .expect(200)
        .contains("INSERT INTO greeting")
        .contains("(1, 'hello from spindle')");
    t.push(summary(site, &p, ""));

    // HEAD of a page: the headers of GET, no body.
    let p = site.send("HEAD /".into(), site.http.head(site.url("/")));
    assert_eq!((p.status, p.body.len()), (200, 0), "{}", site.label);
    t.push(summary(site, &p, ""));

    // The theme's logo, a static file.
    let p = site.get("/themes/pmahomme/img/logo_left.png").expect(200);
    assert_eq!(p.mime(), "image/png");
    t.push(summary(site, &p, ""));

    // HTTP authentication: a 401 challenge, then the credentials in
    // Authorization, which PHP gets as PHP_AUTH_USER and PHP_AUTH_PW.
    let p = site.get("/index.php?server=2").expect(401);
    let challenge = p
        .headers
        .iter()
        .any(|(k, v)| k == "www-authenticate" && v.starts_with("Basic"));
    assert!(challenge, "{}: {:?}", site.label, p.headers);
    t.push(summary(site, &p, ""));
    let fresh = Client::builder()
        .resolve(&site.host, site.addr)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let p = site
        .send(
            "GET /index.php?server=2 (basic auth)".into(),
            fresh
                .get(site.url("/index.php?server=2"))
                .basic_auth(&user, Some("pma-db-pass")),
        )
        .expect(200)
        .contains("127.0.0.1 via TCP/IP");
    t.push(summary(site, &p, ""));

    // Log out: back to the login form.
    let p = site.post("/index.php?route=/logout", &[("token", &token)]);
    t.push(summary(site, &p, ""));
    let p = site.get("/").expect(200).contains("pma_username");
    t.push(summary(site, &p, ""));
    t
}

#[test]
fn phpmyadmin() {
    need_package("/usr/share/phpmyadmin/index.php", "phpmyadmin");
    need_root("phpmyadmin");
    let db = MariaDb::start();
    let sh = host_name("pma", "spindle");
    let nh = host_name("pma", "nginx");
    let _conf = (phpmyadmin_site(&sh, &db), phpmyadmin_site(&nh, &db));
    // At http://host/phpmyadmin/, as Debian's apache.conf serves it.
    let docroot = alias_root("phpmyadmin", "/usr/share/phpmyadmin");
    let spindle = Site::spindle(sh, docroot.path(), &[], &[]).under("/phpmyadmin");
    // Debian's apache.conf denies templates/ and libraries/.
    let nginx = Site::nginx(
        nh,
        &format!(
            "root {};\n index index.php;\n\
             location ~ ^/phpmyadmin/(templates|libraries)/ {{ deny all; }}\n{NGINX_PHP}",
            docroot.path().display()
        ),
        &[],
    )
    .under("/phpmyadmin");
    same_on_both(&spindle, &nginx, phpmyadmin_flow);
}
