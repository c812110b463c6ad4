//! Static files: Content-Type by extension, Last-Modified and ETag, 304s.

use std::io::Read;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
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
        let mut buf = Vec::with_capacity(len as usize);
        let mut file = file;
        if file.read_to_end(&mut buf).is_err() {
            return body::status(StatusCode::INTERNAL_SERVER_ERROR);
        }
        Response::new(Body::full(buf))
    } else {
        let stream = ReaderStream::with_capacity(tokio::fs::File::from_std(file), STREAM_CHUNK);
        let mut r = Response::new(Body::File(stream));
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        r
    };
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
