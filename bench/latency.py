#!/usr/bin/env python3
"""Flush-to-client latency: reads an SSE stream whose events carry the PHP
script's microtime(true) at the moment it flushed, and prints p50 and p99 of
(arrival - flush) in milliseconds. Same machine, same clock."""
import socket
import sys
import time
from urllib.parse import urlsplit

url = urlsplit(sys.argv[1])
s = socket.create_connection((url.hostname, url.port), timeout=30)
s.sendall(f"GET {url.path}?{url.query} HTTP/1.1\r\nHost: {url.hostname}\r\nConnection: close\r\n\r\n".encode())
buf = b""
lat = []
head = None
while True:
    chunk = s.recv(65536)
    now = time.time()
    if not chunk:
        break
    buf += chunk
    if head is None:
        if b"\r\n\r\n" not in buf:
            continue
        head, buf = buf.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n", 1)[0]
        if b" 200 " not in status + b" ":
            sys.exit(f"latency: {url.geturl()} answered {status.decode(errors='replace')}")
    while b"\n" in buf:
        line, buf = buf.split(b"\n", 1)
        if line.startswith(b"data: "):
            try:
                lat.append((now - float(line[6:])) * 1000.0)
            except ValueError:
                pass
lat.sort()
if not lat:
    print("0 0 0")
    sys.exit(0)
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"{p(0.50):.3f} {p(0.99):.3f} {len(lat)}")
