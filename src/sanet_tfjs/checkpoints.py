"""Loading upstream-format checkpoints safely and checking them against the architecture.

A checkpoint is a pickle: it is only ever opened with `torch.load(weights_only=True)`, whose
restricted unpickler refuses any object other than tensors and plain containers, so a
malicious file cannot run code. Every problem with the contents is reported by tensor name.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from .architecture import checkpoint_tensors
from .errors import PipelineError

EXPECTED_DTYPE = torch.float32


class CheckpointError(PipelineError):
    """A checkpoint file that cannot be used: unreadable, unsafe, or not the expected tensors."""


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state_dict pickle with the safe unpickler; no validation of its contents."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; run `doit fetch` first")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"checkpoint {path} was refused: it holds objects other than tensors, which a "
            f"state_dict never does, so it may be malicious. It was not executed. Delete it "
            f"and fetch it again from a trusted source.\n  detail: {_first_line(exc)}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CheckpointError(
            f"checkpoint {path} is not a readable PyTorch file (truncated or corrupt?). "
            f"Delete it and fetch it again.\n  detail: {_first_line(exc)}"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise CheckpointError(
            f"checkpoint {path} holds a {type(state).__name__}, not a state_dict "
            f"(a dict of tensor names to tensors)"
        )
    return state


def state_dict_problems(
    state: dict, expected: dict[str, tuple], dtype: torch.dtype = EXPECTED_DTYPE
) -> list[str]:
    """Every missing, unexpected, mis-shaped, mis-typed or non-finite tensor, by name."""
    problems = [
        f"missing tensor {key!r} (shape {list(expected[key])})"
        for key in expected
        if key not in state
    ]
    for key, value in state.items():
        if key not in expected:
            problems.append(f"unexpected tensor {key!r}")
        elif not isinstance(value, torch.Tensor):
            problems.append(f"{key!r} is a {type(value).__name__}, not a tensor")
        elif tuple(value.shape) != tuple(expected[key]):
            problems.append(
                f"{key!r} has shape {list(value.shape)}, expected {list(expected[key])}"
            )
        elif value.dtype != dtype:
            problems.append(f"{key!r} has dtype {value.dtype}, expected {dtype}")
        elif not bool(torch.isfinite(value).all()):
            problems.append(f"{key!r} contains NaN or Inf values")
    return problems


def load_checkpoint(path: Path, width_divisor: int = 1) -> dict[str, torch.Tensor]:
    """Load the upstream checkpoint at `path` (named as upstream) and validate every tensor."""
    return validate_checkpoint(Path(path), Path(path).name, width_divisor)


def validate_checkpoint(path: Path, name: str, width_divisor: int) -> dict[str, torch.Tensor]:
    """Load `path` as the upstream checkpoint `name` and validate every tensor; return it."""
    path = Path(path)
    expected = checkpoint_tensors(name, width_divisor)
    state = load_state_dict(path)
    problems = state_dict_problems(state, expected)
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise CheckpointError(
            f"checkpoint {path} does not match the SANet architecture at width_divisor="
            f"{width_divisor} ({len(problems)} problem(s)):\n{listing}\n"
            f"Is it the right file, and does model.width_divisor in pipeline.yaml match it?"
        )
    return state


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
