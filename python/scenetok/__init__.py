"""scenetok for Python: Waymo Open Dataset v2 and WOMD reading, the WOMD motion metrics exactly
as Waymo's op computes them, and scenetok's trained models, without TensorFlow.

Submodules:

* :mod:`scenetok.v2` -- a v2 dataset folder: segments, frames, components as ``pyarrow.Table``,
  points per laser as NumPy arrays.
* :mod:`scenetok.womd` -- WOMD ``Scenario`` TFRecords: tracks and map as arrays.
* :mod:`scenetok.metrics` -- ``MotionMetrics`` (the nine official breakdowns) and the
  ``MotionChallengeSubmission`` writer.
* :mod:`scenetok.models` -- the LiDAR segmenter and the motion models as callables on arrays.
* :mod:`scenetok.errors` -- the exceptions (messages as the ``scenetok`` command prints them).
"""

from . import errors, metrics, models, v2, womd
from ._scenetok import __version__

__all__ = ["errors", "metrics", "models", "v2", "womd", "__version__"]
