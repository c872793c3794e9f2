"""NW-UCLA as a pyskl annotation pickle: the 3D skeletons as they are, or (--2d) COCO-17 2D
keypoints made by projecting them through a pinhole camera.

    python data/convert_ucla_pyskl.py --out ucla.pkl [--root data/NW-UCLA/all_sqe]
        [--split-file data/NW-UCLA/split.json] [--2d]

Writes `{'split': {'train': [...], 'val': [...]}, 'annotations': [...]}` (the shipped split list:
views 1 and 2 train, view 3 val), one annotation per sequence, train then val, in the list's
order: `frame_dir` the file name (`a01_s01_e00_v01`), `label` 0-based (the list's label - 1),
`total_frames`, and
  3D     `keypoint` float32 (1, T, 20, 3): the json's x, y, z in metres, Kinect v1's 20 joints in
         their order (graph/ucla.py, layout 'nw-ucla');
  --2d   `keypoint` float32 (1, T, 17, 2) in pixels of a 1920 x 1080 image, `keypoint_score`
         float32 (1, T, 17), `img_shape` (1080, 1920) and `original_shape` (1080, 1920) (layout
         'coco'): a stand-in for a 2D pose estimator's output, with the real motion and none of an
         estimator's errors (scores are 1 or 0, never in between).

The 2D projection. Kinect's camera space has +x to the sensor's left, +y up, +z away from the
sensor, in metres; the image has u to the right and v down, so

    u = CX - FOCAL * x / z,    v = CY - FOCAL * y / z

an unmirrored picture as seen from the sensor (a person facing it has the left shoulder on the
image's right, as in COCO's photographs). FOCAL = 1081.37 px, (CX, CY) = (959.5, 539.5): the
nominal intrinsics of the Kinect v2's 1920 x 1080 colour camera (libfreenect2's defaults), the
camera NTU RGB+D, and so pyskl's NTU HRNet keypoints, were filmed with; fields of view 83.2 x 53.1
degrees. NW-UCLA's subjects stand 1.7 to 3.7 m away (1st to 99th percentile of z); 468 of the
995,078 keypoints (0.05 %, from a few badly tracked frames) fall outside the frame and are kept
where they fall, score 1.

Kinect v1's 20 joints to COCO-17 (0-based Kinect indices; graph/ucla.py's order): shoulders 4, 8,
elbows 5, 9, wrists 6, 10, hips 12, 16, knees 13, 17, ankles 14, 18. Nose, eyes and ears all take
the head joint (3): Kinect v1 has no face joints, and offsets from the head would be invented
detail (a function of joints the skeleton already has), so the five face points coincide. Kinect's
hip centre, spine, shoulder centre, hands and feet have no COCO counterpart and are dropped. A
joint Kinect did not track (0, 0, 0 in the json) or one at z <= 0 gets keypoint (0, 0) and score
0 (7 keypoints in 2 sequences); every other joint score 1.

Writes atomically (a temporary file, then a rename): an interrupted run leaves no partial pickle.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ''):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from feeders.sources import (UCLA_ROOT, UCLA_SPLIT, UCLA_WHERE, load_ucla_sequence,  # noqa: E402
                             load_ucla_split)
from torchlight import io  # noqa: E402
from torchlight.errors import UserError, run_cli  # noqa: E402

SPLITS = ('train', 'val')
UCLA_JOINTS = 20
IMG_SHAPE = (1080, 1920)  # (H, W), as pyskl's 2D annotations give it
FOCAL = 1081.37           # px, fx = fy
CX, CY = 959.5, 539.5     # px, the principal point
# COCO-17 joint -> Kinect v1 joint (0-based), see the module docstring.
COCO_FROM_KINECT = (3, 3, 3, 3, 3, 4, 8, 5, 9, 6, 10, 12, 16, 13, 17, 14, 18)


def project(xyz):
    """(..., 3) Kinect camera-space metres -> ((..., 2) float32 pixels, (...) float32 scores):
    score 1 for a tracked joint in front of the camera, else 0 with keypoint (0, 0)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    seen = (z > 0) & np.any(xyz != 0, axis=-1)
    safe_z = np.where(seen, z, 1.0)
    uv = np.stack([CX - FOCAL * x / safe_z, CY - FOCAL * y / safe_z], axis=-1)
    uv[~seen] = 0
    return uv.astype(np.float32), seen.astype(np.float32)


def to_coco(seq):
    """(T, 20, 3) NW-UCLA joints -> the 2D fields of a pyskl annotation (one person)."""
    keypoint, score = project(seq[:, COCO_FROM_KINECT])
    return {'keypoint': keypoint[None], 'keypoint_score': score[None],
            'img_shape': IMG_SHAPE, 'original_shape': IMG_SHAPE}


def annotation(name, label, seq, two_d=False):
    """One pyskl annotation of a (T, 20, 3) sequence; label 0-based."""
    entry = {'frame_dir': name, 'label': int(label), 'total_frames': int(len(seq))}
    if two_d:
        entry.update(to_coco(seq))
    else:
        entry['keypoint'] = np.asarray(seq, dtype=np.float32)[None]
    return entry


def convert(root=UCLA_ROOT, split_file=UCLA_SPLIT, two_d=False):
    """The pyskl annotation dict of every sequence of the split list."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f'NW-UCLA folder {root} not found; {UCLA_WHERE} (or give --root)')
    split, annotations, seen = {}, [], set()
    for name in SPLITS:
        split[name] = []
        for entry in load_ucla_split(name, split_file):
            file_name = entry['file_name']
            if file_name in seen:
                raise UserError(f'{split_file}: {file_name} is listed twice')
            seen.add(file_name)
            seq = load_ucla_sequence(root / f'{file_name}.json', UCLA_JOINTS)
            label = int(entry['label']) - 1  # the list says 1..10
            annotations.append(annotation(file_name, label, seq, two_d))
            split[name].append(file_name)
    return {'split': split, 'annotations': annotations}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', required=True, type=Path, help='the pickle to write')
    parser.add_argument('--root', type=Path, default=UCLA_ROOT,
                        help=f'the all_sqe folder of json files (default: {UCLA_ROOT})')
    parser.add_argument('--split-file', type=Path, default=UCLA_SPLIT,
                        help=f'the train/val list (default: {UCLA_SPLIT})')
    parser.add_argument('--2d', dest='two_d', action='store_true',
                        help="COCO-17 2D keypoints projected into a 1920x1080 image (layout "
                             "'coco') instead of the 3D joints (layout 'nw-ucla')")
    args = parser.parse_args(argv)
    data = convert(args.root, args.split_file, args.two_d)
    io.save_pickle(args.out, data)
    sizes = ', '.join(f'{name} {len(names)}' for name, names in data['split'].items())
    layout = 'coco, 2D' if args.two_d else 'nw-ucla, 3D'
    print(f'wrote {args.out}: {len(data["annotations"])} sequences ({sizes}), layout {layout}')
    return 0


if __name__ == '__main__':
    run_cli(main)
