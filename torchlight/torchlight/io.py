"""Atomic file writes: write a temporary file beside the target, then os.replace it.

A run killed mid-write leaves the previous file (or none), never a truncated checkpoint or pickle;
a failed write (full disk, read-only folder) removes its temporary file and is one WriteError line.
"""
import contextlib
import csv
import glob
import io as _bytes
import json
import math
import os
import pickle
import tempfile

import torch

from torchlight.errors import UserError

TMP_SUFFIX = '.tmp'


class WriteError(UserError):
    """A file could not be written (OS error); the previous version of it, if any, is intact."""


def _write_error(path, error):
    reason = getattr(error, 'strerror', None) or str(error).strip().splitlines()[0] or type(error).__name__
    return WriteError(f'cannot write {path}: {reason}')


@contextlib.contextmanager
def atomic_open(path, mode='w'):
    """Open a temporary file in path's folder; on success it replaces `path` in one step."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix='.' + os.path.basename(path) + '.', suffix=TMP_SUFFIX)
    except OSError as e:
        raise _write_error(path, e) from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file what open() would
        kwargs = {} if 'b' in mode else {'encoding': 'utf-8', 'newline': ''}
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(e, OSError):
            raise _write_error(path, e) from None
        raise


def leftover_temporaries(folder):
    """Temporary files of writes that a killed process never finished (atomic_open's names)."""
    return sorted(glob.glob(os.path.join(glob.escape(folder), '.*' + TMP_SUFFIX)))


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_text(path, text):
    with atomic_open(path) as f:
        f.write(text)


def save_pickle(path, obj):
    with atomic_open(path, 'wb') as f:
        pickle.dump(obj, f)


def save_torch(path, obj):
    # Serialised in memory first: torch's zip writer reports a failed file write (a full disk) as
    # a bare RuntimeError ('unexpected pos'); a plain write of the bytes raises the OSError itself.
    buffer = _bytes.BytesIO()
    torch.save(obj, buffer)
    with atomic_open(path, 'wb') as f:
        f.write(buffer.getbuffer())


def save_csv(path, rows):
    with atomic_open(path) as f:
        csv.writer(f).writerows(rows)


def finite_or_none(value):
    """`value` with every non-finite float replaced by None: JSON has no NaN or Infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def save_json_lines(path, records, sort_keys=True):
    """One JSON object per line; non-finite numbers are written as null (strict JSON)."""
    with atomic_open(path) as f:
        for record in records:
            f.write(json.dumps(finite_or_none(record), sort_keys=sort_keys, allow_nan=False) + '\n')


def read_json_lines(path):
    if not os.path.isfile(path):
        return []
    with open(path, encoding='utf-8') as f:
        return [json.loads(line) for line in f if line.strip()]
