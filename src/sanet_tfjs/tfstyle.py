"""One TF module that runs the whole stylization behind a serving signature.

The logic of stage `tfstyle`; its entry point is stages/tfstyle.py.

Signature `serving_default` (the seed's; contract in stylize.py):
    content [H, W, 3] float32, style [h, w, 3] float32, iters int32, max_resolution int32
    -> result [H, W, 3] float32, and the style's features style4_1, style5_1 (NCHW)

Each part is called from exactly one place in the graph, so that freezing for TensorFlow.js
inlines each weight once (two encoder call sites made a 132 MB bundle, see the notes): one
`tf.while_loop` over a single encoder call carries (step, image, style4_1, style5_1). While
the style features are empty (zero positions, their initial value) a pass encodes the style
and keeps its features; every other pass encodes the current image and runs transform and
decoder, iters of them. A caller that feeds the features of an earlier run in place of the
empty initial value skips the style's encoding: TF.js does, for the same style again
(tfjs_graph.expose_style_features names the place to feed).

The SavedModel is written by a child Python with PYTHONHASHSEED=0: TensorFlow orders the
function library it saves by iterating a hash-ordered set, so the same module saved by two
processes with random hash seeds gave two different saved_model.pb files (and a needless
rebuild of everything after this stage). fingerprint.pb also carries a random uuid; it is
set from the model's own checksum (as in the `tf` stage).
"""

from __future__ import annotations

import sys
from pathlib import Path

from .architecture import PATCHED_PARTS as PARTS
from .children import run_module
from .stylize import MIN_MAX_RESOLUTION, MIN_SIDE
from .tf_convert import fix_fingerprint_uuid


