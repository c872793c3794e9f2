"""pyskl annotation pickles as a source (feeders/sources.py): 3D (x, y, z) or 2D (x, y) + score.

The pickle: `{'split': {name: [frame_dir, ...]}, 'annotations': [dict, ...]}`; an annotation holds
`frame_dir` (str, the sample's name), `label` (int, 0-based), `total_frames` (int, equal to
keypoint.shape[1]) and `keypoint` (M, T, V, C) with C = 3 (3D) or C = 2 (2D); a 2D one also
`keypoint_score` (M, T, V) and usually `img_shape` (H, W). Every annotation must be of one kind
and joint count, fitting the layout: 3D takes a layout of 3 channels and no score channel, 2D one
of 3 channels (x, y, score) with score_channel 2.

Sample i is float32 (3, T, V, num_person): bodies beyond num_person are dropped and missing ones
are zeros, as pyskl's FormatGCNInput. 3D: x, y, z as stored (not centred; the feeder's view
decides). 2D: as pyskl's PreNormalize2D, x <- (x - W/2) / (W/2) and y <- (y - H/2) / (H/2) by the
annotation's img_shape (else `img_shape`, default 1080 x 1920), then every joint whose score is
<= score_threshold becomes 0 in all three channels.

The pickle is untrusted: it is read only with torchlight.unpickle (dicts, lists, tuples, str,
numbers, NumPy arrays and dtypes; anything else is refused in one line). It is also large (NTU120
3D is gigabytes), so it is read once and checked whole, then written into a store that every
process memory-maps (np.load(mmap_mode='r'), opened lazily and again in each new process, like
feeders/storage.py), so no process holds the samples in private memory:

    <store root>/v1-<pickle size>-<pickle mtime_ns>/
        frames.npy   (R, V, 3): every annotation's (body, frame) rows, annotation after
                     annotation, body-major; 2D rows hold the raw (x, y, score); float16 when
                     every array in the pickle is (pyskl's NTU 3D files: half the disk and page
                     cache, exact), else float32 (as pyskl's loaders cast)
        index.npz    offsets (N + 1) into frames' rows, bodies (N), frames (N), label (N), names
                     (N), img_shape (N, 2; NaN where absent), the splits as positions into these
                     (split_names, split_offsets, split_members), kind ('3d' / '2d'), joints

The store holds what the pickle holds (all annotations, all splits, no setting applied), so one
store serves every split, layout check, threshold and image size; it is keyed by the pickle's
size and mtime, and a store of an older pickle is removed when the new one is written. The store
root is `<pickle>.gapstore/` beside the pickle when that folder is writable (or already holds the
store), else `$GAP_CACHE_DIR` (default ~/.cache/gap/pyskl) / `<name>-<path hash>.gapstore`;
`cache_dir` puts it there instead.

Writing is safe with concurrent processes (DataLoader workers, torchrun ranks): the writer holds
an flock on the store root while it reads and writes, so the others wait and then reuse its store
instead of each reading the pickle; the store is written into a temporary folder and renamed
into place in one step, so a reader sees a complete store or none, a killed writer leaves no
partial store (its temporary folder is removed by the next writer), and a filesystem without
flock only costs duplicate work (the second rename loses and its copy is dropped). Bad input is
one UserError line before anything is written.
"""
import contextlib
import errno
import gc
import hashlib
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from feeders.storage import _PerProcess
from graph.layouts import layout_name, load_layout
from torchlight import unpickle
from torchlight.device import release_freed_memory
from torchlight.errors import UserError

STORE_VERSION = 1
STORE_SUFFIX = '.gapstore'
DEFAULT_IMG_SHAPE = (1080, 1920)  # pyskl's PreNormalize2D default (H, W)
DEBUG_SAMPLES = 100  # as feeders/sources.py: the first 100 samples only
FIELDS = ('frame_dir', 'label', 'total_frames', 'keypoint')
KINDS = {3: '3d', 2: '2d'}


