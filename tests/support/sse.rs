//! A raw HTTP/1.1 request whose chunked response body is read as it
//! arrives: line by line (each line timestamped) or Server-Sent Event by
//! event. No HTTP client library: the tests see exactly what the server
//! sent, and when.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::Server;

pub struct Stream {
    pub reader: BufReader<TcpStream>,
    start: Instant,
    /// Decoded body bytes not yet returned.
    pending: Vec<u8>,
    done: bool,
}

impl Stream {
    /// `GET path` with `headers` (each ending in CRLF) and `Connection:
    /// close`; reads time out after 15 s.
    pub fn open(s: &Server, path: &str, headers: &str) -> Stream {
        let mut tcp = TcpStream::connect(s.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        write!(
            tcp,
            "GET {path} HTTP/1.1\r\nHost: test\r\n{headers}Connection: close\r\n\r\n"
        )
        .unwrap();
        Stream {
            reader: BufReader::new(tcp),
            start: Instant::now(),
            pending: Vec::new(),
            done: false,
        }
    }

    /// [`Stream::open`] as an `EventSource` asks: `Accept: text/event-stream`.
    pub fn open_sse(s: &Server, path: &str, headers: &str) -> Stream {
        Stream::open(s, path, &format!("Accept: text/event-stream\r\n{headers}"))
    }

    /// The status line and headers, lower-cased.
    pub fn head(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let mut l = String::new();
            self.reader.read_line(&mut l).unwrap();
            let l = l.trim_end().to_string();
            if l.is_empty() {
                return lines;
            }
            lines.push(l.to_lowercase());
        }
    }

    /// Reads one chunk of the chunked body into `pending`; false at the end
    /// (or when the connection was cut).
    fn read_chunk(&mut self) -> bool {
        if self.done {
            return false;
        }
        let mut size = String::new();
        if matches!(self.reader.read_line(&mut size), Ok(0) | Err(_)) {
            self.done = true;
            return false;
        }
        let n = match usize::from_str_radix(size.trim(), 16) {
            Ok(n) if n > 0 => n,
            _ => {
                self.done = true;
                return false;
            }
        };
        let mut data = vec![0u8; n + 2];
        if self.reader.read_exact(&mut data).is_err() {
            self.done = true;
            return false;
        }
        self.pending.extend_from_slice(&data[..n]);
        true
    }

    /// The next body line (without its newline) and when it arrived.
    pub fn line(&mut self) -> Option<(String, Duration)> {
        loop {
            if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=i).collect();
                let text = String::from_utf8_lossy(&line[..i])
                    .trim_end_matches('\r')
                    .to_string();
                return Some((text, self.start.elapsed()));
            }
            if !self.read_chunk() {
                return None;
            }
        }
    }

    /// Lines starting with `data:` up to the end, and their arrival times.
    pub fn data_lines(&mut self) -> Vec<(String, Duration)> {
        let mut out = Vec::new();
        while let Some((l, t)) = self.line() {
            if l.starts_with("data:") {
                out.push((l, t));
            }
        }
        out
    }

    /// The next block of lines up to a blank line, comments included.
    pub fn block(&mut self) -> Option<Vec<String>> {
        loop {
            if let Some(i) = self.pending.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.pending.drain(..i + 2).collect();
                let text = String::from_utf8_lossy(&block[..i]).into_owned();
                return Some(text.split('\n').map(str::to_string).collect());
            }
            if !self.read_chunk() {
                return None;
            }
        }
    }

    /// The next event's field lines; keep-alive comments are skipped.
    pub fn event(&mut self) -> Vec<String> {
        loop {
            let block = self.block().expect("the stream ended before an event");
            if !block.iter().all(|l| l.starts_with(':')) {
                return block;
            }
        }
    }
}
