"""Lazy, per-item readers for the NTU data files (upstream .npz, or the converted .h5).

Neither reader loads the skeleton array: an .npz member is memory-mapped straight out of the zip
(np.savez stores members uncompressed; np.load(mmap_mode=...) ignores the flag for .npz), and
the HDF5 file is read one sample at a time. Files are opened lazily, once per process, and the
handles are dropped when pickled, so DataLoader workers (fork or spawn) each open their own and
no process holds more than the pages it touches.

HDF5 layout written by feeders/convert_h5.py (format 'gap-ntu-h5', version 1), per split group
'train' / 'test': `frames` (total frames, 150) float32, every sample at its true length (trailing
all-zero padding dropped), concatenated and chunked along frames; `offsets` (N + 1,) int64, sample
i being frames[offsets[i]:offsets[i + 1]]; `label` (N,) int64. Root attributes: format, version,
num_class, num_frames (the padded length T of the source npz).

The feeder has the samples it serves scanned once for NaN and inf when it opens a split
(`check_finite`: the data read in 8 MiB blocks through one buffer, ~10 MiB of memory, no page left
mapped; about 3 GB/s from the page cache and 0.5-1.2 GB/s from disk on a 2-core VM, see
tests/benchmarks/bench_nonfinite_scan.py), so bad data stops a run at its start, naming the sample.
"""
import os
import struct
import zipfile
from pathlib import Path

import numpy as np

from torchlight.errors import UserError

H5_FORMAT = 'gap-ntu-h5'
H5_VERSION = 1
SPLITS = ('train', 'test')
FEATURES = 150  # 2 bodies x 25 joints x (x, y, z)
SCAN_BLOCK_BYTES = 8 << 20  # what check_finite reads at a time

_LOCAL_HEADER = struct.Struct('<4sHHHHHIIIHH')  # zip local file header, 30 bytes


def npz_member_memmap(path, name):
    """Read-only np.memmap of member `name` ('x_train', ...) of an uncompressed .npz file."""
    path = str(path)
    offset, shape, fortran, dtype = npz_member_layout(path, name)
    return np.memmap(path, dtype=dtype, mode='r', shape=shape, offset=offset,
                     order='F' if fortran else 'C')


