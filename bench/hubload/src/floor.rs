//! The floor: the least a server must do to fan one event out to N loopback
//! sockets. One thread, no HTTP library, no queues: a POST's body is written
//! as `data: <body>\n\n` to every subscriber socket in turn, then the POST is
//! answered. Requests are read just well enough for hubload's own client
//! (one head, `Content-Length` bodies); it is not a server for anything else.

use std::sync::Arc;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

type Subscribers = Arc<Mutex<Vec<TcpStream>>>;

pub async fn serve(listen: &str) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await.context("bind")?;
    // The script reads the port from the first line.
    println!("{}", listener.local_addr()?.port());
    let subs: Subscribers = Arc::new(Mutex::new(Vec::new()));
    loop {
        let (sock, _) = listener.accept().await?;
        let subs = subs.clone();
        tokio::spawn(async move {
            let _ = conn(sock, subs).await;
        });
    }
}

async fn conn(mut sock: TcpStream, subs: Subscribers) -> anyhow::Result<()> {
    sock.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = sock.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        if head.starts_with("get ") {
            sock.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\r\n",
            )
            .await?;
            subs.lock().await.push(sock);
            return Ok(());
        }
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(Ok(0), |v| v.trim().parse())?;
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 4096];
            let n = sock.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let mut event = Vec::with_capacity(len + 8);
        event.extend_from_slice(b"data: ");
        event.extend_from_slice(&buf[head_end..head_end + len]);
        event.extend_from_slice(b"\n\n");
        buf.drain(..head_end + len);
        fan_out(&subs, &event).await;
        sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await?;
    }
}

/// Writes `event` to every subscriber; a socket whose buffer is full is
/// waited for (it never is in the benchmark), a failed one is forgotten.
async fn fan_out(subs: &Subscribers, event: &[u8]) {
    let mut subs = subs.lock().await;
    let mut dead = Vec::new();
    for (i, s) in subs.iter_mut().enumerate() {
        let mut off = 0;
        while off < event.len() {
            match s.try_write(&event[off..]) {
                Ok(n) => off += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if s.writable().await.is_err() {
                        dead.push(i);
                        break;
                    }
                }
                Err(_) => {
                    dead.push(i);
                    break;
                }
            }
        }
    }
    for i in dead.into_iter().rev() {
        subs.swap_remove(i);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
