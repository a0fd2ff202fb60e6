"""A static file server that stands in for a cloud bucket in the same region: HTTP/1.1 with range
requests, a fixed latency added to every request and one bandwidth cap shared by all connections.
Several ranges in one request are answered as multipart/byteranges (many HTTP servers do; S3 does
not, and `multirange=False` answers as S3 would, with the first range only, which GDAL detects).
Counts requests and bytes sent.

It runs in a process of its own (`serve_in_process`), as a bucket does: GDAL holds the GIL while it
opens a file, so a server thread in the reading process could never answer that first request."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

CHUNK = 64 * 1024


class Bucket:
    def __init__(self, root: Path, latency_s: float = 0.020, bandwidth_bps: float = 100e6,
                 multirange: bool = True) -> None:
        self.root, self.latency_s, self.bandwidth_bps = Path(root).resolve(), latency_s, bandwidth_bps
        self.multirange = multirange
        self.lock = threading.Lock()
        self.next_free = 0.0  # when the shared link is free again (perf_counter seconds)
        self.requests = 0
        self.bytes_sent = 0
        bucket = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as GDAL's curl expects

            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(head=True)

            def do_GET(self) -> None:
                self._serve(head=False)

            def _serve(self, head: bool) -> None:
                if self.path in ("/_stats", "/_reset"):
                    if self.path == "/_reset":
                        bucket.reset()
                    body = json.dumps({"requests": bucket.requests, "bytes_sent": bucket.bytes_sent}).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                time.sleep(bucket.latency_s)
                with bucket.lock:
                    bucket.requests += 1
                relative = self.path.lstrip("/").split("?")[0]
                if relative.startswith("run"):  # /run<k>/...: a fresh URL per run, so no client cache is warm
                    relative = relative.partition("/")[2]
                path = (bucket.root / relative).resolve()
                if bucket.root not in path.parents or not path.is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                size = path.stat().st_size
                spec = self.headers.get("Range")
                ranges = _parse(spec, size) if spec else None
                if not ranges:
                    self._send(200, {"Content-Type": "application/octet-stream"}, [(path, 0, size - 1)], size, head)
                elif len(ranges) == 1 or not bucket.multirange:
                    a, b = ranges[0]
                    self._send(206, {"Content-Type": "application/octet-stream",
                                     "Content-Range": f"bytes {a}-{b}/{size}"}, [(path, a, b)], size, head)
                else:
                    self._multipart(path, ranges, size, head)

            def _send(self, status: int, headers: dict, parts: list, size: int, head: bool) -> None:
                length = sum(b - a + 1 for _, a, b in parts)
                self.send_response(status)
                for k, v in {**headers, "Accept-Ranges": "bytes", "Content-Length": str(length)}.items():
                    self.send_header(k, v)
                self.end_headers()
                if not head:
                    for path, a, b in parts:
                        with path.open("rb") as f:
                            f.seek(a)
                            bucket.send(self.wfile, f.read(b - a + 1))

            def _multipart(self, path: Path, ranges: list, size: int, head: bool) -> None:
                boundary = "landcoverbenchboundary"
                body = bytearray()
                with path.open("rb") as f:
                    for a, b in ranges:
                        f.seek(a)
                        body += (f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                                 f"Content-Range: bytes {a}-{b}/{size}\r\n\r\n").encode()
                        body += f.read(b - a + 1) + b"\r\n"
                body += f"--{boundary}--\r\n".encode()
                self.send_response(206)
                self.send_header("Content-Type", f"multipart/byteranges; boundary={boundary}")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if not head:
                    bucket.send(self.wfile, bytes(body))

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def send(self, out, data: bytes) -> None:
        """Write `data` at no more than the shared bandwidth."""
        for start in range(0, len(data), CHUNK):
            piece = data[start:start + CHUNK]
            with self.lock:
                now = time.perf_counter()
                begin = max(now, self.next_free)
                self.next_free = begin + len(piece) / self.bandwidth_bps
                self.bytes_sent += len(piece)
                wait = self.next_free - now
            if wait > 0:
                time.sleep(wait)
            out.write(piece)

    def reset(self) -> None:
        with self.lock:
            self.requests, self.bytes_sent = 0, 0

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _parse(spec: str, size: int) -> list[tuple[int, int]] | None:
    if not spec.startswith("bytes="):
        return None
    ranges = []
    for part in spec.removeprefix("bytes=").split(","):
        first, _, last = part.strip().partition("-")
        if first == "":  # a suffix: the last N bytes
            a, b = max(0, size - int(last)), size - 1
        else:
            a, b = int(first), min(int(last) if last else size - 1, size - 1)
        if a <= b:
            ranges.append((a, b))
    return ranges or None


class RemoteBucket:
    """A `Bucket` in a child process: its URL, its counters (the control requests are not counted)."""

    def __init__(self, root: Path, latency_s: float, bandwidth_bps: float) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, str(root), str(latency_s), str(bandwidth_bps)],
                                     stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()

    def _control(self, what: str) -> dict:
        with urllib.request.urlopen(f"{self.url}/{what}", timeout=30) as response:
            return json.loads(response.read())

    def reset(self) -> None:
        self._control("_reset")

    def stats(self) -> dict:
        return self._control("_stats")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def serve_in_process(root: Path, latency_s: float, bandwidth_bps: float) -> RemoteBucket:
    return RemoteBucket(root, latency_s, bandwidth_bps)


if __name__ == "__main__":
    bucket = Bucket(Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]))
    print(bucket.url, flush=True)
    bucket.thread.join()