def npz_member_layout(path, name):
    """(byte offset, shape, fortran order, dtype) of member `name` of an uncompressed .npz."""
    with zipfile.ZipFile(path) as zf:
        try:
            info = zf.getinfo(name + '.npy')
        except KeyError:
            raise UserError(f'{path} has no array {name!r} (it has: '
                            f'{", ".join(n[:-4] for n in zf.namelist())})') from None
    if info.compress_type != zipfile.ZIP_STORED:
        raise UserError(f'{name} in {path} is compressed (np.savez_compressed), so it cannot be '
                        f'memory-mapped; convert it once: python feeders/convert_h5.py {path}')
    with open(path, 'rb') as f:
        f.seek(info.header_offset)
        fields = _LOCAL_HEADER.unpack(f.read(_LOCAL_HEADER.size))
        if fields[0] != b'PK\x03\x04':
            raise UserError(f'{path} is not a valid .npz (bad zip header for {name})')
        name_len, extra_len = fields[-2], fields[-1]
        f.seek(info.header_offset + _LOCAL_HEADER.size + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        offset = f.tell()
    if dtype.hasobject:
        raise UserError(f'{name} in {path} holds Python objects, expected a numeric array')
    return offset, shape, fortran, dtype


def first_nonfinite_row(read_rows, count, row_values, dtype, block_bytes=SCAN_BLOCK_BYTES):
    """Index of the first of rows 0..count-1 that holds a NaN or inf, or None.

    read_rows(start, out) fills `out`, a C-contiguous (k, row_values) array, with rows
    start..start+k-1. Blocks of about block_bytes go through one reused buffer, so the scan adds
    that much memory whatever the file size."""
    dtype = np.dtype(dtype)
    if dtype.kind not in 'fc' or count <= 0 or row_values <= 0:
        return None  # integers and booleans are always finite
    per_block = max(1, block_bytes // (row_values * dtype.itemsize))
    buf = np.empty((min(per_block, count), row_values), dtype)
    ok = np.empty(buf.shape, bool)
    for start in range(0, count, len(buf)):
        k = min(len(buf), count - start)
        read_rows(start, buf[:k])
        if not np.isfinite(buf[:k], out=ok[:k]).all():
            return start + int(np.argmin(ok[:k].all(axis=1)))
    return None


def nonfinite_message(path, what, sample, remake):
    """The one line for a sample holding NaN or inf; `remake` is the command that makes the file."""
    return (f'{path} {what}: sample {sample} holds NaN or infinite values; the file is damaged or '
            f'was made from bad input; remake it: {remake}')


def labels_from_onehot(y, where):
    """Class indices of one-hot rows (upstream: np.where(y > 0)[1]); each row must have one."""
    if y.ndim != 2:
        raise UserError(f'{where}: expected one-hot labels of shape (N, num_class), got {y.shape}')
    if y.dtype.kind in 'fc' and not np.isfinite(y).all():
        row = int(np.argmin(np.isfinite(y).all(axis=1)))
        raise UserError(f'{where}: label row {row} holds NaN or infinite values')
    hot = y > 0
    bad = np.flatnonzero(hot.sum(1) != 1)
    if len(bad):
        raise UserError(f'{where}: expected exactly one positive entry per label row, '
                        f'row {bad[0]} has {int(hot[bad[0]].sum())}')
    return hot.argmax(1).astype(np.int64)


def check_samples(shape, n_labels, where):
    if len(shape) != 3 or shape[2] != FEATURES:
        raise UserError(f'{where}: expected samples of shape (N, T, {FEATURES}) '
                        f'(2 bodies x 25 joints x 3), got {tuple(shape)}')
    if shape[0] != n_labels:
        raise UserError(f'{where}: {shape[0]} samples but {n_labels} labels')


class _PerProcess:
    """Opens its file handle lazily and again in each new process; never pickles it."""

    _handle = None
    _pid = None

    def _get(self):
        if self._pid != os.getpid():
            self._handle, self._pid = self._open(), os.getpid()
        return self._handle

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop('_handle', None)
        state.pop('_pid', None)
        return state


class NpzSplit(_PerProcess):
    """One split of an upstream NTU .npz: `x_<split>` memory-mapped, labels in memory."""

    def __init__(self, path, split):
        self.path, self.key = str(path), f'x_{split}'
        with np.load(self.path, allow_pickle=False) as npz:
            if f'y_{split}' not in npz.files:
                raise UserError(f'{self.path} has no y_{split}; expected the keys x_train, '
                                f'y_train, x_test, y_test of the NTU prep scripts')
            y = npz[f'y_{split}']
        self.label = labels_from_onehot(y, f'{self.path} y_{split}')
        self.num_class = y.shape[1]
        shape = self._get().shape
        check_samples(shape, len(self.label), f'{self.path} {self.key}')
        self.num_frames = shape[1]

    def _open(self):
        return npz_member_memmap(self.path, self.key)

    def __len__(self):
        return len(self.label)

    def check_finite(self, count=None):
        """A UserError naming the first of the first `count` samples (default all) holding NaN
        or inf. Plain reads, not the memory map: no page of the file stays mapped."""
        count = len(self) if count is None else count
        offset, shape, fortran, dtype = npz_member_layout(self.path, self.key)
        row_values = int(np.prod(shape[1:]))
        with open(self.path, 'rb', buffering=0) as f:
            def read_rows(start, out):
                if fortran:  # not what np.save writes for these arrays; the slow, general way
                    out[...] = self._get()[start:start + len(out)].reshape(len(out), -1)
                    return
                f.seek(offset + start * row_values * dtype.itemsize)
                view = memoryview(out.reshape(-1).view(np.uint8))
                done = 0
                while done < len(view):
                    n = f.readinto(view[done:])
                    if not n:
                        raise UserError(f'{self.path} {self.key}: the file ends early (truncated); '
                                        f'remake it')
                    done += n
            bad = first_nonfinite_row(read_rows, count, row_values, dtype)
        if bad is not None:
            raise UserError(nonfinite_message(self.path, self.key, f'{self.key[2:]}_{bad} (row {bad})',
                                              prep_command(self.path)))

    def read(self, i):
        """Sample i as a (T, 150) float32 array (a copy, padded to the file's T)."""
        return np.array(self._get()[i], dtype=np.float32)


class H5Split(_PerProcess):
    """One split of a converted .h5: samples read one at a time at their true length."""

    def __init__(self, path, split):
        import h5py
        self.path, self.split = str(path), split
        with h5py.File(self.path, 'r') as f:
            if f.attrs.get('format') != H5_FORMAT:
                raise UserError(f'{self.path} is not an NTU file written by feeders/convert_h5.py')
            if split not in f:
                raise UserError(f'{self.path} has no {split!r} group')
            group = f[split]
            self.label = group['label'][()].astype(np.int64)
            self.offsets = group['offsets'][()].astype(np.int64)
            frames = group['frames'].shape
            self.num_class = int(f.attrs['num_class'])
            self.num_frames = int(f.attrs['num_frames'])
        where = f'{self.path} {split}'
        if len(frames) != 2 or frames[1] != FEATURES:
            raise UserError(f'{where}: expected frames of shape (F, {FEATURES}), got {frames}')
        if len(self.offsets) != len(self.label) + 1:
            raise UserError(f'{where}: {len(self.offsets)} offsets for {len(self.label)} labels')
        if len(self.label) and not 0 <= self.label.min() <= self.label.max() < self.num_class:
            raise UserError(f'{where}: labels must lie in [0, {self.num_class - 1}], '
                            f'found {self.label.min()}..{self.label.max()}')

    def _open(self):
        import h5py
        f = h5py.File(self.path, 'r')
        return f, f[self.split]['frames']  # keep the File object alive with its dataset

    def __len__(self):
        return len(self.label)

    def check_finite(self, count=None):
        """A UserError naming the first of the first `count` samples (default all) holding NaN
        or inf; the frames are read in blocks through one buffer, by a handle of its own."""
        import h5py
        count = len(self) if count is None else count
        with h5py.File(self.path, 'r') as f:
            frames = f[self.split]['frames']

            def read_rows(start, out):
                frames.read_direct(out, np.s_[start:start + len(out)], np.s_[0:len(out)])
            bad = first_nonfinite_row(read_rows, int(self.offsets[count]), FEATURES, frames.dtype)
        if bad is not None:
            i = int(np.searchsorted(self.offsets, bad, side='right')) - 1
            raise UserError(nonfinite_message(
                self.path, self.split, f'{self.split}_{i} (frame {bad - self.offsets[i]})',
                f'python feeders/convert_h5.py {Path(self.path).with_suffix(".npz")}'))

    def read(self, i):
        """Sample i as a (L, 150) float32 array, L its true length."""
        frames = self._get()[1]
        return frames[self.offsets[i]:self.offsets[i + 1]].astype(np.float32, copy=False)


def prep_command(path):
    folder = 'ntu120' if '120' in Path(path).name else 'ntu'
    return (f'cd data/{folder} && python get_raw_skes_data.py && python get_raw_denoised_data.py'
            f' && python seq_transformation.py')


def open_split(path, split):
    """NpzSplit or H5Split for `path`, with one-line errors for the usual mistakes."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; expected 'train' or 'test'")
    path = Path(path)
    h5 = path.suffix in ('.h5', '.hdf5')
    if not path.is_file():
        if h5:
            raise UserError(f'NTU data file {path} not found; convert the npz once: '
                            f'python feeders/convert_h5.py {path.with_suffix(".npz")}')
        raise UserError(f'NTU data file {path} not found; make it with: {prep_command(path)}')
    if h5:
        return H5Split(path, split)
    if not zipfile.is_zipfile(path):
        raise UserError(f'{path} is not an .npz file (expected the output of the NTU prep scripts)')
    return NpzSplit(path, split)
