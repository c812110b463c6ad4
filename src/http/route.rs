//! Maps a request path to a script, a static file, a redirect or nothing.
//!
//! The URL never climbs out of the document root: the path is decoded once,
//! and `..` segments and dotfiles are refused before the file system is
//! touched. Symlinks inside the root are followed as `--symlinks` says
//! (issue 9, item 9): anywhere (nginx's default, which Debian's packaged
//! applications rely on), only when the link and its target have the same
//! owner, or only to targets inside the root. Whatever the mode, a static
//! file whose resolved target is PHP source or a dotfile is never sent.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use percent_encoding::{percent_decode_str, percent_encode, AsciiSet, CONTROLS};

use crate::config::{FrontController, Symlinks};

/// What must be escaped in a path segment of a Location we build.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Script(Script),
    Static(PathBuf),
    /// A directory asked for without its trailing slash: the location to send.
    Redirect(String),
    NotFound,
    /// A path that cannot name a file (NUL byte, not absolute).
    BadRequest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// Absolute, canonical path of the script.
    pub filename: PathBuf,
    /// The script's URL path (SCRIPT_NAME), decoded.
    pub script_name: Vec<u8>,
    /// What follows the script in the URL (PATH_INFO), decoded.
    pub path_info: Option<Vec<u8>>,
}

const INDEX_FILES: [&str; 2] = ["index.php", "index.html"];

/// Resolves `raw_path` (as received, percent-encoded) under `root`, which
/// must be canonical.
pub fn resolve(
    root: &Path,
    raw_path: &str,
    query: Option<&str>,
    front: Option<&FrontController>,
    symlinks: Symlinks,
) -> Route {
    let decoded: Vec<u8> = percent_decode_str(raw_path).collect();
    if !decoded.starts_with(b"/") || decoded.contains(&0) {
        return Route::BadRequest;
    }
    let segments: Vec<&[u8]> = decoded
        .split(|&b| b == b'/')
        .filter(|s| !s.is_empty() && *s != b".")
        .collect();
    for s in &segments {
        // `..` never climbs: refused outright, not normalized. Dotfiles
        // (.env, .git, .htaccess) are never served; .well-known is the one
        // public dot-directory (ACME, security.txt).
        if *s == b".." || (s.starts_with(b".") && *s != b".well-known") {
            return Route::NotFound;
        }
    }

    let fallback = || match front {
        Some(fc) => Route::Script(Script {
            filename: fc.filename.clone(),
            script_name: fc.script_name.as_bytes().to_vec(),
            path_info: Some(decoded.clone()),
        }),
        None => Route::NotFound,
    };

    let mut path = root.to_path_buf();
    for (i, seg) in segments.iter().enumerate() {
        path.push(OsStr::from_bytes(seg));
        let Ok(meta) = std::fs::metadata(&path) else {
            return fallback();
        };
        if meta.is_dir() {
            continue;
        }
        if !meta.is_file() {
            return Route::NotFound;
        }
        if is_php(seg) {
            let Some(filename) = allowed(root, &path, symlinks) else {
                return Route::NotFound;
            };
            let mut script_name = Vec::new();
            for s in &segments[..=i] {
                script_name.push(b'/');
                script_name.extend_from_slice(s);
            }
            let path_info = (i + 1 < segments.len()).then(|| {
                let mut p = Vec::new();
                for s in &segments[i + 1..] {
                    p.push(b'/');
                    p.extend_from_slice(s);
                }
                if decoded.ends_with(b"/") {
                    p.push(b'/');
                }
                p
            });
            return Route::Script(Script {
                filename,
                script_name,
                path_info,
            });
        }
        if i + 1 == segments.len() {
            if holds_php_source(seg) {
                return Route::NotFound;
            }
            return static_file(root, &path, symlinks);
        }
        // A file used as a directory (/style.css/x).
        return fallback();
    }

    // A directory, the root included.
    if allowed(root, &path, symlinks).is_none() {
        return Route::NotFound;
    }
    if !decoded.ends_with(b"/") {
        // Built from the segments, never from the raw path: `//evil.com`
        // must not become the protocol-relative `//evil.com/` (item 7).
        let mut loc = String::from("/");
        for s in &segments {
            loc.extend(percent_encode(s, SEGMENT));
            loc.push('/');
        }
        if let Some(q) = query {
            loc.push('?');
            loc.push_str(q);
        }
        return Route::Redirect(loc);
    }
    for index in INDEX_FILES {
        let candidate = path.join(index);
        if candidate.is_file() {
            if !index.ends_with(".php") {
                return static_file(root, &candidate, symlinks);
            }
            let Some(filename) = allowed(root, &candidate, symlinks) else {
                return Route::NotFound;
            };
            let mut script_name = decoded.clone();
            script_name.extend_from_slice(index.as_bytes());
            return Route::Script(Script {
                filename,
                script_name,
                path_info: None,
            });
        }
    }
    fallback()
}

