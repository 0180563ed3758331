"""pipeline.yaml's `parity` section: the tolerances each conversion stage checks itself at."""

from __future__ import annotations

from .base import PositiveFloat, Section


class ParitySection(Section):
    feature_rel_l2: PositiveFloat = 1e-5  # relative L2 error on feature maps
    image_max_abs: PositiveFloat = 1e-4  # max abs error of a decoded [0, 1] image
    result_max_abs: PositiveFloat = 1 / 255  # max abs error of a whole stylization result
