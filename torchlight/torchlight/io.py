"""Atomic file writes: write a temporary file beside the target, then os.replace it.

A run killed mid-write leaves the previous file (or none), never a truncated checkpoint or pickle.
"""
import contextlib
import csv
import json
import os
import pickle
import tempfile

import torch


@contextlib.contextmanager
def atomic_open(path, mode='w'):
    """Open a temporary file in path's folder; on success it replaces `path` in one step."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.' + os.path.basename(path) + '.', suffix='.tmp')
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file what open() would
        kwargs = {} if 'b' in mode else {'encoding': 'utf-8', 'newline': ''}
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


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
    with atomic_open(path, 'wb') as f:
        torch.save(obj, f)


def save_csv(path, rows):
    with atomic_open(path) as f:
        csv.writer(f).writerows(rows)


def save_json_lines(path, records):
    with atomic_open(path) as f:
        for record in records:
            f.write(json.dumps(record, sort_keys=True) + '\n')


def read_json_lines(path):
    if not os.path.isfile(path):
        return []
    with open(path, encoding='utf-8') as f:
        return [json.loads(line) for line in f if line.strip()]