/// Remembers resolved routes for a short while, as nginx's open_file_cache
/// and PHP's own realpath cache do: resolving costs a stat and a realpath
/// (five syscalls for a short path), half of the master's syscalls for a
/// hello-world request.
///
/// Only routes to existing files are cached, so a new file is served at
/// once; a file deleted or replaced by a symlink is noticed within
/// [`RouteCache::TTL`].
#[derive(Debug, Default)]
pub struct RouteCache {
    map: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, Route)>>,
}

impl RouteCache {
    pub const TTL: std::time::Duration = std::time::Duration::from_secs(2);
    const MAX_ENTRIES: usize = 8192;

    /// `resolve()`, through the cache.
    pub fn resolve(
        &self,
        root: &Path,
        raw_path: &str,
        query: Option<&str>,
        front: Option<&FrontController>,
        symlinks: Symlinks,
    ) -> Route {
        let now = std::time::Instant::now();
        {
            let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, route)) = map.get(raw_path) {
                if now.duration_since(*at) < Self::TTL {
                    return route.clone();
                }
            }
        }
        let route = resolve(root, raw_path, query, front, symlinks);
        let cacheable = match &route {
            Route::Static(_) => true,
            // The front controller's fallback answers for missing files:
            // caching it would hide a file created a moment later.
            Route::Script(s) => {
                front.is_none_or(|f| s.filename != f.filename || s.path_info.is_none())
            }
            _ => false,
        };
        if cacheable {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            if map.len() >= Self::MAX_ENTRIES {
                map.clear();
            }
            map.insert(raw_path.to_string(), (now, route.clone()));
        }
        route
    }
}

/// Files that are not `.php` but hold PHP source all the same: editor and
/// deploy leftovers (`config.php.bak`, `index.php~`, `wp-config.php.orig`),
/// and the other extensions PHP code uses (`.phtml`, `.inc`, `.php5`, ...).
/// Served as static files they would leak it; they get 404 instead.
fn holds_php_source(name: &[u8]) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.windows(4).any(|w| w == b".php")
        || lower.ends_with(b".phtml")
        || lower.ends_with(b".phps")
        || lower.ends_with(b".inc")
}

fn is_php(name: &[u8]) -> bool {
    name.len() > 4 && name.ends_with(b".php")
}

/// The canonical form of `path` (under `root`, not yet resolved) if
/// `symlinks` lets us reach it.
fn allowed(root: &Path, path: &Path, symlinks: Symlinks) -> Option<PathBuf> {
    let real = path.canonicalize().ok()?;
    match symlinks {
        Symlinks::Follow => Some(real),
        Symlinks::Inside => real.starts_with(root).then_some(real),
        Symlinks::Owner => same_owners(root, path).then_some(real),
    }
}

/// nginx's `disable_symlinks if_not_owner`: every symlink on the way from
/// `root` to `path` is owned by the owner of what it points to.
fn same_owners(root: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(root) else {
        return false;
    };
    let mut p = root.to_path_buf();
    for c in rel.components() {
        p.push(c);
        let Ok(link) = std::fs::symlink_metadata(&p) else {
            return false;
        };
        if link.file_type().is_symlink() {
            match std::fs::metadata(&p) {
                Ok(target) if target.uid() == link.uid() => {}
                _ => return false,
            }
        }
    }
    true
}

