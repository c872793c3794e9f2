"""Pure array transforms of the feeders (no I/O, no hidden state).

NTU arrays are (C, T, V, M) float32; the NW-UCLA helpers work on the raw (T, V, 3) float64
sequences as upstream does, so the test-path outputs match upstream's to the last bit.
Random transforms take an explicit `rng` (a numpy Generator); the feeders own the generators.
Transforms that treat channels as x, y, z take the layout's `score_channel` (graph.tools), so a
confidence channel stays a confidence.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

from torchlight.errors import UserError


# ---------------------------------------------------------------- NTU: crop, resize, rotation

def trim_trailing_zeros(frames):
    """Drop the all-zero frames after the last non-zero one (the npz padding); axis 0 is time.

    Cheap, and changes no result: those frames are never valid and never inside the crop.
    """
    nonzero = frames.any(axis=tuple(range(1, frames.ndim)))
    return frames[:len(frames) - int(np.argmax(nonzero[::-1])) if nonzero.any() else 0]


def valid_frame_count(data):
    """Frames whose sum over C, V, M is non-zero (upstream assumes they are the leading frames)."""
    # Same reduction order as upstream, so an exactly-cancelling frame is judged the same way.
    return int(np.count_nonzero(data.sum(0).sum(-1).sum(-1)))


def as_interval(p_interval):
    """Upstream configs give [p] (test) or [lo, hi] (train); a bare number means [p]."""
    if np.isscalar(p_interval):
        return [float(p_interval)]
    p_interval = [float(p) for p in p_interval]
    if len(p_interval) not in (1, 2):
        raise ValueError(f'p_interval must be [p] or [low, high], got {p_interval}')
    return p_interval


def crop_bounds(valid, p_interval, rng=None, min_length=64):
    """(start, length) of the segment kept from the first `valid` frames.

    [p]: centre crop dropping int((1 - p) * valid / 2) frames at each end.
    [lo, hi]: p ~ U(lo, hi), length = min(max(floor(valid * p), 64), valid), random start.
    """
    p_interval = as_interval(p_interval)
    if len(p_interval) == 1:
        bias = int((1 - p_interval[0]) * valid / 2)
        return bias, valid - 2 * bias
    lo, hi = p_interval
    p = rng.random() * (hi - lo) + lo
    length = min(max(int(np.floor(valid * p)), min_length), valid)
    start = int(rng.integers(0, valid - length + 1))
    return start, length


def resize_time(data, window):
    """Resample the time axis of (C, T, V, M) to `window` frames (bilinear, align_corners=False).

    Done with torch's interpolate over a (C*V*M, T) image, exactly as upstream, so results are
    bit-identical to upstream's.
    """
    C, T, V, M = data.shape
    image = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
    image = image.permute(0, 2, 3, 1).reshape(1, 1, C * V * M, T)
    image = F.interpolate(image, size=(C * V * M, window), mode='bilinear', align_corners=False)
    return image.reshape(C, V, M, window).permute(0, 3, 1, 2).contiguous().numpy()


def crop_resize(data, valid, p_interval, window, rng=None):
    """Upstream's valid_crop_resize: crop the valid frames, resize to `window` frames."""
    C, _, V, M = data.shape
    if valid == 0:  # an all-zero sample: upstream crashes; give zeros of the right shape
        return np.zeros((C, window, V, M), dtype=np.float32)
    start, length = crop_bounds(valid, p_interval, rng)
    return resize_time(data[:, start:start + length], window)


