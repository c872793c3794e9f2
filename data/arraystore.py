"""Streamed array files: intermediate stores too big for memory, and upstream-format npz output.

A store is a folder with `values.npy` (a flat float32 array appended sample by sample, its header
patched with the final length on close) and `index.npz` (small per-sample arrays: offsets, shapes,
names). Readers memory-map `values.npy`, so no step holds a whole dataset.
"""
import os
import zipfile
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from torchlight.errors import UserError


def _npy_header(shape, dtype):
    return {'descr': npy_format.dtype_to_descr(np.dtype(dtype)), 'fortran_order': False,
            'shape': tuple(int(s) for s in shape)}


class StoreWriter:
    def __init__(self, folder):
        self.folder = Path(folder)
        self._made = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._tmp = self.folder / 'values.npy.part'
        self._f = open(self._tmp, 'wb')
        npy_format.write_array_header_1_0(self._f, _npy_header((0,), np.float32))
        self._header_len = self._f.tell()
        self.size = 0

    def add(self, array):
        """Append `array` (any shape, written as float32); return its offset in the flat array."""
        array = np.ascontiguousarray(array, dtype=np.float32)
        offset = self.size
        self._f.write(array.tobytes())
        self.size += array.size
        return offset

    def close(self, **index):
        # The npy header leaves room for the length to grow, so it is rewritten in place.
        self._f.seek(0)
        npy_format.write_array_header_1_0(self._f, _npy_header((self.size,), np.float32))
        assert self._f.tell() == self._header_len
        self._f.close()
        self._tmp.replace(self.folder / 'values.npy')
        np.savez(self.folder / 'index.npz', **index)

    def abort(self):
        """Drop what was written (and the folder, if this writer made it and it is empty)."""
        self._f.close()
        self._tmp.unlink(missing_ok=True)
        if self._made:
            try:
                self.folder.rmdir()
            except OSError:  # not empty: leave it
                pass


class StoreReader:
    """Reads slices of `values.npy` with positioned reads (not a memory map): a pass over the
    whole store then keeps no pages resident in this process."""

    def __init__(self, folder, made_by):
        self.folder = Path(folder)
        values, index = self.folder / 'values.npy', self.folder / 'index.npz'
        if not values.is_file() or not index.is_file():
            raise UserError(f'{self.folder}: no prepared data there; run {made_by} first')
        with open(values, 'rb') as f:
            version = npy_format.read_magic(f)
            read_header = (npy_format.read_array_header_1_0 if version == (1, 0)
                           else npy_format.read_array_header_2_0)
            shape, _, dtype = read_header(f)
            self._data_start = f.tell()
        if dtype != np.float32 or len(shape) != 1:
            raise UserError(f'{values}: expected a flat float32 array, got {dtype} {shape}')
        self.size = shape[0]
        self._fd = os.open(values, os.O_RDONLY)
        with np.load(index, allow_pickle=False) as z:
            self.index = {k: z[k] for k in z.files}

    def read(self, offset, count):
        """values[offset:offset + count] as a new float32 array."""
        data = os.pread(self._fd, 4 * count, self._data_start + 4 * offset)
        if len(data) != 4 * count:
            raise UserError(f'{self.folder / "values.npy"}: truncated; rerun the step that wrote it')
        return np.frombuffer(data, dtype=np.float32).copy()

    def close(self):
        os.close(self._fd)


class NpzStreamWriter:
    """Write an uncompressed npz (what np.savez makes) member by member, arrays row by row."""

    def __init__(self, path):
        self.path = Path(path)
        self._tmp = self.path.with_name(self.path.name + '.part')
        self._zip = zipfile.ZipFile(self._tmp, 'w', compression=zipfile.ZIP_STORED, allowZip64=True)

    def add(self, key, array):
        with self._zip.open(key + '.npy', 'w', force_zip64=True) as f:
            npy_format.write_array(f, np.asanyarray(array), allow_pickle=False)

    def add_rows(self, key, shape, dtype, rows):
        """Member `key` of `shape`, filled from the iterable `rows` of arrays (concatenated)."""
        expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
        written = 0
        with self._zip.open(key + '.npy', 'w', force_zip64=True) as f:
            npy_format.write_array_header_1_0(f, _npy_header(shape, dtype))
            for row in rows:
                data = np.ascontiguousarray(row, dtype=dtype).tobytes()
                f.write(data)
                written += len(data)
        assert written == expected, (key, written, expected)

    def close(self):
        self._zip.close()
        self._tmp.replace(self.path)

    def abort(self):
        self._zip.close()
        self._tmp.unlink(missing_ok=True)
