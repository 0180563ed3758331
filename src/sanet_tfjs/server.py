"""A static file server on 127.0.0.1 that honours single HTTP Range requests.

The fixture profile serves its generated checkpoints with it so that the real fetch code runs
against a real HTTP server, the smoke and bench stages serve the web pages with it, and tests
subclass `RangeFileHandler` to inject faults. It binds to the loopback address only and stops
when the `with` block ends.

With `isolation_headers` it sends COOP/COEP on every answer, so the page it serves is
cross-origin isolated (SharedArrayBuffer, hence wasm threads) without the site's service
worker: what a host with header control would do.
"""

from __future__ import annotations

import contextlib
import mimetypes
import re
import socket
import threading
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
# Types a browser insists on (module scripts, streaming wasm compilation), then mimetypes.
CONTENT_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm"}
ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
}


class RangeFileHandler(BaseHTTPRequestHandler):
    """GET and HEAD of files under `server.directory`, with `Range: bytes=a-[b]` support."""

    server: LoopbackServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass  # keep build logs clean

    def do_HEAD(self) -> None:
        self.serve_file(body=False)

    def do_GET(self) -> None:
        self.serve_file(body=True)

    def resolve(self) -> Path | None:
        name = self.path.split("?", 1)[0].lstrip("/") or "index.html"
        root = self.server.directory.resolve()
        candidate = (root / name).resolve()
        if root not in candidate.parents or not candidate.is_file():
            return None
        return candidate

    def serve_file(self, body: bool) -> None:
        path = self.resolve()
        if path is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        data = path.read_bytes()
        start, end, status = 0, len(data), HTTPStatus.OK
        match = RANGE.match(self.headers.get("Range", ""))
        if match:
            start = int(match.group(1))
            end = min(int(match.group(2)) + 1, len(data)) if match.group(2) else len(data)
            if start >= len(data) or start >= end:
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = HTTPStatus.PARTIAL_CONTENT
        self.send_response(status)
        self.send_header("Content-Type", content_type(path))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start))
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        if self.server.isolation_headers:
            for name, value in ISOLATION_HEADERS.items():
                self.send_header(name, value)
        self.end_headers()
        if body:
            self.write_body(data[start:end])

    def write_body(self, payload: bytes) -> None:
        self.wfile.write(payload)


def content_type(path: Path) -> str:
    guessed = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return CONTENT_TYPES.get(path.suffix, guessed)


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, directory: Path, handler: type[RangeFileHandler], isolation_headers: bool = False
    ) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.directory = Path(directory)
        self.isolation_headers = isolation_headers
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, tuple]:
        connection, address = super().get_request()
        with self.connections_lock:
            self.connections.add(connection)
        return connection, address

    def shutdown_request(self, request: socket.socket) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End the kept-alive connections too, as a host that went away would: otherwise their
        threads go on answering after the server has stopped."""
        with self.connections_lock:
            for connection in self.connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


@contextlib.contextmanager
def serve_directory(
    directory: Path,
    handler: type[RangeFileHandler] = RangeFileHandler,
    *,
    isolation_headers: bool = False,
) -> Iterator[LoopbackServer]:
    """Serve `directory` on an ephemeral loopback port for the duration of the block."""
    server = LoopbackServer(directory, handler, isolation_headers)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        server.close_connections()
        thread.join(timeout=5)
