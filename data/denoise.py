"""Pick the (at most two) actors of a sample and lay them out as (frames, 75 | 150), as upstream.

Pure functions over `skeleton_io.Body` lists. The float32 arithmetic (variances, spreads) is done
on arrays of the same shape and layout as upstream's so that ties and thresholds fall the same way.
"""
import numpy as np

NOISE_LEN_THRES = 11  # a body seen in <= 11 frames is noise
NOISE_SPR_THRES1 = 0.8  # a frame is noisy when x-spread > 0.8 * y-spread
NOISE_SPR_THRES2 = 0.69754  # a body with that share of noisy frames is noise


def motion(joints):
    """Sum over x, y, z of the variance of all joints over all frames (float32, upstream's)."""
    return np.sum(np.var(joints.reshape(-1, 3), axis=0))


def spread_valid_frames(joints):
    """Indices of the frames whose x-spread <= 0.8 * y-spread (float32 compare, as NumPy 2)."""
    spread = joints.max(axis=1) - joints.min(axis=1)  # (n, 3)
    return np.flatnonzero(spread[:, 0] <= np.float32(NOISE_SPR_THRES1) * spread[:, 1])


def denoise_bodies(bodies, log=None, name=''):
    """Order the bodies of a multi-body sample as upstream's denoising does.

    Returns [(Body, motion)], largest motion first (a single survivor comes alone)."""
    motions = {b.id: motion(b.joints) for b in bodies}
    kept = [b for b in bodies if b.length > NOISE_LEN_THRES]
    if not kept:  # upstream crashes here; keep the longest body instead
        longest = max(bodies, key=lambda b: b.length)  # first one on ties
        if log:
            log(f'{name}: no body lasts more than {NOISE_LEN_THRES} frames; '
                f'keeping the longest ({longest.id}, {longest.length} frames)')
        return [(longest, motions[longest.id])]
    if len(kept) == 1:
        return [(kept[0], motions[kept[0].id])]
    survivors = list(kept)
    for body in kept:
        if len(survivors) == 1:
            break
        valid = spread_valid_frames(body.joints)
        num_noise = body.length - len(valid)
        if num_noise == 0:
            continue
        if num_noise / float(body.length) >= NOISE_SPR_THRES2:
            survivors.remove(body)
        else:
            motions[body.id] = min(motions[body.id], motion(body.joints[valid]))
    ranked = sorted(survivors, key=lambda b: motions[b.id], reverse=True)  # stable on ties
    return [(b, motions[b.id]) for b in ranked]


def one_actor(body, num_frames):
    """(num_frames, 75) float32 with the body at its frames, zeros elsewhere."""
    out = np.zeros((num_frames, 75), dtype=np.float32)
    out[body.start:body.end + 1] = body.joints.reshape(-1, 75)
    return out


def two_actors(ranked, num_frames):
    """Assign bodies to two actor tracks by interval overlap -> (num_frames, 150) float32.

    Actor 1 takes the largest-motion body and every later body that does not overlap its span;
    actor 2 (span starting at [0, 0]) takes those that do not overlap its own; others are dropped.
    Sharing one frame is not an overlap (min(end) - max(start) <= 0)."""
    out = np.zeros((num_frames, 150), dtype=np.float32)
    first = ranked[0][0]
    out[first.start:first.end + 1, :75] = first.joints.reshape(-1, 75)
    spans = [[first.start, first.end], [0, 0]]
    for body, _ in ranked[1:]:
        for actor, span in enumerate(spans):
            if min(span[1], body.end) - max(span[0], body.start) <= 0:
                out[body.start:body.end + 1, 75 * actor:75 * (actor + 1)] = body.joints.reshape(-1, 75)
                span[0], span[1] = min(span[0], body.start), max(span[1], body.end)
                break
    return out


def denoised_sequence(skeleton, log=None):
    """The sample as upstream's get_raw_denoised_data leaves it: (frames, 75) or (frames, 150)."""
    bodies = skeleton.bodies
    if len(bodies) == 1:  # a lone body is kept as is, zero frames included
        return one_actor(bodies[0], skeleton.num_frames)
    ranked = denoise_bodies(bodies, log, skeleton.name)
    if len(ranked) == 1:
        joints = one_actor(ranked[0][0], skeleton.num_frames)
    else:
        joints = two_actors(ranked, skeleton.num_frames)
    # Multi-body samples only: drop the frames no kept body fills (upstream tests the row sum).
    return joints[joints.sum(axis=1) != 0]