class PysklPickle(_PerProcess):
    """One split of a pyskl annotation pickle, read through its memory-mapped store.

    data_path: the .pkl; split: one of its split names (e.g. 'xsub_train'); layout: a layout
    name or module path (default: 'ntu' for 3D data, 'coco' for 2D); score_threshold, img_shape:
    the 2D normalisation (above); cache_dir: where the store goes (default: beside the pickle,
    else $GAP_CACHE_DIR); debug: the first 100 samples; num_person: bodies per sample (pyskl's 2).
    """

    def __init__(self, data_path, split, layout=None, score_threshold=0.01, img_shape=None, cache_dir=None,
                 debug=False, num_person=2):
        self.path = Path(data_path)
        if isinstance(score_threshold, bool) or not isinstance(score_threshold, (int, float)) \
                or not math.isfinite(score_threshold):
            raise UserError(f'score_threshold must be a number, got {score_threshold!r}')
        self.score_threshold = float(score_threshold)
        self.default_img_shape = _check_img_shape(img_shape, f'{self.path}: img_shape') \
            if img_shape is not None else DEFAULT_IMG_SHAPE
        if isinstance(num_person, bool) or not isinstance(num_person, int) or num_person < 1:
            raise UserError(f'num_person must be a positive integer, got {num_person!r}')
        self.num_person = num_person
        self.store = open_store(self.path, split, layout, cache_dir)
        with np.load(self.store / 'index.npz', allow_pickle=False) as index:
            self.kind, self.joints = str(index['kind']), int(index['joints'])
            _fit_layout(layout, self.kind, self.joints, self.path)
            members = _split_members(index, split, self.path)
            if debug:
                members = members[:DEBUG_SAMPLES]
            all_labels = index['label']
            self.offsets = index['offsets'][members]  # first row of each sample
            self.bodies = index['bodies'][members]
            self.frames = index['frames'][members]
            self.img_shape = index['img_shape'][members]
            self.label = [int(v) for v in all_labels[members]]
            self.names = [str(v) for v in index['names'][members]]
        self.split = split
        # From the whole pickle, not the split, so train and test feeders agree.
        self.num_class = int(all_labels.max()) + 1 if len(all_labels) else None

    def _open(self):
        return np.load(self.store / 'frames.npy', mmap_mode='r')

    def __len__(self):
        return len(self.label)

    def sample(self, i):
        rows = self._get()
        start, bodies, frames = int(self.offsets[i]), int(self.bodies[i]), int(self.frames[i])
        keep = min(bodies, self.num_person)
        kept = rows[start:start + keep * frames].reshape(keep, frames, self.joints, 3)
        shape = self.img_shape[i] if not np.isnan(self.img_shape[i, 0]) else self.default_img_shape
        return as_sample(kept, self.num_person, self.kind, shape, self.score_threshold)


def as_sample(bodies, num_person, kind, img_shape=DEFAULT_IMG_SHAPE, score_threshold=0.01):
    """One annotation's (M, T, V, 3) values (x, y, z, or x, y, score) as the float32 sample
    (3, T, V, num_person): bodies beyond num_person dropped, missing ones zero; 2D normalised
    by img_shape (H, W) and thresholded as the module docstring says."""
    keep = min(len(bodies), num_person)
    out = np.zeros((3, bodies.shape[1], bodies.shape[2], num_person), np.float32)
    out[..., :keep] = bodies[:keep].transpose(3, 1, 2, 0)
    if kind == '2d':
        body = out[..., :keep]  # a view: padding bodies stay zero whatever the threshold
        h, w = img_shape
        body[0] = (body[0] - np.float32(w / 2)) / np.float32(w / 2)
        body[1] = (body[1] - np.float32(h / 2)) / np.float32(h / 2)
        body[:, body[2] <= score_threshold] = 0
    return out


# ------------------------------------------------------------------------------------- the store

def store_roots(path, cache_dir=None):
    """Where a store of `path` may live, in order of preference."""
    tag = f'{path.name}-{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}{STORE_SUFFIX}'
    if cache_dir is not None:
        return [Path(cache_dir) / tag]
    cache = Path(os.environ.get('GAP_CACHE_DIR') or Path.home() / '.cache' / 'gap' / 'pyskl')
    return [path.with_name(path.name + STORE_SUFFIX), cache / tag]


def store_key(path):
    st = path.stat()
    return f'v{STORE_VERSION}-{st.st_size}-{st.st_mtime_ns}'


