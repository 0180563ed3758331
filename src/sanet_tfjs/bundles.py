"""The model bundles a site carries, named once: the tfjs stage writes them, the page stage
places them, the smoke stage and the page choose between them."""

from __future__ import annotations

EXACT_BUNDLE = "model"  # in the site: the float32 bundle, checked against PyTorch
SMALL_BUNDLE = "model-small"  # in the site: the page's default, within its fidelity budget
FIDELITY_JSON = "fidelity.json"  # beside the small bundle (tfjs stage): what its plan measured
