# Types of the extension module; the package's modules re-export these.
import os
import pathlib
from typing import Dict, Iterator, List, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

PathLike = Union[str, "os.PathLike[str]"]
ArrayLike = npt.ArrayLike

__version__: str
STATE_FIELDS: List[str]

# --- scenetok.v2 -------------------------------------------------------------------------

def open(path: PathLike) -> "Dataset":
    """Opens a v2 dataset folder, reading only the files' footers."""

class Dataset:
    @property
    def root(self) -> pathlib.Path: ...
    @property
    def segments(self) -> List[str]:
        """Segment names, sorted."""
    def components(self, segment: str) -> List[str]:
        """The components one segment has files for (``lidar``, ``vehicle_pose``, ...)."""
    def table(self, component: str, segment: str, columns: Optional[Sequence[str]] = None) -> "pyarrow.Table":  # noqa: F821
        """One component of one segment as a ``pyarrow.Table`` in the declared column types."""
    def segment(
        self, name: str, components: Optional[Sequence[str]] = None, second_returns: bool = True
    ) -> "Segment":
        """One segment's frames, reading only ``components`` (default: all per-frame ones)."""

class Segment:
    @property
    def name(self) -> str: ...
    @property
    def timestamps(self) -> npt.NDArray[np.int64]: ...
    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> "Frame": ...
    def __iter__(self) -> Iterator["Frame"]: ...
    def frame_at(self, timestamp_micros: int) -> "Frame": ...

class Frame:
    @property
    def segment(self) -> str: ...
    @property
    def timestamp_micros(self) -> int: ...
    @property
    def vehicle_pose(self) -> Optional[npt.NDArray[np.float64]]:
        """Vehicle -> world, 4x4."""
    @property
    def lasers(self) -> List[str]: ...
    @property
    def cameras(self) -> List[str]: ...
    def range_image(self, laser: str, return_index: int = 1) -> Optional[npt.NDArray[np.float32]]:
        """``[H, W, 4]``: range, intensity, elongation, no-label-zone."""
    def points(self, laser: Optional[str] = None, return_index: int = 1) -> npt.NDArray[np.float32]:
        """``[N, 3]`` points of one laser (every laser when None), vehicle frame."""
    def point_cloud(self, laser: str, return_index: int = 1) -> Optional[Dict[str, np.ndarray]]:
        """``xyz``, ``features``, ``pixels`` and, when labelled, ``labels`` of one return."""
    def camera_jpeg(self, camera: str) -> bytes: ...
    def camera_image(self, camera: str) -> npt.NDArray[np.uint8]:
        """``[H, W, 3]`` RGB."""
    def lidar_boxes(self) -> Dict[str, object]: ...

# --- scenetok.womd -----------------------------------------------------------------------

def read_scenarios(path: PathLike) -> List["Scenario"]: ...
def iter_scenarios(path: PathLike) -> "ScenarioIterator": ...

class ScenarioIterator:
    def __iter__(self) -> "ScenarioIterator": ...
    def __next__(self) -> "Scenario": ...

class Scenario:
    @property
    def scenario_id(self) -> str: ...
    @property
    def timestamps_seconds(self) -> npt.NDArray[np.float64]: ...
    @property
    def current_time_index(self) -> int: ...
    @property
    def sdc_track_index(self) -> Optional[int]: ...
    @property
    def object_ids(self) -> npt.NDArray[np.int64]: ...
    @property
    def object_types(self) -> npt.NDArray[np.int64]: ...
    @property
    def states(self) -> npt.NDArray[np.float64]:
        """``[A, T, 9]``: ``STATE_FIELDS`` per track and step."""
    @property
    def valid(self) -> npt.NDArray[np.bool_]: ...
    @property
    def tracks_to_predict(self) -> npt.NDArray[np.int64]: ...
    @property
    def objects_of_interest(self) -> npt.NDArray[np.int64]: ...
    @property
    def map(self) -> Dict[str, object]:
        """``id``, ``type``, ``kind``, ``points [P, 3]``, ``offsets [F + 1]``."""
    def with_tracks_to_predict(self, track_indices: ArrayLike) -> "Scenario": ...

# --- scenetok.metrics --------------------------------------------------------------------

class Predictions:
    def __init__(self, scenario_id: str, object_ids: ArrayLike, trajectories: ArrayLike, scores: ArrayLike) -> None:
        """``object_ids [N]``, ``trajectories [N, K, T, 2]``, ``scores [N, K]`` (NaN: no such mode)."""
    @property
    def scenario_id(self) -> str: ...
    @property
    def object_ids(self) -> npt.NDArray[np.int64]: ...
    @property
    def trajectories(self) -> npt.NDArray[np.float64]: ...
    @property
    def scores(self) -> npt.NDArray[np.float64]: ...
    def __len__(self) -> int: ...

class MotionMetrics:
    def __init__(self, config: str = "challenge") -> None: ...
    def add(self, scenario: Scenario, predictions: Predictions) -> None: ...
    @property
    def num_scenarios(self) -> int: ...
    def result(self) -> Dict[str, Dict[str, float]]:
        """The nine breakdowns (``TYPE_VEHICLE_5`` ... ``TYPE_CYCLIST_15``)."""

def write_submission_file(
    path: PathLike,
    predictions: List[Predictions],
    *,
    method_name: str,
    account_name: Optional[str] = None,
    authors: List[str] = ...,
    affiliation: Optional[str] = None,
    description: Optional[str] = None,
    method_link: Optional[str] = None,
) -> None: ...

# --- scenetok.models ---------------------------------------------------------------------

class LidarSegmenter:
    def __init__(self, weights: PathLike) -> None: ...
    def __call__(self, xyz: ArrayLike, intensity: ArrayLike) -> npt.NDArray[np.int32]: ...

class MotionModel:
    def __init__(self, name: str, weights: Optional[PathLike] = None) -> None: ...
    @property
    def name(self) -> str: ...
    def predict(self, scenario: Scenario) -> Predictions: ...
