"""Step 3 per sample: centre on actor 1's spine middle, then pad to 150 values per frame."""
import numpy as np


def translate(seq):
    """Subtract joint 2 (spine middle) of actor 1's first non-zero frame from every joint.

    `seq` is (frames, 75) or (frames, 150) float32; frames where an actor of a two-actor sample is
    absent (row sum 0 before the shift) are zero again afterwards. Returns a new array."""
    seq = np.array(seq, dtype=np.float32)
    present = np.flatnonzero(np.any(seq[:, :75] != 0, axis=1))
    if len(present) == 0:  # nothing to centre on (upstream would fail); leave it as is
        return seq
    origin = seq[present[0], 3:6].copy()
    if seq.shape[1] == 150:
        absent1 = seq[:, :75].sum(axis=1) == 0
        absent2 = seq[:, 75:].sum(axis=1) == 0
        seq -= np.tile(origin, 50)
        seq[absent1, :75] = 0
        seq[absent2, 75:] = 0
    else:
        seq -= np.tile(origin, 25)
    return seq


def as_bodies(seq):
    """A denoised (frames, 75 * M) sequence as bodies (M, frames, 25, 3) (a view where it can)."""
    return seq.reshape(len(seq), -1, 25, 3).transpose(1, 0, 2, 3)


def as_rows(bodies):
    """Bodies (M, frames, 25, 3) as the denoised layout (frames, 75 * M); the inverse of as_bodies."""
    return bodies.transpose(1, 0, 2, 3).reshape(bodies.shape[1], -1)


def to_150(seq, repeat_single):
    """(frames, 150): a one-actor sample gets zeros (NTU60) or a copy of itself (NTU120)."""
    if seq.shape[1] == 150:
        return seq
    return np.hstack((seq, seq if repeat_single else np.zeros_like(seq)))
