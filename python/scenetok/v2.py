"""Waymo Open Dataset v2 folders (``{root}/{component}/{segment}.parquet``), read tolerantly.

>>> ds = scenetok.v2.open("waymo_v2/validation")
>>> seg = ds.segment(ds.segments[0], components=["lidar", "lidar_calibration", "lidar_pose", "vehicle_pose"])
>>> frame = seg[0]
>>> xyz = frame.points("TOP")                 # [N, 3] float32, vehicle frame
>>> boxes = ds.table("lidar_box", ds.segments[0])   # pyarrow.Table
"""

from ._scenetok import Dataset, Frame, Segment, open

__all__ = ["Dataset", "Frame", "Segment", "open"]