/// A static file, unless its resolved target holds PHP source or is a
/// dotfile: `config.txt -> config.php` would send the source, `.env`
/// behind a link its secrets.
fn static_file(root: &Path, path: &Path, symlinks: Symlinks) -> Route {
    let Some(real) = allowed(root, path, symlinks) else {
        return Route::NotFound;
    };
    let name = real.file_name().map_or(&b""[..], OsStr::as_bytes);
    if holds_php_source(name) || name.starts_with(b".") {
        return Route::NotFound;
    }
    Route::Static(real)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn tree() -> (tempdir::Dir, PathBuf) {
        let d = tempdir::Dir::new();
        let root = d.path().join("root");
        fs::create_dir_all(root.join("sub/deeper")).unwrap();
        fs::create_dir_all(root.join("static")).unwrap();
        fs::write(root.join("index.php"), "<?php").unwrap();
        fs::write(root.join("app.php"), "<?php").unwrap();
        fs::write(root.join("sub/index.html"), "hi").unwrap();
        fs::write(root.join("static/a.css"), "a{}").unwrap();
        fs::write(root.join(".env"), "SECRET=1").unwrap();
        fs::write(d.path().join("outside.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(d.path().join("outside.txt"), root.join("leak.txt")).unwrap();
        let root = root.canonicalize().unwrap();
        (d, root)
    }

    mod tempdir {
        use std::path::{Path, PathBuf};
        pub struct Dir(PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "spindle-route-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
            pub fn path(&self) -> &Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn scripts_static_and_index() {
        let (_d, root) = tree();
        assert!(
            matches!(resolve(&root, "/", None, None, Symlinks::Inside), Route::Script(s) if s.script_name == b"/index.php")
        );
        assert!(
            matches!(resolve(&root, "/app.php", None, None, Symlinks::Inside), Route::Script(s) if s.path_info.is_none())
        );
        assert!(
            matches!(resolve(&root, "/app.php/a/b", None, None, Symlinks::Inside),
            Route::Script(s) if s.script_name == b"/app.php" && s.path_info.as_deref() == Some(&b"/a/b"[..]))
        );
        assert_eq!(
            resolve(&root, "/sub/", None, None, Symlinks::Inside),
            Route::Static(root.join("sub/index.html"))
        );
        assert_eq!(
            resolve(&root, "/sub", Some("x=1"), None, Symlinks::Inside),
            Route::Redirect("/sub/?x=1".into())
        );
        assert_eq!(
            resolve(&root, "/static/a.css", None, None, Symlinks::Inside),
            Route::Static(root.join("static/a.css"))
        );
        assert_eq!(
            resolve(&root, "/static/", None, None, Symlinks::Inside),
            Route::NotFound
        );
        assert_eq!(
            resolve(&root, "/missing", None, None, Symlinks::Inside),
            Route::NotFound
        );
    }

    #[test]
    fn never_leaves_the_root() {
        let (_d, root) = tree();
        for p in [
            "/../outside.txt",
            "/%2e%2e/outside.txt",
            "/sub/%2E%2E/%2e%2e/outside.txt",
            "/sub/../../outside.txt",
        ] {
            assert_eq!(
                resolve(&root, p, None, None, Symlinks::Inside),
                Route::NotFound,
                "{p}"
            );
        }
        assert_eq!(
            resolve(&root, "/leak.txt", None, None, Symlinks::Inside),
            Route::NotFound
        );
        assert_eq!(
            resolve(&root, "/.env", None, None, Symlinks::Inside),
            Route::NotFound
        );
        assert_eq!(
            resolve(&root, "/%2eenv", None, None, Symlinks::Inside),
            Route::NotFound
        );
        assert_eq!(
            resolve(&root, "/a%00.php", None, None, Symlinks::Inside),
            Route::BadRequest
        );
        for leftover in [
            "app.php.bak",
            "app.php~",
            "app.PHP.orig",
            "view.phtml",
            "lib.inc",
            "old.php5",
            "x.phps",
        ] {
            fs::write(root.join(leftover), "<?php secret();").unwrap();
            assert_eq!(
                resolve(&root, &format!("/{leftover}"), None, None, Symlinks::Inside),
                Route::NotFound,
                "{leftover}"
            );
        }
    }

    #[test]
    fn front_controller_takes_what_is_not_a_file() {
        let (_d, root) = tree();
        let fc = FrontController {
            filename: root.join("index.php"),
            script_name: "/index.php".into(),
        };
        assert!(
            matches!(resolve(&root, "/blog/42", None, Some(&fc), Symlinks::Inside),
            Route::Script(s) if s.script_name == b"/index.php" && s.path_info.as_deref() == Some(&b"/blog/42"[..]))
        );
        assert_eq!(
            resolve(&root, "/static/a.css", None, Some(&fc), Symlinks::Inside),
            Route::Static(root.join("static/a.css"))
        );
        assert!(
            matches!(resolve(&root, "/app.php", None, Some(&fc), Symlinks::Inside), Route::Script(s) if s.script_name == b"/app.php")
        );
        assert_eq!(
            resolve(&root, "/.env", None, Some(&fc), Symlinks::Inside),
            Route::NotFound
        );
    }

    #[test]
    fn symlinks_and_php_targets() {
        let (d, root) = tree();
        let outside = d.path().join("outside.txt").canonicalize().unwrap();
        assert_eq!(
            resolve(&root, "/leak.txt", None, None, Symlinks::Follow),
            Route::Static(outside)
        );
        std::os::unix::fs::symlink(root.join("app.php"), root.join("config.txt")).unwrap();
        std::os::unix::fs::symlink(root.join(".env"), root.join("env.txt")).unwrap();
        for mode in [Symlinks::Follow, Symlinks::Owner, Symlinks::Inside] {
            for p in ["/config.txt", "/env.txt"] {
                assert_eq!(resolve(&root, p, None, None, mode), Route::NotFound, "{p}");
            }
        }
    }

    #[test]
    fn directory_redirects_stay_on_this_host() {
        let (_d, root) = tree();
        for (p, loc) in [
            ("//static", "/static/"),
            ("///static", "/static/"),
            ("/./static", "/static/"),
            ("/%2Fstatic", "/static/"),
        ] {
            assert_eq!(
                resolve(&root, p, None, None, Symlinks::Follow),
                Route::Redirect(loc.into()),
                "{p}"
            );
        }
    }
}
