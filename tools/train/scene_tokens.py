"""Scene tokens for motion samples, the twin of src/models/scene_tokens/agent_frame.rs.

`scenetok dataset motion --tokens` writes, per shard, the scene elements of the token frames in
the world frame (`tokens/<split>/<shard>.parquet`: frame, kind, x, y, z, heading, features). A
sample's tokens are the elements of its window's token frames (its current frame less each of the
plan's `history` steps) of the selected kinds (KINDS; all by default) within RANGE of the agent, at
most MAX_TOKENS: agents first, then objects, then ground tiles, within a kind the newest frame
first, then the nearest. A token row is
`[x, y, z] * 0.1` in the agent's frame at the current step, `cos, sin` of the element's heading
relative to the agent's, the frame's age (s), then the element's features (FEATURE_SETS picks
which blocks: geometry always, the image model's and/or the LiDAR encoder's pooled features).
"""
import os

import numpy as np
import pyarrow.parquet as pq
import json

POSE_LEN = 6
POSITION_SCALE = 0.1
MAX_TOKENS = 512
RANGE = 60.0
GEOMETRY = 16
FEATURE_SETS = ("all", "lidar", "image")
KINDS = ("agent", "object", "ground")  # ElementKind's names, in its order


def pooled_len(channels):
    """A pooled block's width (coverage, mean, max), as pool::pooled_len."""
    return 1 + 2 * channels


def feature_columns(image_channels, lidar_channels, which):
    """The columns of the full feature vector a feature set keeps (-1: a left-out block's
    coverage, 0 as a pipeline without that model writes it), and the layout it gives
    (image_channels, lidar_channels) -- as FeatureLayout::columns_for in Rust."""
    if which not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {which!r} (one of {FEATURE_SETS})")
    cols = list(range(GEOMETRY))
    offset = GEOMETRY
    layout = []
    for name, channels in (("image", image_channels), ("lidar", lidar_channels)):
        width = pooled_len(channels)
        if which in ("all", name):
            cols += list(range(offset, offset + width))
            layout.append(channels)
        else:
            cols.append(-1)
            layout.append(0)
        offset += width
    return cols, tuple(layout)


def select(features, columns):
    """The columns of `features` ([N, W]); -1 gives zeros."""
    out = np.zeros((len(features), len(columns)), np.float32)
    for k, c in enumerate(columns):
        if c >= 0:
            out[:, k] = features[:, c]
    return out


def window_start(scenario_id):
    return int(scenario_id.rsplit("@", 1)[1])


class TokenStore:
    """The token sidecars of one split, in memory."""

    def __init__(self, root, split, shard_names, which="all", history=(10, 0), current_index=10,
                 max_tokens=MAX_TOKENS, kinds=()):
        self.history, self.current_index, self.max_tokens = list(history), current_index, max_tokens
        # Kind ids that become tokens (None: all), as TokenSelection::with_kinds.
        self.kinds = [KINDS.index(k) for k in kinds] if kinds else None
        self.shards = []
        self.layout = None
        for name in shard_names:
            path = os.path.join(root, "tokens", split, name)
            pf = pq.ParquetFile(path)
            meta = json.loads(pf.metadata.metadata[b"scenetok.tokens"])
            layout = (meta["image_channels"], meta["lidar_channels"])
            if self.layout is None:
                self.layout = layout
                self.columns, self.model_layout = feature_columns(*layout, which)
            elif layout != self.layout:
                raise SystemExit(f"{path}: layout {layout} differs from the other sidecars' {self.layout}")
            t = pf.read()
            frame = t.column("frame").to_numpy()
            feats = t.column("features").combine_chunks().values.to_numpy().reshape(len(t), -1)
            ranges = {}
            if len(frame):
                cuts = np.flatnonzero(np.diff(frame)) + 1
                starts = np.concatenate([[0], cuts])
                ends = np.concatenate([cuts, [len(frame)]])
                ranges = {int(frame[s]): (int(s), int(e)) for s, e in zip(starts, ends)}
            self.shards.append(dict(
                ranges=ranges,
                kind=t.column("kind").to_numpy().astype(np.int64),
                xyz=np.stack([t.column(c).to_numpy() for c in ("x", "y", "z")], 1).astype(np.float64),
                heading=t.column("heading").to_numpy().astype(np.float64),
                features=select(feats, self.columns),
            ))
        self.width = POSE_LEN + (len(self.columns) if self.layout else 0)

    def tokens(self, shard, start, agent):
        """[S, width] float32 tokens of a sample: `shard` its shard's index, `start` its window's
        first frame, `agent` (x, y, z, heading) at the current step, world frame."""
        s = self.shards[shard]
        now = start + self.current_index
        ax, ay, az, ah = agent
        c, si = np.cos(ah), np.sin(ah)
        parts = []
        for h in self.history:
            r = s["ranges"].get(now - h)
            if r is None:
                continue
            lo, hi = r
            dx, dy = s["xyz"][lo:hi, 0] - ax, s["xyz"][lo:hi, 1] - ay
            lx, ly = c * dx + si * dy, -si * dx + c * dy
            dist = np.sqrt(lx * lx + ly * ly)
            ok = dist <= RANGE
            if self.kinds is not None:
                ok &= np.isin(s["kind"][lo:hi], self.kinds)
            keep = np.flatnonzero(ok)
            parts.append((np.full(len(keep), h * 0.1), keep + lo, lx[keep], ly[keep], dist[keep]))
        if not parts:
            return np.zeros((0, self.width), np.float32)
        age, rows, lx, ly, dist = (np.concatenate(p) for p in zip(*parts))
        kind = s["kind"][rows]
        order = np.lexsort((dist, age, kind))[: self.max_tokens]
        rows, age, lx, ly = rows[order], age[order], lx[order], ly[order]
        out = np.empty((len(rows), self.width), np.float32)
        out[:, 0] = lx * POSITION_SCALE
        out[:, 1] = ly * POSITION_SCALE
        out[:, 2] = (s["xyz"][rows, 2] - az) * POSITION_SCALE
        rel = s["heading"][rows] - ah
        out[:, 3] = np.cos(rel)
        out[:, 4] = np.sin(rel)
        out[:, 5] = age
        out[:, POSE_LEN:] = s["features"][rows]
        return out


def pad(token_list):
    """Tokens of a batch, padded: ([B, S, C] float32, [B, S] bool), S at least 1."""
    width = token_list[0].shape[1]
    s = max(1, max(len(t) for t in token_list))
    x = np.zeros((len(token_list), s, width), np.float32)
    v = np.zeros((len(token_list), s), bool)
    for i, t in enumerate(token_list):
        x[i, : len(t)] = t
        v[i, : len(t)] = True
    return x, v
