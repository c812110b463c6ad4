//! Static files: Content-Type by extension, Last-Modified and ETag, 304s.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

use super::body::{self, Body};

/// Files up to this size are read in one go on the runtime thread (from the
/// page cache this is a few microseconds, cheaper than a blocking-pool hop);
/// larger ones stream from disk in chunks.
const READ_WHOLE_MAX: u64 = 256 * 1024;
const STREAM_CHUNK: usize = 64 * 1024;

pub fn serve(path: &Path, method: &Method, headers: &HeaderMap) -> Response<Body> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return body::status(StatusCode::FORBIDDEN)
        }
        Err(_) => return body::status(StatusCode::NOT_FOUND),
    };
    let Ok(meta) = file.metadata() else {
        return body::status(StatusCode::NOT_FOUND);
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
    } else {
        let mut file = file;
        if start > 0 && file.seek(SeekFrom::Start(start)).is_err() {
            return body::status(StatusCode::INTERNAL_SERVER_ERROR);
        }
        let mut r = if count <= READ_WHOLE_MAX {
            let mut buf = Vec::with_capacity(count as usize);
            if (&mut file).take(count).read_to_end(&mut buf).is_err() {
                return body::status(StatusCode::INTERNAL_SERVER_ERROR);
            }
            Response::new(Body::full(buf))
        } else {
            let file = tokio::fs::File::from_std(file).take(count);
            let mut r = Response::new(Body::File(ReaderStream::with_capacity(file, STREAM_CHUNK)));
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(count));
            r
        };
        if let Some(range) = &range {
            *r.status_mut() = StatusCode::PARTIAL_CONTENT;
            let v = format!("bytes {}-{}/{len}", range.start(), range.end());
            if let Ok(v) = HeaderValue::from_str(&v) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
        }
        r
    };
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
