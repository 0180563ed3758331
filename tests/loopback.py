"""A fault-injecting variant of the loopback file server, for fetch tests.

Faults are planned per URL path and consumed in order, so each test says exactly what the
server does to each request. Everything binds to 127.0.0.1 and stops with the `with` block;
a stall sleeps at most MAX_STALL_S, so no fault can hang a test.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from sanet_tfjs.server import LoopbackServer, RangeFileHandler, serve_directory

YANDEX_API_PATH = "/yandex-api"
MAX_STALL_S = 3.0


@dataclass
class FaultPlan:
    statuses: dict[str, list[int]] = field(default_factory=dict)  # answered before serving
    drops: dict[str, list[int]] = field(default_factory=dict)  # bytes sent before a hang-up
    # bytes sent before a clean close, the Content-Length having promised the whole body
    short: dict[str, list[int]] = field(default_factory=dict)
    # (bytes sent, seconds of silence) before going on; bytes -1: before the headers
    stalls: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    html: set[str] = field(default_factory=set)  # paths answered with an HTML page
    redirect_loop: set[str] = field(default_factory=set)  # paths that redirect to themselves
    ignore_range: set[str] = field(default_factory=set)  # paths always sent whole (200)
    substitute: dict[str, bytes] = field(default_factory=dict)  # paths served other bytes
    yandex: dict[str, str] = field(default_factory=dict)  # public link -> served path
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range)

    def ranges(self, path: str) -> list[str | None]:
        return [rng for requested, rng in self.requests if requested == path]


class FaultyHandler(RangeFileHandler):
    server: LoopbackServer

    @property
    def plan(self) -> FaultPlan:
        return self.server.plan  # type: ignore[attr-defined]

    def do_GET(self) -> None:  # noqa: N802
        try:
            self.answer()
        except OSError:
            self.close_connection = True  # the client hung up first (after a stall)

    def answer(self) -> None:
        parts = urlsplit(self.path)
        self.plan.requests.append((parts.path, self.headers.get("Range")))
        if parts.path == YANDEX_API_PATH:
            self.answer_yandex(parse_qs(parts.query).get("public_key", [""])[0])
            return
        statuses = self.plan.statuses.get(parts.path)
        if statuses:
            self.send_error(statuses.pop(0))
            return
        stall = self._next_stall(parts.path)
        if stall and stall[0] < 0:
            time.sleep(stall[1])
            self.plan.stalls[parts.path].pop(0)
        if parts.path in self.plan.redirect_loop:
            self.send_response(302)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if parts.path in self.plan.ignore_range:
            del self.headers["Range"]
        if parts.path in self.plan.substitute:
            self.send_bytes(self.plan.substitute[parts.path], "application/octet-stream")
            return
        if parts.path in self.plan.html:
            body = b"<html><body>Please confirm the download</body></html>"
            self.send_bytes(body, "text/html; charset=utf-8")
            return
        super().do_GET()

    def send_bytes(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _next_stall(self, path: str) -> tuple[int, float] | None:
        stalls = self.plan.stalls.get(path)
        if not stalls:
            return None
        sent, seconds = stalls[0]
        return sent, min(seconds, MAX_STALL_S)

    def answer_yandex(self, public_key: str) -> None:
        if public_key not in self.plan.yandex:
            self.send_error(404)
            return
        body = json.dumps({"href": self.server.url + self.plan.yandex[public_key]}).encode()
        self.send_bytes(body, "application/json")

    def write_body(self, payload: bytes) -> None:
        path = urlsplit(self.path).path
        drops, short = self.plan.drops.get(path), self.plan.short.get(path)
        stall = self._next_stall(path)
        try:
            if stall and stall[0] >= 0:
                self.plan.stalls[path].pop(0)
                self.wfile.write(payload[: stall[0]])
                self.wfile.flush()
                time.sleep(stall[1])  # the client gives up meanwhile: the rest hits a closed socket
                self.wfile.write(payload[stall[0] :])
            elif drops:
                self.wfile.write(payload[: drops.pop(0)])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            elif short:
                self.wfile.write(payload[: short.pop(0)])
                self.close_connection = True
            else:
                super().write_body(payload)
        except OSError:
            self.close_connection = True  # the client hung up first: what it does next is tested


@contextmanager
def faulty_server(directory: Path, plan: FaultPlan) -> Iterator[LoopbackServer]:
    with serve_directory(directory, FaultyHandler) as server:
        server.plan = plan  # type: ignore[attr-defined]
        yield server
