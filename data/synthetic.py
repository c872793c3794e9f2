"""A small synthetic NTU RGB+D 60 set in the raw `.skeleton` format, for the demo and the tests.

    python data/synthetic.py --out-dir data/demo/raw [--seed 0] [--per-class 60]

writes DIR/nturgb+d_skeletons/SsssCcccPpppRrrrAaaa.skeleton for eight real NTU60 actions whose
motion a 25-joint forward-kinematics body really performs (sit down lowers the hips and bends the
knees, hand waving swings the right forearm above the shoulder, kicking swings the right leg...).
Samples vary by performer (body size), camera (view angle), position, speed, length (40-100
frames) and amplitude. Some have a second, idle person; some have a short noise body (<= 11 frames)
or a flat "furniture" body (filtered by the spread rule), some begin with empty frames, so the
preparation's denoising paths all run. Performers alternate between the NTU60 cross-subject train
and test ids (2 train : 1 test), cameras cycle 1-3, setups span 1-17.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ''):  # run as a script: make `data` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.splits import NTU60_CS_TEST, NTU60_CS_TRAIN  # noqa: E402

# action id (1-based, NTU60) -> name
ACTIONS = {8: 'sit down', 9: 'stand up', 10: 'clapping', 23: 'hand waving', 24: 'kicking something',
           27: 'jump up', 35: 'nod head/bow', 38: 'salute'}

# 1-based joint: (parent, rest offset from the parent in metres). Body frame as in NTU's files for
# a performer facing the camera: x to the camera's right (the performer's left joints have the
# smaller x), y up, z away from the camera.
SKELETON = {
    1: (0, (0, 0, 0)), 2: (1, (0, .27, 0)), 21: (2, (0, .24, 0)), 3: (21, (0, .08, 0)),
    4: (3, (0, .12, 0)),
    5: (21, (-.17, -.04, 0)), 6: (5, (0, -.27, 0)), 7: (6, (0, -.25, 0)), 8: (7, (0, -.07, 0)),
    22: (8, (0, -.06, 0)), 23: (8, (.03, -.03, -.02)),
    9: (21, (.17, -.04, 0)), 10: (9, (0, -.27, 0)), 11: (10, (0, -.25, 0)), 12: (11, (0, -.07, 0)),
    24: (12, (0, -.06, 0)), 25: (12, (-.03, -.03, -.02)),
    13: (1, (-.09, -.04, 0)), 14: (13, (0, -.40, 0)), 15: (14, (0, -.40, 0)), 16: (15, (0, -.05, -.10)),
    17: (1, (.09, -.04, 0)), 18: (17, (0, -.40, 0)), 19: (18, (0, -.40, 0)), 20: (19, (0, -.05, -.10)),
}


def _topological():
    order, seen = [], {0}
    while len(order) < len(SKELETON):
        for j, (parent, _) in SKELETON.items():
            if j not in seen and parent in seen:
                order.append(j)
                seen.add(j)
    return order


ORDER = _topological()
CAMERA_YAW = {1: 0.0, 2: 45.0, 3: -45.0}  # degrees; NTU's three cameras see the performer at -45/0/45


def _rot(axis, deg):
    """(T, 3, 3) rotations about x, y or z by `deg` degrees (array or scalar). Positive x
    rotation swings a hanging limb forward (towards the camera, -z); positive z swings it to +x."""
    a = np.radians(np.atleast_1d(np.asarray(deg, dtype=np.float64)))
    c, s = np.cos(a), np.sin(a)
    o, i = np.zeros_like(a), np.ones_like(a)
    m = {'x': [[i, o, o], [o, c, -s], [o, s, c]],
         'y': [[c, o, s], [o, i, o], [-s, o, c]],
         'z': [[c, -s, o], [s, c, o], [o, o, i]]}[axis]
    return np.moveaxis(np.array(m), -1, 0)


def _bump(p, centre, width):
    return np.exp(-0.5 * ((p - centre) / width) ** 2)


def _smooth(x):
    x = np.clip(x, 0, 1)
    return x * x * (3 - 2 * x)


def pose_sequence(action, num_frames, rng, scale=1.0):
    """(T, 25, 3) joint positions in the body frame (root at the origin) performing `action`."""
    p = np.linspace(0, 1, num_frames)
    amp = rng.uniform(0.8, 1.2)
    shift = rng.uniform(-0.08, 0.08)
    rot = {}  # joint -> (T, 3, 3) local rotation of the bones below it
    root = np.zeros((num_frames, 3))
    root[:, 0] = 0.01 * np.sin(2 * np.pi * rng.uniform(0.3, 0.8) * p + rng.uniform(0, 6))  # sway

    def ease(lo, hi):
        return _smooth((p - lo - shift) / (hi - lo))

    if action in (8, 9):  # sit down / stand up: thighs forward, shins back, hips lowered
        s = ease(0.2, 0.75)
        s = s if action == 8 else 1 - s
        rot[13] = rot[17] = _rot('x', 90 * amp * s)
        rot[14] = rot[18] = _rot('x', -90 * amp * s)
        rot[2] = _rot('x', -30 * np.sin(np.pi * s))  # lean forward while moving
        root[:, 1] -= 0.42 * scale * amp * s
        root[:, 2] += 0.2 * s
    elif action == 10:  # clapping: arms forward, hands meet and part
        up = ease(0.05, 0.2) * (1 - ease(0.85, 0.98))
        osc = 0.5 + 0.5 * np.cos(2 * np.pi * rng.uniform(3, 5) * p)
        rot[5] = _rot('x', 65 * up) @ _rot('z', (30 * osc - 22) * up)
        rot[9] = _rot('x', 65 * up) @ _rot('z', -(30 * osc - 22) * up)
        rot[6] = rot[10] = _rot('x', 40 * up)
    elif action == 23:  # hand waving: right arm up and out, forearm swings side to side
        up = ease(0.05, 0.25) * (1 - ease(0.8, 0.97))
        wave = np.sin(2 * np.pi * rng.uniform(2, 4) * p)
        rot[9] = _rot('z', 140 * up * amp)
        rot[10] = _rot('z', (15 + 35 * wave) * up)
    elif action == 24:  # kicking: knee bends, then the leg swings forward fast
        c = rng.uniform(0.45, 0.6)
        rot[17] = _rot('x', 75 * amp * _bump(p, c, 0.07) + 20 * _bump(p, c - 0.12, 0.06))
        rot[18] = _rot('x', -70 * _bump(p, c - 0.1, 0.07))
        rot[2] = _rot('x', 10 * _bump(p, c, 0.1))  # lean back for balance
    elif action == 27:  # jump up: crouch, rise into the air with arms up, land, crouch
        c = rng.uniform(0.45, 0.55)
        crouch = _bump(p, c - 0.15, 0.06) + _bump(p, c + 0.15, 0.06)
        air = _bump(p, c, 0.06)
        root[:, 1] += scale * (0.35 * amp * air - 0.15 * crouch)
        rot[13] = rot[17] = _rot('x', 45 * crouch)
        rot[14] = rot[18] = _rot('x', -80 * crouch)
        rot[5], rot[9] = _rot('z', -70 * air), _rot('z', 70 * air)
    elif action == 35:  # nod head / bow: the torso bends forward and back, the head leads
        b = _bump(p, 0.5 + shift, 0.13)
        rot[2] = _rot('x', -40 * amp * b)
        rot[3] = _rot('x', -35 * b)
    elif action == 38:  # salute: right hand up to the forehead, held, lowered
        s = ease(0.1, 0.3) * (1 - ease(0.7, 0.9))
        rot[9] = _rot('z', 85 * s) @ _rot('x', 25 * s)
        rot[10] = _rot('z', 125 * s * amp ** 0.3)
    return _forward_kinematics(rot, root, scale, num_frames)


def idle_sequence(num_frames, rng, scale=1.0):
    """A person standing by: a slight sway and arm drift."""
    p = np.linspace(0, 1, num_frames)
    root = np.zeros((num_frames, 3))
    root[:, 0] = 0.015 * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * p)
    rot = {5: _rot('z', -5 - 3 * np.sin(2 * np.pi * p)), 9: _rot('z', 5 + 3 * np.sin(2 * np.pi * p))}
    return _forward_kinematics(rot, root, scale, num_frames)


def _forward_kinematics(rot, root, scale, num_frames):
    eye = np.broadcast_to(np.eye(3), (num_frames, 3, 3))
    glob, pos = {0: eye}, {0: root}
    for j in ORDER:
        parent, offset = SKELETON[j]
        pos[j] = pos[parent] + glob[parent] @ (np.asarray(offset) * scale)
        glob[j] = glob[parent] @ rot.get(j, eye)
    return np.stack([pos[j] for j in range(1, 26)], axis=1)


def place(joints, yaw, offset, rng):
    """Body frame -> camera frame: turn by `yaw` degrees, move to `offset`, add sensor jitter."""
    r = _rot('y', yaw)[0] @ _rot('x', rng.uniform(-4, 4))[0]
    out = joints @ r.T + offset
    return out + rng.normal(0, 0.004, out.shape)


def _flat_body(num_frames, centre, rng):
    """A 'furniture' detection: joints spread along x, hardly along y (every frame noisy)."""
    base = np.stack([np.linspace(-0.5, 0.5, 25), rng.uniform(-0.03, 0.03, 25), rng.uniform(-0.2, 0.2, 25)], 1)
    return base[None] + centre + rng.normal(0, 0.01, (num_frames, 25, 3))


_LINE = '%.4f %.4f %.4f %.1f %.1f %.1f %.1f 0 0 0 0 2\n'


def _with_pixels(xyz):
    """(T, 25, 3) metres -> (T, 25, 7): x y z, depth-image x y, colour-image x y (Kinect v2 like)."""
    z = np.maximum(xyz[..., 2], 0.5)
    x, y = xyz[..., 0] / z, xyz[..., 1] / z
    pixels = np.stack([256 + 365 * x, 212 - 365 * y, 960 + 1050 * x, 540 - 1050 * y], -1)
    return np.concatenate([xyz, pixels], -1)


def skeleton_text(frames):
    """`frames`: per frame a list of (body id, (25, 7) values) -> the .skeleton text."""
    out = [f'{len(frames)}\n']
    block = _LINE * 25
    for bodies in frames:
        out.append(f'{len(bodies)}\n')
        for body_id, vals in bodies:
            lean = vals[20, :2] - vals[0, :2]
            out.append(f'{body_id} 0 1 1 1 1 0 {lean[0]:.5f} {lean[1]:.5f} 2\n25\n')
            out.append(block % tuple(vals.ravel().tolist()))
    return ''.join(out)


def sample_names(per_class, actions=ACTIONS):
    """[(name, action, performer, camera)]: 2 of 3 performers from the cross-subject train ids."""
    names, seen = [], set()
    for a in actions:
        for k in range(per_class):
            ids = NTU60_CS_TEST if k % 3 == 2 else NTU60_CS_TRAIN
            performer = ids[(k * 7 + a) % len(ids)]
            camera = 1 + k % 3
            setup = 1 + (k * 5 + a) % 17
            rep = 1 + (k // 3) % 2
            name = f'S{setup:03d}C{camera:03d}P{performer:03d}R{rep:03d}A{a:03d}'
            while name in seen:  # collide rarely: move to the next setup
                setup = setup % 17 + 1
                name = f'S{setup:03d}C{camera:03d}P{performer:03d}R{rep:03d}A{a:03d}'
            seen.add(name)
            names.append((name, a, performer, camera))
    return names


def make_sample(action, performer, camera, rng):
    """The per-frame bodies of one sample."""
    size = np.random.default_rng(performer).uniform(0.85, 1.15)  # a performer keeps their size
    num_frames = int(rng.integers(40, 101))
    yaw = CAMERA_YAW[camera] + rng.uniform(-15, 15)
    offset = np.array([rng.uniform(-0.4, 0.4), rng.uniform(0.0, 0.25), rng.uniform(2.6, 3.6)])
    actor_id = 72057594037927936 + int(rng.integers(1000, 9000))
    tracks = [(actor_id, 0, place(pose_sequence(action, num_frames, rng, size), yaw, offset, rng))]
    u = rng.random(4)
    if u[0] < 0.2:  # a second, idle person beside the actor
        side = np.array([rng.choice([-1, 1]) * rng.uniform(0.8, 1.1), 0, rng.uniform(-0.2, 0.3)])
        # Smaller than any performer: upstream ranks bodies by the variance of all their joints,
        # mostly body extent, so a full-size bystander could take the actor-1 slot from someone
        # sitting down (whose seated frames count as noisy and are left out of that variance).
        idle = idle_sequence(num_frames, rng, rng.uniform(0.6, 0.72))
        tracks.append((actor_id + 1, 0, place(idle, yaw, offset + side, rng)))
    if u[1] < 0.25:  # a short noise body (<= 11 frames): the length rule drops it
        n = int(rng.integers(2, 11))
        start = int(rng.integers(0, num_frames - n))
        blob = offset + rng.normal(0, 0.15, (n, 25, 3))
        tracks.append((actor_id + 7, start, blob))
    if u[2] < 0.15:  # a flat object tracked as a body most of the time: the spread rule drops it
        n = int(rng.integers(num_frames // 2, num_frames))
        tracks.append((actor_id + 9, num_frames - n, _flat_body(n, offset + [0, -0.4, 0.5], rng)))
    frames = [[] for _ in range(num_frames)]
    for body_id, start, xyz in tracks:
        for t, vals in enumerate(_with_pixels(xyz)):
            frames[start + t].append((body_id, vals))
    if u[3] < 0.1:  # the sensor lost everyone for a few frames at the start
        frames = [[] for _ in range(int(rng.integers(1, 4)))] + frames
    return frames


def generate(out_dir, seed=0, per_class=60, actions=ACTIONS):
    """Write the set under `out_dir`/nturgb+d_skeletons/; return the list of written paths."""
    folder = Path(out_dir) / 'nturgb+d_skeletons'
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, (name, action, performer, camera) in enumerate(sample_names(per_class, actions)):
        rng = np.random.default_rng([seed, k])
        path = folder / f'{name}.skeleton'
        path.write_text(skeleton_text(make_sample(action, performer, camera, rng)))
        paths.append(path)
    return paths


def main(argv=None):
    p = argparse.ArgumentParser(description='Write a small synthetic NTU RGB+D 60 raw set '
                                            f'({len(ACTIONS)} actions) for the demo and tests.')
    p.add_argument('--out-dir', type=Path, required=True, help='writes OUT_DIR/nturgb+d_skeletons/')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--per-class', type=int, default=60,
                   help='samples per action (2/3 cross-subject train, 1/3 test); default 60')
    args = p.parse_args(argv)
    if args.per_class < 1:
        sys.exit('error: --per-class must be at least 1')
    paths = generate(args.out_dir, args.seed, args.per_class)
    print(f'wrote {len(paths)} .skeleton files ({len(ACTIONS)} actions: '
          f'{", ".join(f"A{a:03d} {n}" for a, n in ACTIONS.items())}) to {paths[0].parent}')


if __name__ == '__main__':
    main()
