"""The `ac/` entry: a REAPI `ActionResult` (build.bazel.remote.execution.v2), hand-encoded.

Only the fields this pipeline writes are encoded, with their numbers in remote_execution.proto:

    ActionResult            output_files = 2 (OutputFile), execution_metadata = 9
    OutputFile              path = 1, digest = 2 (Digest)
    Digest                  hash = 1 (lowercase hex sha256), size_bytes = 2
    ExecutedActionMetadata  worker = 1, auxiliary_metadata = 11 (google.protobuf.Any)
    Any                     type_url = 1, value = 2

so a Bazel cache server that parses what it stores (bazel-remote validates `ac/` uploads)
accepts the entries, and `protoc --decode` reads them. Two `Any`s carry what REAPI has no
field for: the stage's saved values (JSON; fetch's checkpoint sums, page's sizes) and an
optional ed25519 signature. Unknown fields are skipped when reading, as protobuf readers do.
Hand-encoding these five messages avoids generated code and a dependency on the REAPI protos.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

VALUES_TYPE = "type.googleapis.com/sanet_tfjs.cache.StageValues"  # JSON, not a protobuf
SIGNATURE_TYPE = "type.googleapis.com/sanet_tfjs.cache.Ed25519Signature"  # 64 raw bytes
WORKER = "sanet-tfjs"


class MalformedEntry(ValueError):
    """An `ac/` entry that is not a well-formed ActionResult of this pipeline."""


@dataclass(frozen=True)
class OutputFile:
    path: str  # relative to artifacts/, "/"-separated
    sha256: str
    size: int


@dataclass(frozen=True)
class ActionResult:
    files: tuple[OutputFile, ...]
    values: dict = field(default_factory=dict)  # the stage's saved values (doit's `values`)
    signature: bytes | None = None

    def signed_payload(self, key: str) -> bytes:
        """What a signature covers: the action key, every file's path, digest and size, and
        the values, serialized canonically (independent of the protobuf bytes)."""
        body = {
            "key": key,
            "files": [[f.path, f.sha256, f.size] for f in self.files],
            "values": self.values,
        }
        return b"sanet-tfjs cache entry v1\n" + canonical_json(body)


def canonical_json(data: object) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


# --- protobuf wire format: varints and length-delimited fields are all these messages use.


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _int_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value) if value else b""


def _any(type_url: str, value: bytes) -> bytes:
    return _bytes_field(1, type_url.encode()) + _bytes_field(2, value)


def encode(result: ActionResult) -> bytes:
    out = bytearray()
    for file in result.files:
        digest = _bytes_field(1, file.sha256.encode()) + _int_field(2, file.size)
        out += _bytes_field(2, _bytes_field(1, file.path.encode()) + _bytes_field(2, digest))
    metadata = _bytes_field(1, WORKER.encode())
    metadata += _bytes_field(11, _any(VALUES_TYPE, canonical_json(result.values)))
    if result.signature is not None:
        metadata += _bytes_field(11, _any(SIGNATURE_TYPE, result.signature))
    out += _bytes_field(9, metadata)
    return bytes(out)


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(number, value) of each field of a message: an int for varints, bytes for
    length-delimited fields; fixed-width fields are skipped."""
    fields, at = [], 0

    def varint() -> int:
        nonlocal at
        shift = value = 0
        while True:
            if at >= len(data) or shift > 63:
                raise MalformedEntry("truncated or overlong varint")
            byte = data[at]
            at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while at < len(data):
        tag = varint()
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            fields.append((number, varint()))
        elif wire == 2:
            length = varint()
            if at + length > len(data):
                raise MalformedEntry("a field runs past the end of the entry")
            fields.append((number, data[at : at + length]))
            at += length
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
        else:
            raise MalformedEntry(f"unsupported wire type {wire}")
    return fields


def _one(fields: list, number: int, kind: type, default: object) -> object:
    values = [value for n, value in fields if n == number]
    if not values:
        return default
    if not isinstance(values[-1], kind):
        raise MalformedEntry(f"field {number} has the wrong wire type")
    return values[-1]


def decode(data: bytes) -> ActionResult:
    """Parse an `ac/` entry; MalformedEntry if it is not one this pipeline can use."""
    top = _fields(data)
    files = []
    for number, value in top:
        if number != 2:
            continue
        if not isinstance(value, bytes):
            raise MalformedEntry("output_files has the wrong wire type")
        output = _fields(value)
        digest = _fields(_one(output, 2, bytes, b""))
        try:
            path = _one(output, 1, bytes, b"").decode()
            sha256 = _one(digest, 1, bytes, b"").decode()
        except UnicodeDecodeError:
            raise MalformedEntry("a path or digest is not text") from None
        files.append(OutputFile(path, sha256, _one(digest, 2, int, 0)))
    values: dict | None = None
    signature = None
    for number, value in _fields(_one(top, 9, bytes, b"")):
        if number != 11 or not isinstance(value, bytes):
            continue
        item = _fields(value)
        type_url, payload = (
            _one(item, 1, bytes, b"").decode(errors="replace"),
            _one(item, 2, bytes, b""),
        )
        if type_url == VALUES_TYPE:
            try:
                values = json.loads(payload)
            except ValueError:
                raise MalformedEntry("the stage values are not JSON") from None
        elif type_url == SIGNATURE_TYPE:
            signature = payload
    if values is None or not isinstance(values, dict):
        raise MalformedEntry("no stage values (not written by this pipeline)")
    return ActionResult(tuple(files), values, signature)
