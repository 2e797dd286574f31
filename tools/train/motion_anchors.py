"""Intention anchors for the motion transformer's mode assignment (MTR's rule, arXiv 2209.13508
§3.3, with one anchor per mode query).

Plain winner-take-all (each sample trains the mode already nearest its truth) lets all six modes
settle on one route at six speeds: the shipped 3,500-step model's modes all drove straight, and a
vehicle that turned at the intersection cost it 8.6 m minADE@8s against the lane follower's 3.2
(23% of the test vehicles). Anchors fix which mode answers for which kind of future, so the
turns get modes of their own from the first step:

- per agent type (vehicle, pedestrian, cyclist), k-means (k-means++ seeding, a fixed seed, 100
  Lloyd iterations) over the training futures that are valid at all 80 steps, each described by
  its positions at 1, 2, ..., 8 s in the agent's frame; an anchor is the mean 80-step trajectory
  of its cluster;
- a sample is assigned the anchor nearest its truth by mean displacement over the truth's valid
  steps (the same distance winner-take-all uses), and that anchor's mode is the one trained by
  NLL and the classification target;
- a type with fewer than K fully valid training futures has no anchors and keeps winner-take-all
  (a tiny real-data run, e.g. the shared WOMD scenario).

Inference is unchanged: the model still outputs K modes and their logits.
"""
import itertools

import numpy as np
import torch

import motion_twin as twin

SAMPLE_STEPS = slice(9, 80, 10)  # 1 s ... 8 s at 10 Hz
ITERATIONS = 100


def kmeans(x, k, seed):
    """Lloyd's k-means with k-means++ seeding; returns the cluster of every row."""
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(len(x))]]
    for _ in range(k - 1):
        d = np.min(((x[:, None] - np.asarray(centres)[None]) ** 2).sum(-1), axis=1)
        centres.append(x[rng.choice(len(x), p=d / d.sum())] if d.sum() > 0 else x[rng.integers(len(x))])
    centres = np.asarray(centres)
    for _ in range(ITERATIONS):
        member = ((x[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        new = np.stack([x[member == j].mean(0) if (member == j).any() else centres[j] for j in range(k)])
        if np.allclose(new, centres):
            break
        centres = new
    return ((x[:, None] - centres[None]) ** 2).sum(-1).argmin(1)


def fit(future_xy, future_valid, agent_type, k, seed=0, types=(1, 2, 3)):
    """Anchors per agent type: {type: float32 [k, 80, 2]} (types with too few futures left out)."""
    full = future_valid.astype(bool).all(1)
    out = {}
    for t in types:
        rows = np.flatnonzero(full & (agent_type == t))
        if len(rows) < k:
            continue
        traj = future_xy[rows].astype(np.float64)
        member = kmeans(traj[:, SAMPLE_STEPS].reshape(len(rows), -1), k, seed + int(t))
        out[int(t)] = np.stack([traj[member == j].mean(0) for j in range(k)]).astype(np.float32)
    return out


def assign(anchors, agent_type, target, valid):
    """The anchor (= mode) index of each sample, or -1 where its type has no anchors (the loss
    falls back to winner-take-all there). target [B, 80, 2], valid [B, 80] (torch)."""
    out = torch.full((len(target),), -1, dtype=torch.long)
    for t, a in anchors.items():
        rows = torch.from_numpy(np.flatnonzero(agent_type == t))
        if len(rows) == 0:
            continue
        out[rows] = twin.mean_displacement(torch.from_numpy(a)[None], target[rows], valid[rows]).argmin(1)
    return out


def describe(anchors):
    """Each anchor's end point (metres, agent frame), for the run record."""
    return {str(t): [[round(float(x), 1) for x in a[-1]] for a in per] for t, per in anchors.items()}


def match(anchors, end_points):
    """Reorders each type's anchors so that anchor j is the one that best continues mode j of
    weights fitted earlier, given their recorded end points (`describe`'s output): the
    permutation with the least total end-point distance. A fine-tune on other data (more worlds)
    fits its anchors again, and k-means numbers its clusters arbitrarily; without this, mode j
    would be trained towards another intention than the one it learnt. Returns the anchors and,
    per type, the permutation applied where it is not the identity."""
    out, moved = {}, {}
    for t, a in anchors.items():
        ref = np.asarray(end_points.get(str(t), []), np.float64)
        if ref.shape != (len(a), 2):
            out[t] = a
            continue
        ends = a[:, -1].astype(np.float64)
        cost = np.hypot(*(ends[:, None] - ref[None]).transpose(2, 0, 1))  # [new, old]
        best = min(itertools.permutations(range(len(a))), key=lambda p: sum(cost[p[j], j] for j in range(len(a))))
        out[t] = a[list(best)]
        if list(best) != list(range(len(a))):
            moved[str(t)] = list(best)
    return out, moved