def build_module(tf_dir: Path):
    """The TFStyle tf.Module over the three SavedModels of the `tf` stage."""
    import tensorflow as tf

    class TFStyle(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="tfstyle")
            for part in PARTS:
                setattr(self, part, tf.saved_model.load(str(Path(tf_dir) / part)))

        @staticmethod
        def _fitted_size(image, max_resolution):
            """Integer (h, w) with the longer side <= max_resolution, rounded half up."""
            shape = tf.shape(image)
            height, width = shape[0], shape[1]
            longer = tf.maximum(height, width)
            scaled = longer > max_resolution
            half = longer // 2
            new_h = tf.where(scaled, (height * max_resolution + half) // longer, height)
            new_w = tf.where(scaled, (width * max_resolution + half) // longer, width)
            return new_h, new_w

        def _input_checks(self, content, style, iters, max_resolution) -> list:
            """Thunks making the contract's asserts, in stylize.check_inputs' order."""
            checks = []
            for name, image in (("content", content), ("style", style)):
                shape = tf.shape(image)
                checks += [
                    # The signature's static [None, None, 3] is not enforced on calls.
                    lambda shape=shape, name=name: tf.debugging.assert_equal(
                        shape[2], 3, message=f"{name} must be [height, width, 3] RGB"
                    ),
                    lambda shape=shape, name=name: tf.debugging.assert_positive(
                        tf.minimum(shape[0], shape[1]), message=f"{name} is empty"
                    ),
                ]
            checks += [
                lambda: tf.debugging.assert_greater_equal(iters, 1, message="iters must be >= 1"),
                lambda: tf.debugging.assert_greater_equal(
                    max_resolution,
                    MIN_MAX_RESOLUTION,
                    message=f"max_resolution must be >= {MIN_MAX_RESOLUTION}",
                ),
            ]
            for name, image in (("content", content), ("style", style)):
                checks.append(
                    lambda image=image, name=name: tf.debugging.assert_greater_equal(
                        tf.minimum(*self._fitted_size(image, max_resolution)),
                        MIN_SIDE,
                        message=f"{name} is too small: both sides must be >= {MIN_SIDE} "
                        f"pixels after scaling to max_resolution",
                    )
                )
            return checks

        def _fit(self, image, max_resolution):
            """HWC image -> [1, 3, h, w] scaled so its longer side is <= max_resolution."""
            size = tf.stack(self._fitted_size(image, max_resolution))
            resized = tf.image.resize(image[None], size, method="bilinear")
            return tf.transpose(resized, [0, 3, 1, 2])

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, None, 3], tf.float32, name="content"),
                tf.TensorSpec([None, None, 3], tf.float32, name="style"),
                tf.TensorSpec([], tf.int32, name="iters"),
                tf.TensorSpec([], tf.int32, name="max_resolution"),
            ]
        )
        def serve(self, content, style, iters, max_resolution):
            # Each check runs after the previous one and before any computation, so the first
            # broken rule is the one reported. (TFJS strips asserts: js/sanet.mjs checks there.)
            gate = []
            for make_check in self._input_checks(content, style, iters, max_resolution):
                with tf.control_dependencies(gate):
                    gate = [make_check()]
            with tf.control_dependencies(gate):
                content, style = tf.identity(content), tf.identity(style)
            content_in = self._fit(content, max_resolution)
            style_in = self._fit(style, max_resolution)
            height, width = tf.shape(content_in)[2], tf.shape(content_in)[3]
            encode = self.encoder.signatures["serving_default"]
            transform = self.transform.signatures["serving_default"]
            decode = self.decoder.signatures["serving_default"]
            channels = encode.structured_outputs["relu4_1"].shape[1]
            # No style features yet: zero positions. A caller that has them (TF.js, the same
            # style again) feeds them in place of these, and the loop never encodes the style.
            no_features = tf.zeros([1, channels, 0, 0])

            def body(step, image, style4_1, style5_1):
                encode_style = tf.equal(tf.size(style4_1), 0)
                source = tf.cond(encode_style, lambda: style_in, lambda: image)
                features = encode(image=source)
                relu4_1, relu5_1 = features["relu4_1"], features["relu5_1"]

                def keep_style():
                    return step, image, relu4_1, relu5_1

                def stylize():
                    merged = transform(
                        content4_1=relu4_1,
                        style4_1=style4_1,
                        content5_1=relu5_1,
                        style5_1=style5_1,
                    )["features"]
                    out = decode(features=merged)["image"][:, :, :height, :width]
                    return step + 1, tf.clip_by_value(out, 0.0, 1.0), style4_1, style5_1

                return tf.cond(encode_style, keep_style, stylize)

            spatial = tf.TensorShape([None, None, None, None])
            _, image, style4_1, style5_1 = tf.while_loop(
                lambda step, *_: step < iters,
                body,
                (tf.constant(0), content_in, no_features, no_features),
                shape_invariants=(tf.TensorShape([]), spatial, spatial, spatial),
            )
            image = tf.transpose(image, [0, 2, 3, 1])
            result = tf.image.resize(image, tf.shape(content)[:2], method="bilinear")
            return {
                "result": tf.reshape(result[0], tf.shape(content)),
                "style4_1": style4_1,
                "style5_1": style5_1,
            }

    return TFStyle()


def save_saved_model(tf_dir: Path, dest: Path) -> None:
    import tensorflow as tf

    module = build_module(tf_dir)
    tf.saved_model.save(module, str(dest), signatures={"serving_default": module.serve})
    fix_fingerprint_uuid(dest)


def save_in_child_process(tf_dir: Path, dest: Path) -> None:
    """`save_saved_model` in a child Python with a fixed hash seed: the same bytes every time."""
    run_module(
        "tfstyle",
        str(tf_dir),
        str(dest),
        what=f"tfstyle: saving the TFStyle SavedModel to {dest}",
        env={"PYTHONHASHSEED": "0"},
    )


if __name__ == "__main__":  # the child process of save_in_child_process
    save_saved_model(Path(sys.argv[1]), Path(sys.argv[2]))
