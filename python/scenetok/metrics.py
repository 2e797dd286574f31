"""The WOMD motion metrics as Waymo's ``motion_metrics`` op computes them (same rules, same
breakdown names, same values), and the official ``MotionChallengeSubmission`` protobuf.

>>> m = scenetok.metrics.MotionMetrics()          # Waymo's challenge config
>>> for s in scenetok.womd.iter_scenarios(path):
...     m.add(s, scenetok.metrics.Predictions(s.scenario_id, ids, trajectories, scores))
>>> m.result()["TYPE_VEHICLE_8"]               # doctest: +SKIP
"""

import os
from typing import Iterable, Optional, Sequence, Union

from ._scenetok import MotionMetrics, Predictions, write_submission_file


def write_submission(
    path: Union[str, "os.PathLike[str]"],
    predictions: Iterable[Predictions],
    *,
    method_name: str,
    account_name: Optional[str] = None,
    authors: Sequence[str] = (),
    affiliation: Optional[str] = None,
    description: Optional[str] = None,
    method_link: Optional[str] = None,
) -> None:
    """Writes ``path`` as a binary ``MotionChallengeSubmission`` (``MOTION_PREDICTION``) holding
    every scenario's predictions, with the fields a leaderboard asks for."""
    write_submission_file(
        os.fspath(path),
        list(predictions),
        method_name=method_name,
        account_name=account_name,
        authors=list(authors),
        affiliation=affiliation,
        description=description,
        method_link=method_link,
    )


__all__ = ["MotionMetrics", "Predictions", "write_submission"]
