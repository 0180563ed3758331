"""A stage's remote-cache lookup (before it runs) and upload (after it built), as the stage
wrapper in tasks/__init__.py calls them.

Nothing from the cache is trusted unchecked: an `ac/` entry must parse, name only files under
the stage's declared outputs (every one of them), carry a valid ed25519 signature when a
public key is configured, and every blob must have the size and sha256 the entry names. Blobs
are downloaded into a temporary folder inside artifacts/ and moved into place only once all of
them passed. Any failure, of the server or of the data, prints one line and the stage builds
locally; an unreachable server is not asked again for the rest of the run.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from sanet_tfjs.files import sha256_file

from .actionresult import ActionResult, MalformedEntry, OutputFile, decode, encode
from .key import ActionInputs, Places, Uncacheable, action_key, canonical_inputs
from .store import Store, StoreSettings, open_store

SIGNING_KEY_ENV_DEFAULT = "SANET_CACHE_SIGNING_KEY"
DEBUG_ENV = "SANET_CACHE_DEBUG"  # "1": print each stage's canonical inputs (diagnose misses)
MB = 1e6


class Untrusted(Exception):
    """An entry or blob that fails a check: ignored, the stage builds locally."""


@dataclass(frozen=True)
class CacheSettings:
    store: StoreSettings
    write: bool = False
    public_key: str | None = None  # hex ed25519 public key: only entries it signed are used
    signing_key_env: str = SIGNING_KEY_ENV_DEFAULT  # the variable holding the hex private key


@dataclass
class StageRecord:
    stage: str
    outcome: str  # fetched, uploaded, present, missed, error, untrusted, uncacheable
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0


@dataclass
class RunRecord:
    """What the cache did in this doit run (the summary line at its end)."""

    stages: list[StageRecord] = field(default_factory=list)
    unreachable: str | None = None  # set at the first server error: not asked again

    def summary(self) -> str | None:
        if not self.stages:
            return None
        parts = []
        for outcome in ("fetched", "uploaded", "present", "missed", "untrusted", "error"):
            records = [r for r in self.stages if r.outcome == outcome]
            if records:
                size = sum(r.bytes for r in records) / MB
                seconds = sum(r.seconds for r in records)
                detail = (
                    f" ({size:.1f} MB, {seconds:.1f} s)"
                    if outcome in ("fetched", "uploaded")
                    else ""
                )
                parts.append(f"{len(records)} {outcome}{detail}")
        return "cache: " + ", ".join(parts) if parts else None


RUN = RunRecord()


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _signing_key(settings: CacheSettings) -> Any:
    raw = os.environ.get(settings.signing_key_env, "").strip()
    if not raw:
        return None
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(raw))


def _verify(entry: ActionResult, key: str, public_key: str) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if entry.signature is None:
        raise Untrusted("the entry is not signed and cache.public_key asks for signatures")
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key)).verify(
            entry.signature, entry.signed_payload(key)
        )
    except (InvalidSignature, ValueError):
        raise Untrusted("the entry's signature does not match cache.public_key") from None


def _is_digest(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def _check_paths(entry: ActionResult, outputs: tuple[str, ...]) -> None:
    """Every file under a declared output (no '..', no absolute path), every output present."""
    covered = set()
    for file in entry.files:
        path = PurePosixPath(file.path)
        if path.is_absolute() or ".." in path.parts or not file.path or str(path) != file.path:
            raise Untrusted(f"the entry names a path outside artifacts/: {file.path!r}")
        owner = next((o for o in outputs if file.path == o or file.path.startswith(o + "/")), None)
        if owner is None:
            raise Untrusted(f"the entry names {file.path!r}, not an output of this stage")
        if not _is_digest(file.sha256) or file.size < 0:
            raise Untrusted(f"the entry gives {file.path!r} a malformed digest")
        covered.add(owner)
    missing = [o for o in outputs if o not in covered]
    if missing:
        raise Untrusted(f"the entry lacks output(s) {', '.join(missing)}")


class StageCache:
    """The remote cache as one stage sees it."""

    def __init__(
        self,
        settings: CacheSettings,
        stage: str,
        inputs: ActionInputs,
        places: Places,
        outputs: tuple[str, ...],  # the stage's outputs, relative to artifacts/
        sha256: Callable[[Path], str],
        store_factory: Callable[[StoreSettings], Store] = open_store,
    ) -> None:
        self.settings = settings
        self.stage = stage
        self.inputs = inputs
        self.places = places
        self.outputs = outputs
        self.sha256 = sha256
        self.store_factory = store_factory
        self._store: Store | None = None
        self.key: str | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = self.store_factory(self.settings.store)
        return self._store

    def _record(self, outcome: str, started: float, files: int = 0, size: int = 0) -> None:
        RUN.stages.append(StageRecord(self.stage, outcome, files, size, time.monotonic() - started))

    def _server_error(self, exc: Exception, doing: str, started: float) -> None:
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        RUN.unreachable = reason
        self._record("error", started)
        say(
            f"{self.stage}: cache error while {doing} ({reason}); building locally, the cache"
            " is not asked again in this run"
        )

    # --- lookup

    def fetch(self) -> dict | None:
        """Restore the stage's outputs from the cache; its saved values, or None (build it)."""
        started = time.monotonic()
        if RUN.unreachable:
            return None
        try:
            if os.environ.get(DEBUG_ENV) == "1":
                document = canonical_inputs(self.inputs, self.places, self.sha256)
                say(json.dumps(document, indent=1, sort_keys=True))
            self.key = action_key(self.inputs, self.places, self.sha256)
        except Uncacheable as exc:
            say(f"{self.stage}: not looked up in the cache ({exc})")
            self._record("uncacheable", started)
            return None
        denied = ""
        try:
            data = self.store.read(f"ac/{self.key}")
        except PermissionError:
            # S3 answers 403, not 404, for a missing object to whoever may not list the bucket
            # (anonymous readers of a public one): a miss, or an entry these keys cannot read.
            data, denied = None, ", or not readable with these credentials: access denied"
        except Exception as exc:
            self._server_error(exc, "looking up its entry", started)
            return None
        if data is None:
            self._record("missed", started)
            note = "" if self.settings.write else "; read-only, it will not be uploaded"
            say(f"{self.stage}: not in the cache{denied} (key {self.key[:12]}){note}")
            return None
        for stale in self.places.artifacts.glob(f".cache-{self.stage}.*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)  # a killed run's download: never trusted
        staging = Path(
            tempfile.mkdtemp(
                prefix=f".cache-{self.stage}.", suffix=".tmp", dir=self.places.artifacts
            )
        )
        try:
            entry = self._trusted(data)
            size = self._restore(entry, staging)
        except (Untrusted, MalformedEntry) as exc:
            self._record("untrusted", started)
            say(f"{self.stage}: cache entry {self.key[:12]} ignored ({exc}); building locally")
            return None
        except Exception as exc:
            self._server_error(exc, "downloading its files", started)
            return None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        seconds = time.monotonic() - started
        self._record("fetched", started, len(entry.files), size)
        say(
            f"{self.stage}: fetched from the cache ({len(entry.files)} files, {size / MB:.1f} MB,"
            f" {seconds:.1f} s)"
        )
        return entry.values

    def _trusted(self, data: bytes) -> ActionResult:
        entry = decode(data)
        if self.settings.public_key:
            _verify(entry, self.key, self.settings.public_key)
        _check_paths(entry, self.outputs)
        return entry

    def _restore(self, entry: ActionResult, staging: Path) -> int:
        blobs = staging / "cas"
        blobs.mkdir()
        digests = {f.sha256: f.size for f in entry.files}
        wanted = [(f"cas/{d}", blobs / d) for d, size in sorted(digests.items()) if size > 0]
        try:
            self.store.download(wanted)
        except FileNotFoundError as exc:
            raise Untrusted(f"a blob the entry names is missing from the cache ({exc})") from None
        for digest, size in digests.items():
            blob = blobs / digest
            if size == 0:
                blob.touch()
            if not blob.is_file():
                raise Untrusted(f"blob cas/{digest[:12]} was not downloaded")
            if blob.stat().st_size != size:
                raise Untrusted(
                    f"blob cas/{digest[:12]} has {blob.stat().st_size} bytes, the entry says {size}"
                )
            if sha256_file(blob) != digest:
                raise Untrusted(f"blob cas/{digest[:12]} does not have the sha256 the entry names")
        tree = staging / "tree"
        placed: dict[str, Path] = {}
        for file in entry.files:
            dest = tree / file.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            if file.sha256 in placed:  # a second file with the same bytes: its own copy
                shutil.copyfile(placed[file.sha256], dest)
            else:  # the first: the downloaded blob itself (no second write of its bytes)
                os.replace(blobs / file.sha256, dest)
                placed[file.sha256] = dest
        # Every blob checked: now into place, output by output (a folder replaced whole).
        for output in self.outputs:
            staged, dest = tree / output, self.places.artifacts / output
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.is_dir() and not dest.is_symlink():
                old = Path(
                    tempfile.mkdtemp(prefix=f".{dest.name}.old.", suffix=".tmp", dir=dest.parent)
                )
                os.replace(dest, old / dest.name)
                os.replace(staged, dest)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(staged, dest)
        return sum(f.size for f in entry.files)

    # --- upload

    def upload(self, files: list[str], values: dict) -> None:
        """Store what the stage built (`files`: relative to the repository): blobs first, the
        ac/ entry last and only if absent."""
        if not self.settings.write or RUN.unreachable:
            return
        started = time.monotonic()
        if self.key is None:
            # Not looked up because a file its checks read did not exist yet (fetch's lock, on
            # a first fetch): the stage wrote it, so a clone holding it will ask this key.
            try:
                self.key = action_key(self.inputs, self.places, self.sha256)
            except Uncacheable:
                return
        try:
            signer = _signing_key(self.settings)
        except ValueError as exc:
            say(
                f"{self.stage}: not uploaded ({self.settings.signing_key_env} is not a hex"
                f" ed25519 private key: {exc})"
            )
            return
        if self.settings.public_key and signer is None:
            say(
                f"{self.stage}: not uploaded (cache.public_key is set and"
                f" {self.settings.signing_key_env} is empty: readers would ignore the entry)"
            )
            return
        outputs = []
        for name in files:
            path = self.places.root / name
            relative = Path(os.path.relpath(path, self.places.artifacts)).as_posix()
            outputs.append(OutputFile(relative, self.sha256(path), path.stat().st_size))
        outputs.sort(key=lambda f: f.path)
        values = json.loads(json.dumps(values))  # as doit saves them (tuples become lists)
        entry = ActionResult(tuple(outputs), values)
        if signer is not None:
            entry = ActionResult(entry.files, values, signer.sign(entry.signed_payload(self.key)))
        try:
            sent = 0
            local = {f.sha256: self.places.artifacts / f.path for f in outputs}
            for digest, path in sorted(local.items()):
                if path.stat().st_size and not self.store.exists(f"cas/{digest}"):
                    self.store.put(path, f"cas/{digest}")
                    sent += path.stat().st_size
            created = self.store.create(f"ac/{self.key}", encode(entry))
        except PermissionError as exc:
            self._record("error", started)
            say(
                f"{self.stage}: not uploaded: the cache refused the write ({exc}); check the"
                " credentials, or set cache.write: false"
            )
            return
        except Exception as exc:
            if type(exc).__name__ == "NoCredentialsError":  # botocore's, without importing it
                self._record("error", started)
                say(f"{self.stage}: not uploaded: writing needs credentials and there are none")
                return
            self._server_error(exc, "uploading", started)
            return
        seconds = time.monotonic() - started
        total = sum(f.size for f in outputs)
        if created:
            self._record("uploaded", started, len(outputs), sent)
            say(
                f"{self.stage}: uploaded to the cache ({len(outputs)} files, {sent / MB:.1f} MB"
                f" new of {total / MB:.1f} MB, {seconds:.1f} s)"
            )
        else:
            self._record("present", started, len(outputs))
            say(f"{self.stage}: already in the cache (another build stored it first)")
