"""A fault-injecting variant of the loopback file server, for fetch tests.

Faults are planned per URL path and consumed in order, so each test says exactly what the
server does to each request. Everything binds to 127.0.0.1 and stops with the `with` block.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from sanet_tfjs.server import LoopbackServer, RangeFileHandler, serve_directory

YANDEX_API_PATH = "/yandex-api"


@dataclass
class FaultPlan:
    statuses: dict[str, list[int]] = field(default_factory=dict)  # answered before serving
    drops: dict[str, list[int]] = field(default_factory=dict)  # bytes sent before a hang-up
    html: set[str] = field(default_factory=set)  # paths answered with an HTML page
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
        parts = urlsplit(self.path)
        self.plan.requests.append((parts.path, self.headers.get("Range")))
        if parts.path == YANDEX_API_PATH:
            self.answer_yandex(parse_qs(parts.query).get("public_key", [""])[0])
            return
        statuses = self.plan.statuses.get(parts.path)
        if statuses:
            self.send_error(statuses.pop(0))
            return
        if parts.path in self.plan.html:
            body = b"<html><body>Please confirm the download</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def answer_yandex(self, public_key: str) -> None:
        if public_key not in self.plan.yandex:
            self.send_error(404)
            return
        body = json.dumps({"href": self.server.url + self.plan.yandex[public_key]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def write_body(self, payload: bytes) -> None:
        drops = self.plan.drops.get(urlsplit(self.path).path)
        if not drops:
            super().write_body(payload)
            return
        self.wfile.write(payload[: drops.pop(0)])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)


@contextmanager
def faulty_server(directory: Path, plan: FaultPlan) -> Iterator[LoopbackServer]:
    with serve_directory(directory, FaultyHandler) as server:
        server.plan = plan  # type: ignore[attr-defined]
        yield server
