"""Where each stage writes under artifacts/: every output named once, here.

A stage's `products` are what later stages read; its `reports` are what people (and the
report stage) read. Timings are never in a product: a rerun that makes the same product bytes
then reruns nothing after it (Bazel keeps timings in its profile, never in action outputs).
When a stage succeeds it also writes `sums/<stage>.sha256`, the sha256 of every product file
in `sha256sum -c` format: a stage that reads another's products depends on that one file, so
it reruns exactly when a byte it could read changed (a folder of weight shards or a
SavedModel's variables included), and not when only a report did.
"""

from __future__ import annotations

from dataclasses import dataclass

from sanet_tfjs.architecture import PATCHED_PARTS as PARTS

SUMS_DIR = "sums"


@dataclass(frozen=True)
class StageOutputs:
    folder: str | None  # the folder the stage writes (its `out_dir`), if it has one
    products: tuple[str, ...]  # paths under artifacts/, files or folders
    reports: tuple[str, ...] = ()  # a checking stage's parity report first

    @property
    def all(self) -> tuple[str, ...]:
        return (*self.products, *self.reports)


def sums_file(stage: str) -> str:
    """The sums of a stage's products, under artifacts/."""
    return f"{SUMS_DIR}/{stage}.sha256"


OUTPUTS: dict[str, StageOutputs] = {
    "fixtures": StageOutputs("fixtures", products=("fixtures",)),
    "fetch": StageOutputs("checkpoints", products=("checkpoints",)),
    "patch": StageOutputs(
        "patched",
        products=tuple(f"patched/{part}.pt" for part in PARTS),
        reports=("patched/parity.json", "patched/patch.json"),
    ),
    "onnx": StageOutputs(
        "onnx", products=tuple(f"onnx/{part}.onnx" for part in PARTS), reports=("onnx/parity.json",)
    ),
    "tf": StageOutputs(
        "tf", products=tuple(f"tf/{part}" for part in PARTS), reports=("tf/parity.json",)
    ),
    "tfstyle": StageOutputs(
        "tfstyle", products=("tfstyle/saved_model",), reports=("tfstyle/parity.json",)
    ),
    "plan": StageOutputs(
        "plan", products=("plan/plan.json", "plan/uint8.npz"), reports=("plan/quantization.png",)
    ),
    # tfjs/ is the exact bundle and tfjs_small/ the page's default one (empty with
    # tfjs.quantization none), both copied whole into the site, so the reports lie beside them.
    "tfjs": StageOutputs(
        "tfjs",
        products=("tfjs", "tfjs_small"),
        reports=("tfjs_parity.json", "tfjs_timings.json"),
    ),
    "report": StageOutputs(None, products=("parity.json", "parity.md")),
    "page": StageOutputs("site", products=("site",)),
    # The verdicts and pixel errors are the product (the release reads them); times and
    # screenshots differ run to run, so they are reports no stage reads.
    "smoke": StageOutputs(
        "smoke",
        products=("smoke/smoke.json",),
        reports=("smoke/timings.json", "smoke/screenshots"),
    ),
    "release": StageOutputs("release", products=("release",)),
    "bench": StageOutputs("bench", products=("bench",)),
}

SMOKE_REPORT = "smoke/smoke.json"  # inside the smoke stage's folder; the release reads it