def rotation_matrix(ax, ay, az):
    """R = Rz @ Ry @ Rx for angles in radians (upstream's sign conventions)."""
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), \
        math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, sx], [0, -sx, cx]])
    ry = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    rz = np.array([[cz, sz, 0], [-sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def coordinate_channels(num_channels, score_channel=None):
    """Index of the x, y, z channels: all but the score channel, and there must be three."""
    coordinates = num_channels - (score_channel is not None)
    if coordinates != 3:
        raise UserError(f'rotation needs 3 coordinates (x, y, z) per joint, the layout has '
                        f'{coordinates}: turn random_rot off for a 2D layout')
    # a slice keeps the 3D path a view, so its result is bit for bit upstream's
    if score_channel is None:
        return slice(None)
    return [c for c in range(num_channels) if c != score_channel]


def rotate(data, R, score_channel=None):
    """Left-multiply every frame's (3, V*M) coordinates by R; a score channel is kept."""
    xyz = coordinate_channels(len(data), score_channel)
    out = data.astype(np.float32)
    out[xyz] = np.einsum('ij,jtvm->itvm', R.astype(np.float32), data[xyz])
    return out


def random_rot(data, rng, theta=0.3, score_channel=None):
    """One rotation for the whole sequence, three angles ~ U(-theta, theta)."""
    return rotate(data, rotation_matrix(*rng.uniform(-theta, theta, size=3)), score_channel)


# ---------------------------------------------------------------- modalities (both datasets)

def bone(data, pairs, score_channel=None):
    """Joint v becomes v minus its parent, for 0-based (v, parent) pairs; V is axis 2. A score
    channel becomes the mean of the two joints' scores, as pyskl's JointToBone does."""
    child, parent = np.asarray(pairs).T
    out = np.zeros_like(data)
    out[:, :, child] = data[:, :, child] - data[:, :, parent]
    if score_channel is not None:
        s = score_channel
        out[s, :, child] = (data[s, :, child] + data[s, :, parent]) / 2
    return out


def motion(data, score_channel=None):
    """Frame t becomes frame t+1 minus frame t; the last frame is zero. T is axis 1."""
    out = np.zeros_like(data)
    out[:, :-1] = data[:, 1:] - data[:, :-1]
    if score_channel is not None:
        # Our choice, by analogy with bone: a difference is as confident as the mean of the two
        # frames' scores (a difference of scores would mean nothing); the last frame stays zero.
        s = score_channel
        out[s, :-1] = (data[s, 1:] + data[s, :-1]) / 2
    return out


# ---------------------------------------------------------------- NW-UCLA, on (T, V, 3) float64

def ucla_centre(seq):
    """Subtract joint 1 of frame 0 from every joint."""
    return seq - seq[0, 1, :]


def ucla_view_matrix(agx, agy, s):
    """Ry @ Rx @ S for integer-degree angles about x then y and a scale; points are rows."""
    cx, sx = math.cos(math.radians(agx)), math.sin(math.radians(agx))
    cy, sy = math.cos(math.radians(agy)), math.sin(math.radians(agy))
    rx = np.array([[1, 0, 0], [0, cx, sx], [0, -sx, cx]])
    ry = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    return ry @ (rx @ np.diag([s, s, s]))


def ucla_view_transform(seq, agx, agy, s):
    return (seq.reshape(-1, 3) @ ucla_view_matrix(agx, agy, s)).reshape(seq.shape)


def ucla_minmax(seq):
    """Min-max normalise each axis over the whole sequence to [-1, 1]."""
    flat = seq.reshape(-1, 3)
    low, high = flat.min(axis=0), flat.max(axis=0)
    span = np.where(high > low, high - low, 1.0)  # a constant axis maps to -1 instead of NaN
    return ((flat - low) / span * 2 - 1).reshape(seq.shape)


def ucla_val_indices(length, steps):
    """`steps` frame indices spread evenly over the sequence (truncated linspace)."""
    return np.linspace(0, length - 1, steps).astype(int)


def ucla_train_indices(length, steps, rng):
    """`steps` sorted draws without replacement from all indices repeated 100 times."""
    return np.sort(rng.choice(length * 100, size=steps, replace=False) % length)


def ucla_to_ctvm(seq):
    """(T, V, 3) -> (3, T, V, 1)."""
    return seq.transpose(2, 0, 1)[..., None]
