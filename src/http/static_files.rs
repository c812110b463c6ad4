//! Static files: Content-Type by extension, Last-Modified and ETag, 304s.

use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

use super::body::{self, Body};

/// Files up to this size are read in one go on the runtime thread (from the
/// page cache this is a few microseconds, cheaper than a blocking-pool hop);
/// larger ones stream from disk in chunks.
const READ_WHOLE_MAX: u64 = 256 * 1024;
const STREAM_CHUNK: usize = 64 * 1024;

/// The bytes of small static files, checked against one `stat` per request:
/// a hit costs one syscall instead of open, fstat, read and close (measured
/// hot path of the 1 KiB static benchmark). A changed file (mtime or size)
/// is read again, so edits show at once.
///
/// Bounded in bytes by `--static-cache-size` (issue 9 item 5: unbounded,
/// 4,090 distinct 256 KiB files took the master to 1 GB). quick_cache evicts
/// the entries least likely to be asked for again (CLOCK-Pro, an LRU that a
/// one-off scan of many files does not flush) and takes no global lock on a
/// hit.
#[derive(Debug)]
pub struct FileCache {
    map: Option<quick_cache::sync::Cache<PathBuf, Cached, Weight>>,
}

#[derive(Debug, Clone)]
struct Cached {
    mtime: SystemTime,
    len: u64,
    body: Bytes,
}

/// An entry weighs its bytes plus its key and bookkeeping, so that many tiny
/// files are bounded too.
#[derive(Debug, Clone)]
struct Weight;

impl quick_cache::Weighter<PathBuf, Cached> for Weight {
    fn weight(&self, path: &PathBuf, v: &Cached) -> u64 {
        const OVERHEAD: u64 = 128;
        v.body.len() as u64 + path.as_os_str().len() as u64 + OVERHEAD
    }
}

impl FileCache {
    /// A cache of at most `bytes`; 0 caches nothing.
    pub fn new(bytes: u64) -> FileCache {
        let map = (bytes > 0).then(|| {
            // quick_cache sizes its tables from this guess (16 KiB, a
            // typical small asset). It also gives each shard at least 32
            // guessed items, so a shard holds at least 512 KiB and a file of
            // READ_WHOLE_MAX always fits (a larger one would not be cached).
            let items = (bytes / (16 * 1024)).clamp(16, 1 << 20) as usize;
            quick_cache::sync::Cache::with_weighter(items, bytes, Weight)
        });
        FileCache { map }
    }

    fn get(&self, path: &Path, mtime: SystemTime, len: u64) -> Option<Bytes> {
        let hit = self.map.as_ref()?.get(path)?;
        (hit.mtime == mtime && hit.len == len).then_some(hit.body)
    }

    fn put(&self, path: &Path, mtime: SystemTime, len: u64, body: Bytes) {
        if let Some(map) = &self.map {
            map.insert(path.to_path_buf(), Cached { mtime, len, body });
        }
    }
}

fn open_error(e: &std::io::Error) -> Response<Body> {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        body::status(StatusCode::FORBIDDEN)
    } else {
        body::status(StatusCode::NOT_FOUND)
    }
}

