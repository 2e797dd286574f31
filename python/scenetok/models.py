"""scenetok's models on arrays, on the CPU. The trained weights ship in the wheel
(``scenetok/_data/weights``); ``weights=`` takes another file written by the same trainer.

>>> seg = scenetok.models.LidarSegmenter()
>>> classes = seg(xyz, intensity)                 # [N] int32, Segmentation.Type
>>> model = scenetok.models.motion_model("transformer")
>>> predictions = model.predict(scenario)         # scenetok.metrics.Predictions
"""

import os
from pathlib import Path
from typing import Optional, Union

from . import _scenetok
from ._scenetok import MotionModel
from .errors import InputNotFoundError

PathLike = Union[str, "os.PathLike[str]"]

#: The trained weights the package ships, per model.
WEIGHTS = {
    "lidar-seg": "lidar_seg_minkunet.safetensors",
    "transformer": "motion_transformer.safetensors",
}


def weights_path(model: str) -> Path:
    """The shipped weights of ``model`` (a key of :data:`WEIGHTS`): in the package, else under
    ``$SCENETOK_DATA/weights`` (a source checkout's ``data/``)."""
    name = WEIGHTS[model]
    candidates = [Path(__file__).parent / "_data" / "weights" / name]
    if os.environ.get("SCENETOK_DATA"):
        candidates.append(Path(os.environ["SCENETOK_DATA"]) / "weights" / name)
    for c in candidates:
        if c.is_file():
            return c
    looked = ", ".join(str(c) for c in candidates)
    raise InputNotFoundError(f"{name} not found: looked in {looked} (pass weights=PATH)")


def LidarSegmenter(weights: Optional[PathLike] = None) -> "_scenetok.LidarSegmenter":
    """The LiDAR encoder as a 23-class segmenter: ``seg(xyz [N, 3], intensity [N])`` gives every
    point's class."""
    return _scenetok.LidarSegmenter(os.fspath(weights) if weights is not None else str(weights_path("lidar-seg")))


def motion_model(name: str = "transformer", weights: Optional[PathLike] = None) -> MotionModel:
    """A motion model by name: ``transformer`` (the trained one; its shipped weights unless
    ``weights`` is given), or the baselines ``constant-velocity``, ``ctra``, ``lane-follower``."""
    if name == "transformer" and weights is None:
        weights = weights_path("transformer")
    return MotionModel(name, os.fspath(weights) if weights is not None else None)


__all__ = ["LidarSegmenter", "MotionModel", "WEIGHTS", "motion_model", "weights_path"]
