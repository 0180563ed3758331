"""pipeline.yaml: the one place for settings, validated on load.

Each stage declares the keys it reads (tasks/), is handed their values, and its doit task
depends on exactly those values, so editing a key reruns only the stages that read it. An
invalid file stops everything with one message that names every bad key path; nothing is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from .architecture import CHECKPOINT_FILES, WIDTH_DIVISORS
from .errors import PipelineError


class ConfigError(PipelineError):
    """pipeline.yaml is missing, unreadable or invalid."""


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
    return value


def _mirror(value: str) -> str:
    # A mirror is a folder (no scheme) or an http(s) base URL.
    if "://" in value:
        _http_url(value)
    elif not value.strip():
        raise ValueError("must be an http(s) URL or a directory path, got an empty string")
    return value


def _width_divisor(value: int) -> int:
    if value not in WIDTH_DIVISORS:
        raise ValueError(f"must be one of {list(WIDTH_DIVISORS)}, got {value}")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
Mirror = Annotated[str, AfterValidator(_mirror)]
PositiveFloat = Annotated[float, Field(gt=0)]
CheckpointFile = Literal[CHECKPOINT_FILES]  # type: ignore[valid-type]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ModelSection(Section):
    width_divisor: Annotated[int, AfterValidator(_width_divisor)] = 1


class FixtureSection(Section):
    seed: Annotated[int, Field(ge=0)] = 2019


class CheckpointSources(Section):
    yandex: HttpUrl | None = None
    github: HttpUrl | None = None


class FetchSection(Section):
    profile: Literal["fixture", "upstream"] = "fixture"
    mirror: Mirror | None = None
    lock_file: str = "checkpoints.lock.json"
    connect_timeout_s: PositiveFloat = 10.0
    read_timeout_s: PositiveFloat = 60.0
    retries: Annotated[int, Field(ge=0, le=20)] = 4
    backoff_s: Annotated[float, Field(ge=0, le=60)] = 1.0
    yandex_api: HttpUrl = "https://cloud-api.yandex.net/v1/disk/public/resources/download"
    checkpoints: dict[CheckpointFile, CheckpointSources]

    @field_validator("checkpoints")
    @classmethod
    def _every_checkpoint_listed(cls, value: dict) -> dict:
        missing = [name for name in CHECKPOINT_FILES if name not in value]
        if missing:
            raise ValueError(f"must list every upstream file; missing {missing}")
        return value


class OnnxSection(Section):
    # onnx-tf 1.10 converts opset 10 cleanly; opset 11+ pads become tensors that onnx-tf
    # wraps in tf.cond, which TensorFlow.js fails on (toolchain notes).
    opset: Annotated[int, Field(ge=9, le=13)] = 10
    constant_folding: bool = False


class ParitySection(Section):
    feature_rel_l2: PositiveFloat = 1e-5  # relative L2 error on feature maps
    image_max_abs: PositiveFloat = 1e-4  # max abs error of a decoded [0, 1] image
    result_max_abs: PositiveFloat = 1 / 255  # max abs error of a whole stylization result


Quantization = Literal["none", "float16", "uint8", "auto"]

Resolution = Annotated[int, Field(ge=17, le=2048)]


class FidelitySection(Section):
    # What `quantization: auto` keeps: PSNR and SSIM of the benchmark's pair at each of
    # `resolutions` against the float32 model (src/sanet_tfjs/quantize.py).
    psnr_db: Annotated[float, Field(gt=0)] = 35.0
    ssim: Annotated[float, Field(gt=0, le=1)] = 0.99
    resolutions: Annotated[list[Resolution], Field(min_length=1)] = [256, 512]


class TfjsSection(Section):
    quantization: Quantization = "none"
    fidelity: FidelitySection = FidelitySection()
    optimize: bool = True  # the graph rewrites of tfjs_graph.py; false: the converter's graph
    shard_bytes: Annotated[int, Field(ge=1024)] = 4 * 1024 * 1024
    # An unquantized bundle may exceed the float32 parameters by this factor at most
    # (manifest rounding); a weight stored twice shows as about 2.
    max_size_ratio: Annotated[float, Field(ge=1.0)] = 1.02


Backend = Literal["webgl", "wasm", "cpu"]
PageBackend = Literal["webgpu", "webgl", "wasm", "cpu"]


class SmokeSection(Section):
    # backend -> the maximum resolutions it stylizes (and is timed) at; a backend the browser
    # does not offer is noted, not failed.
    backends: dict[PageBackend, list[Resolution]] = {
        "wasm": [256, 512],
        "webgl": [256],
        "webgpu": [64],
    }
    # whose pixels must match PyTorch
    checked_backends: list[PageBackend] = ["wasm", "webgl", "webgpu"]
    iters: Annotated[int, Field(ge=1, le=5)] = 1
    max_abs: PositiveFloat = 2 / 255


class BenchSection(Section):
    resolutions: Annotated[list[Resolution], Field(min_length=1)] = [256, 512]
    warmup: Annotated[int, Field(ge=0, le=5)] = 1
    runs: Annotated[int, Field(ge=1, le=20)] = 3
    runtimes: list[Literal["pytorch", "onnxruntime", "tensorflow"]] = [
        "pytorch",
        "onnxruntime",
        "tensorflow",
    ]
    browser_backends: list[Backend] = ["wasm"]
    # TFJS bundles besides the float32 one; each is timed and compared with float32.
    quantizations: list[Literal["float16", "uint8", "auto"]] = ["float16", "uint8", "auto"]
    # The converter's graph without tfjs_graph.py's rewrites, timed at the first resolution
    # only: the "before" of the speed work.
    unoptimized_baseline: bool = True
    # wasm threads of the browser rows: the float32 bundle and the peer run at each, the other
    # bundles at the first. tfjs runs at most cores / 2 threads, so the tabs report more cores.
    threads: Annotated[list[Annotated[int, Field(ge=1, le=16)]], Field(min_length=1)] = [1, 2]
    reported_cores: Annotated[int, Field(ge=1, le=64)] = 4
    # The peer: onnxruntime-web on the pipeline's own three ONNX files, with the same loop.
    onnxruntime_web: bool = True
    # One more resolution, for the Python runtimes and for TF.js float32 and the peer at the
    # most threads only (slow): the 1024-px photo with the 512-px style. None: skip it.
    large_resolution: Resolution | None = 1024


def _cache_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("s3", "http", "https", "file") or not (parts.netloc or parts.path):
        raise ValueError(f"must be an s3://, http(s):// or file:// URL, got {value!r}")
    return value


def _hex_key(value: str) -> str:
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value.lower()):
        raise ValueError("must be a 32-byte ed25519 public key in hex (64 characters)")
    return value.lower()


class CacheSection(Section):
    # The shared build cache (docs/cache.md). Credentials never come from this file: S3 reads
    # the AWS_* environment variables, an http(s) URL with a password comes from SANET_CACHE_URL.
    url: Annotated[str, AfterValidator(_cache_url)] | None = None  # None: no remote cache
    write: bool = False  # upload what this machine builds (CI on main); SANET_CACHE_WRITE=1
    endpoint_url: HttpUrl | None = None  # an S3 endpoint other than AWS (SeaweedFS, MinIO)
    connect_timeout_s: PositiveFloat = 5.0
    read_timeout_s: PositiveFloat = 30.0
    retries: Annotated[int, Field(ge=0, le=10)] = 1
    # ed25519: entries without a valid signature by this key are ignored (None: not checked)
    public_key: Annotated[str, AfterValidator(_hex_key)] | None = None
    signing_key_env: str = "SANET_CACHE_SIGNING_KEY"  # the writers' private key (hex), by name


class PipelineConfig(Section):
    artifacts_dir: str = "artifacts"
    model: ModelSection = ModelSection()
    fixture: FixtureSection = FixtureSection()
    fetch: FetchSection
    onnx: OnnxSection = OnnxSection()
    parity: ParitySection = ParitySection()
    tfjs: TfjsSection = TfjsSection()
    smoke: SmokeSection = SmokeSection()
    bench: BenchSection = BenchSection()
    cache: CacheSection = CacheSection()

    def section(self, name: str) -> dict[str, Any]:
        """A section as plain JSON data (the values handed to stages and watched by doit)."""
        return getattr(self, name).model_dump(mode="json")


def _key_path(loc: tuple) -> str:
    path = ""
    for part in loc:
        if part == "[key]":  # pydantic marks errors in a mapping's key this way
            continue
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def _describe(error: dict) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key (check its spelling against pipeline.yaml's documented keys)"
    if error["type"] == "missing":
        return "required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    if "input" in error and not isinstance(error["input"], dict | list):
        message += f" (got {error['input']!r})"
    return message


def parse_config(data: Any, source: str = "pipeline.yaml") -> PipelineConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"  - {_key_path(e['loc'])}: {_describe(e)}" for e in exc.errors()]
        raise ConfigError(
            f"{source} is invalid ({len(lines)} problem(s)); nothing was built:\n"
            + "\n".join(lines)
        ) from None


def load_config(path: Path) -> PipelineConfig:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} not found; run from the repository root") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    return parse_config(data, str(path))