pub fn serve(
    cache: &FileCache,
    path: &Path,
    method: &Method,
    headers: &HeaderMap,
) -> Response<Body> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return open_error(&e),
    };
    let len = meta.len();
    let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
    let since_epoch = mtime.duration_since(UNIX_EPOCH).unwrap_or_default();
    let etag = format!(
        "\"{:x}.{:x}-{:x}\"",
        since_epoch.as_secs(),
        since_epoch.subsec_nanos(),
        len
    );
    let last_modified = httpdate::fmt_http_date(mtime);

    // A single byte range (resumed downloads, media seeking); anything else
    // gets the whole file, which RFC 9110 allows.
    let range = if *method == Method::GET && if_range_holds(headers, &etag, &last_modified) {
        match requested_range(headers, len) {
            Ok(r) => r,
            Err(()) => {
                let mut r = body::status(StatusCode::RANGE_NOT_SATISFIABLE);
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return r;
            }
        }
    } else {
        None
    };
    let (start, count) = range
        .as_ref()
        .map_or((0, len), |r| (*r.start(), r.end() - r.start() + 1));

    let mut resp = if not_modified(headers, &etag, mtime) {
        let mut r = Response::new(Body::Empty);
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else if *method == Method::HEAD {
        let mut r = Response::new(Body::Empty);
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        r
    } else if len <= READ_WHOLE_MAX {
        // Small: the whole file from the cache (or read once into it), sliced.
        let whole = match cache.get(path, mtime, len) {
            Some(b) => b,
            None => match std::fs::read(path) {
                Ok(v) if v.len() as u64 == len => {
                    let b = Bytes::from(v);
                    cache.put(path, mtime, len, b.clone());
                    b
                }
                // Changed between stat and read: serve what was read, uncached.
                Ok(v) => Bytes::from(v),
                Err(e) => return open_error(&e),
            },
        };
        let end = (start + count).min(whole.len() as u64) as usize;
        let begin = (start as usize).min(end);
        Response::new(Body::full(whole.slice(begin..end)))
    } else {
        // Large: streamed from disk.
        let mut file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => return open_error(&e),
        };
        if start > 0 && file.seek(SeekFrom::Start(start)).is_err() {
            return body::status(StatusCode::INTERNAL_SERVER_ERROR);
        }
        let file = tokio::fs::File::from_std(file).take(count);
        let mut r = Response::new(Body::File(ReaderStream::with_capacity(file, STREAM_CHUNK)));
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(count));
        r
    };
    if let (Some(range), StatusCode::OK) = (&range, resp.status()) {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        let v = format!("bytes {}-{}/{len}", range.start(), range.end());
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    resp.headers_mut()
        .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let h = resp.headers_mut();
    let mime = mime_guess::from_path(path)
        .first_raw()
        .unwrap_or("application/octet-stream");
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    if let Ok(v) = HeaderValue::from_str(&last_modified) {
        h.insert(header::LAST_MODIFIED, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    resp
}

/// The one range asked for, `None` for the whole file (no Range header,
/// several ranges, or a unit we do not serve), `Err` when unsatisfiable.
fn requested_range(
    headers: &HeaderMap,
    len: u64,
) -> Result<Option<std::ops::RangeInclusive<u64>>, ()> {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Ok(parsed) = http_range_header::parse_range_header(value) else {
        // Not a bytes range we understand: ignore it (RFC 9110 14.2).
        return Ok(None);
    };
    match parsed.validate(len) {
        Ok(ranges) if ranges.len() == 1 => Ok(ranges.into_iter().next()),
        Ok(_) => Ok(None),
        Err(_) => Err(()),
    }
}

/// If-Range: the range applies only while the file is still the one the
/// client has part of (same ETag or Last-Modified).
fn if_range_holds(headers: &HeaderMap, etag: &str, last_modified: &str) -> bool {
    match headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(v) => v == etag || v == last_modified,
    }
}

/// RFC 9110 13.2.2: If-None-Match wins over If-Modified-Since.
fn not_modified(headers: &HeaderMap, etag: &str, mtime: SystemTime) -> bool {
    if let Some(inm) = headers.get(header::IF_NONE_MATCH) {
        let Ok(inm) = inm.to_str() else { return false };
        return inm
            .split(',')
            .map(str::trim)
            .any(|t| t == "*" || t.trim_start_matches("W/") == etag);
    }
    if let Some(ims) = headers.get(header::IF_MODIFIED_SINCE) {
        if let Some(since) = ims
            .to_str()
            .ok()
            .and_then(|s| httpdate::parse_http_date(s).ok())
        {
            // HTTP dates have whole seconds.
            let secs = mtime
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let since = since
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            return secs <= since;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_stays_within_its_bytes_and_keeps_what_is_used() {
        // 1,000 one-off 16 KiB files through a 1 MiB cache, with one file
        // asked for between each of them.
        const LEN: u64 = 16 * 1024;
        let cache = FileCache::new(1 << 20);
        let t = UNIX_EPOCH;
        let body = Bytes::from(vec![0u8; LEN as usize]);
        cache.put(Path::new("/hot"), t, LEN, body.clone());
        for i in 0..1000 {
            let one_off = format!("/f{i}");
            cache.put(Path::new(&one_off), t, LEN, body.clone());
            assert!(
                cache.get(Path::new("/hot"), t, LEN).is_some(),
                "evicted at {i}"
            );
        }
        let map = cache.map.as_ref().unwrap();
        assert!(map.weight() <= 1 << 20, "{}", map.weight());
        assert!(map.len() > 32, "{} entries", map.len());
        assert!(
            cache.get(Path::new("/f999"), t, 1).is_none(),
            "size differs"
        );
        assert!(FileCache::new(0).map.is_none());
    }

    #[test]
    fn a_file_of_the_largest_cached_size_fits_a_small_cache() {
        let cache = FileCache::new(1 << 20);
        let t = UNIX_EPOCH;
        let body = Bytes::from(vec![0u8; READ_WHOLE_MAX as usize]);
        cache.put(Path::new("/big"), t, READ_WHOLE_MAX, body);
        assert!(cache.get(Path::new("/big"), t, READ_WHOLE_MAX).is_some());
    }
}