def open_store(path, split, layout, cache_dir=None):
    """The folder of the complete store of `path`, written first if there is none; the split
    and layout are checked against the pickle before anything is written."""
    if not path.is_file():
        raise UserError(f'pyskl annotation pickle {path} not found' if not path.exists()
                        else f'{path} is not a file, expected a pyskl annotation pickle (.pkl)')
    key = store_key(path)
    roots = store_roots(path, cache_dir)
    for root in roots:
        if (root / key / 'index.npz').is_file():
            return root / key
    problems = []
    for root in roots:
        try:
            created = _make_root(root)
        except OSError as e:
            problems.append(f'{root}: {e.strerror or e}')
            continue
        return _build_locked(path, key, root, created, split, layout)
    raise UserError(f'cannot write the store of {path}: {"; ".join(problems)} '
                    f'(set GAP_CACHE_DIR or cache_dir to a writable folder)')


def _make_root(root):
    """Create the store root (and its parents); True when this call created it."""
    if root.is_dir():
        if not os.access(root, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, 'not writable')
        return False
    if not os.access(_existing_parent(root), os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, 'not writable')
    try:
        root.mkdir(parents=True)
    except FileExistsError:
        return False
    return True


def _existing_parent(path):
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path('/')


@contextlib.contextmanager
def _flock(folder):
    """An exclusive flock on the folder itself (no lock file to leave behind); a filesystem
    that refuses it gets no lock (the atomic rename still keeps the store whole)."""
    import fcntl
    fd = os.open(folder, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _build_locked(path, key, root, created, split, layout):
    final = root / key
    try:
        with _flock(root):
            if (final / 'index.npz').is_file():  # another process wrote it while this one waited
                return final
            table = read_pickle(path, split, layout)
            try:
                _write_store(table, root, final)
            finally:
                del table  # the whole pickle: give its memory back before training starts
                _release_memory()
            _remove_stale(root, key)
            return final
    except BaseException:
        if created:  # bad input: leave no trace, not even the empty root
            with contextlib.suppress(OSError):
                root.rmdir()
        raise


def _write_store(table, root, final):
    for stale in root.glob('.*.tmp'):  # a writer killed before its rename (we hold the lock)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f'.{final.name}.', suffix='.tmp'))
    try:
        annotations, kind, joints = table['annotations'], str(table['kind']), int(table['joints'])
        rows, dtype = int(table['offsets'][-1]), _store_dtype(annotations)
        with open(tmp / 'frames.npy', 'wb') as f:
            np.lib.format.write_array_header_2_0(f, {'descr': np.lib.format.dtype_to_descr(dtype),
                                                     'fortran_order': False, 'shape': (rows, joints, 3)})
            for a in annotations:
                f.write(_rows(a, kind, dtype).data)
            f.flush()
            os.fsync(f.fileno())
        with open(tmp / 'index.npz', 'wb') as f:
            np.savez(f, **{k: v for k, v in table.items() if k != 'annotations'})
            f.flush()
            os.fsync(f.fileno())
        try:
            os.rename(tmp, final)
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not (final / 'index.npz').is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # a writer without the lock was first: keep its store
        with contextlib.suppress(OSError):
            dir_fd = os.open(root, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise UserError(f'cannot write the store {final}: {e.strerror or e}') from None
        raise


def _remove_stale(root, key):
    """Stores of earlier versions of the pickle (open memory maps of them stay valid)."""
    for old in root.glob('v*-*-*'):
        if old.name != key and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)


def _release_memory():
    """Give the pickle's freed memory back to the OS (glibc keeps freed small blocks otherwise)."""
    gc.collect()
    release_freed_memory()


def _store_dtype(annotations):
    """float16 when every keypoint (and score) array is: storing it so loses nothing."""
    half = np.dtype('<f2')
    if all(a['keypoint'].dtype == half and a.get('keypoint_score', a['keypoint']).dtype == half
           for a in annotations):
        return half
    return np.dtype('<f4')


def _rows(a, kind, dtype):
    """An annotation's (M * T, V, 3) rows: x, y, z, or x, y, score."""
    keypoint = a['keypoint']
    M, T, V, _ = keypoint.shape
    if kind == '3d':
        return np.ascontiguousarray(keypoint, dtype=dtype).reshape(M * T, V, 3)
    out = np.empty((M, T, V, 3), dtype)
    out[..., :2] = keypoint
    out[..., 2] = a['keypoint_score']
    return out.reshape(M * T, V, 3)


# ------------------------------------------------------------------------------ reading, checking

def read_pickle(path, split, layout):
    """The pickle read and checked whole: a dict of the index arrays plus 'annotations' (the
    annotation dicts, in order); a UserError (one line) for any bad input. `split` None checks
    no split name (predict reads every clip)."""
    data = unpickle.load(path)
    if not isinstance(data, dict) or not {'split', 'annotations'} <= set(data):
        hint = (' (pyskl\'s custom-data script writes a bare list of annotations: wrap it as '
                '{"split": {name: [frame_dir, ...]}, "annotations": [...]})') if isinstance(data, list) else ''
        got = f'a dict with keys {sorted(map(str, data))}' if isinstance(data, dict) else type(data).__name__
        raise UserError(f'{path}: expected a pyskl annotation pickle, a dict with "split" and '
                        f'"annotations"; got {got}{hint}')
    splits, annotations = data['split'], data['annotations']
    if not isinstance(splits, dict) or not all(isinstance(v, (list, tuple)) for v in splits.values()):
        raise UserError(f'{path}: "split" must map each split name to a list of frame_dir names')
    if not isinstance(annotations, (list, tuple)):
        raise UserError(f'{path}: "annotations" must be a list of dicts, got {type(annotations).__name__}')
    if split is not None and split not in splits:
        raise UserError(_no_split(path, split, splits))
    if not annotations:
        raise UserError(f'{path}: "annotations" is empty')

    first = None  # (kind, joints) of the first annotation: all must agree
    position, offsets, bodies, frames, labels, names, shapes = {}, [0], [], [], [], [], []
    for n, a in enumerate(annotations):
        kind, joints, img_shape = _check_annotation(a, n, path)
        name = a['frame_dir']
        if first is None:
            first = kind, joints
            _fit_layout(layout, kind, joints, path)
        elif (kind, joints) != first:
            raise UserError(f'{path}: {name} holds {_data_desc(kind, joints)} but the annotations '
                            f'before it {_data_desc(*first)}; a pickle holds one kind of skeleton')
        if name in position:
            raise UserError(f'{path}: frame_dir {name} appears twice in "annotations"')
        position[name] = n
        M, T = a['keypoint'].shape[:2]
        offsets.append(offsets[-1] + M * T)
        bodies.append(M)
        frames.append(T)
        labels.append(int(a['label']))
        names.append(name)
        shapes.append(img_shape)

    split_names, split_offsets, split_members = [], [0], []
    for split_name, members in splits.items():
        if not isinstance(split_name, str):
            raise UserError(f'{path}: split names must be strings, got {split_name!r}')
        for member in members:
            if not isinstance(member, str) or member not in position:
                raise UserError(f'{path}: split {split_name!r} names {member!r}, which has no annotation')
            split_members.append(position[member])
        split_names.append(split_name)
        split_offsets.append(len(split_members))
    kind, joints = first
    return {
        'annotations': annotations, 'kind': np.array(kind), 'joints': np.array(joints),
        'offsets': np.array(offsets, np.int64), 'bodies': np.array(bodies, np.int64),
        'frames': np.array(frames, np.int64), 'label': np.array(labels, np.int64),
        'names': np.array(names, dtype=str), 'img_shape': np.array(shapes, np.float64).reshape(-1, 2),
        'split_names': np.array(split_names, dtype=str).reshape(-1),
        'split_offsets': np.array(split_offsets, np.int64),
        'split_members': np.array(split_members, np.int64),
    }


def _check_annotation(a, n, path):
    """(kind, joints, img_shape or (nan, nan)) of annotation n, or a UserError naming it."""
    if not isinstance(a, dict):
        raise UserError(f'{path}: annotation {n} is a {type(a).__name__}, expected a dict')
    name = a.get('frame_dir')
    if not isinstance(name, str) or not name:
        raise UserError(f'{path}: annotation {n} has ' + ('no "frame_dir"' if name is None else
                                                             f'frame_dir {name!r}, expected a non-empty string'))
    where = f'{path}: {name}'
    for field in FIELDS[1:]:
        if field not in a:
            raise UserError(f'{where} has no "{field}"')
    keypoint = a['keypoint']
    if not isinstance(keypoint, np.ndarray) or keypoint.ndim != 4 or keypoint.dtype.kind != 'f' \
            or keypoint.shape[3] not in KINDS:
        got = f'{keypoint.dtype} {keypoint.shape}' if isinstance(keypoint, np.ndarray) else type(keypoint).__name__
        raise UserError(f'{where}: keypoint must be a float array (M, T, V, C) with C = 3 (x, y, z) '
                        f'or 2 (x, y), got {got}')
    M, T, V, C = keypoint.shape
    kind = KINDS[C]
    label, total = a['label'], a['total_frames']
    if not _is_int(label) or label < 0:
        raise UserError(f'{where}: label must be a class index >= 0 (0-based), got {label!r}')
    if not _is_int(total) or total != T:
        raise UserError(f'{where}: total_frames is {total!r} but keypoint {keypoint.shape} holds {T} frames')
    if M == 0 or T == 0 or V == 0:
        raise UserError(f'{where}: empty sequence, keypoint has shape {keypoint.shape} '
                        f'(bodies, frames, joints, coords)')
    if not np.isfinite(keypoint).all():
        m, t, v = np.argwhere(~np.isfinite(keypoint).all(axis=3))[0]
        raise UserError(f'{where}: keypoint holds NaN or infinite values (body {m}, frame {t}, joint {v}, '
                        f'from 0); the pickle is damaged or was made from bad input')
    img_shape = (math.nan, math.nan)
    if kind == '2d':
        if 'keypoint_score' not in a:
            raise UserError(f'{where} has no "keypoint_score" (2D keypoints need one score per joint)')
        score = a['keypoint_score']
        if not isinstance(score, np.ndarray) or score.shape != (M, T, V) or score.dtype.kind not in 'fiu':
            got = f'{score.dtype} {score.shape}' if isinstance(score, np.ndarray) else type(score).__name__
            raise UserError(f'{where}: keypoint_score must be a number array of shape {(M, T, V)}, got {got}')
        if not np.isfinite(score).all():
            m, t, v = np.argwhere(~np.isfinite(score))[0]
            raise UserError(f'{where}: keypoint_score holds NaN or infinite values (body {m}, frame {t}, '
                            f'joint {v}, from 0)')
        if 'img_shape' in a:
            img_shape = _check_img_shape(a['img_shape'], f'{where}: img_shape')
    return kind, V, img_shape


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_img_shape(value, where):
    try:
        h, w = (float(v) for v in value)
    except (TypeError, ValueError):
        raise UserError(f'{where} must be (height, width), got {value!r}') from None
    if not (math.isfinite(h) and math.isfinite(w) and h > 0 and w > 0):
        raise UserError(f'{where} must be two positive numbers (height, width), got {value!r}')
    return h, w


def _data_desc(kind, joints):
    return f'{joints} joints x (x, y, z)' if kind == '3d' else f'{joints} joints x (x, y) + score'


def _fit_layout(layout, kind, joints, path):
    """The layout's Graph class, when it takes this data; else one line naming both."""
    layout_class = load_layout(layout or ('ntu' if kind == '3d' else 'coco'))
    C, score = layout_class.channels, layout_class.score_channel
    wanted_score = None if kind == '3d' else 2
    if layout_class.num_node != joints or C != 3 or score != wanted_score:
        takes = f'{layout_class.num_node} joints x {C} channels' + (
            ' (no score channel)' if score is None else f' (channel {score} a score)')
        need = ('3 channels, no score channel' if kind == '3d' else '3 channels (x, y, score), score_channel 2')
        raise UserError(f'{path} holds {_data_desc(kind, joints)} but layout {layout_name(layout_class)} '
                        f'takes {takes}; name a layout of {joints} joints and {need}')
    return layout_class


def _no_split(path, split, names):
    return f'{path} has no split {split!r}; it has: {", ".join(map(str, names)) or "none"}'


def _split_members(index, split, path):
    names = [str(v) for v in index['split_names']]
    if split not in names:
        raise UserError(_no_split(path, split, names))
    s = names.index(split)
    lo, hi = index['split_offsets'][s:s + 2]
    return index['split_members'][lo:hi]

