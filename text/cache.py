"""Embedding tables on disk, so a second run (or another stream) skips encoding.

An entry is keyed by the encoder name, the weights identity (file path+size+mtime, or
'random:seed=S') and a hash of the exact prompt texts in order: editing a description file, or
swapping weights, changes the key and the table is encoded again (a miss, never a stale hit).
"""
import hashlib
import json
import os
import re
import warnings
from pathlib import Path

import torch

from torchlight import io

FORMAT = 1  # bump when the stored layout changes


def default_cache_dir():
    return Path(os.environ.get('GAP_CACHE_DIR') or Path.home() / '.cache' / 'gap' / 'text_embeddings')


def cache_key(encoder_name, weights_identity, texts):
    """Hex digest naming one table."""
    h = hashlib.sha256()
    h.update(json.dumps([FORMAT, encoder_name, weights_identity, len(texts)]).encode())
    for text in texts:
        h.update(text.encode('utf-8') + b'\0')
    return h.hexdigest()


def cache_path(cache_dir, encoder_name, key):
    safe = re.sub(r'[^A-Za-z0-9.-]+', '_', encoder_name)
    return Path(cache_dir) / f'{safe}-{key[:32]}.pt'


def load_table(cache_dir, encoder_name, key, num_texts):
    """The cached (num_texts, width) float tensor, or None on a miss or an unreadable entry."""
    path = cache_path(cache_dir, encoder_name, key)
    if not path.is_file():
        return None
    try:
        entry = torch.load(path, map_location='cpu', weights_only=True)
        table = entry['embeddings']
        if entry.get('key') != key or table.ndim != 2 or table.shape[0] != num_texts:
            raise ValueError('entry does not match its key')
    except Exception as e:  # a damaged entry costs one re-encode, never a crash
        warnings.warn(f'ignoring damaged text-embedding cache {path}: {e}')
        return None
    return table.float()


def save_table(cache_dir, encoder_name, key, table):
    """Write atomically (temp file + rename) so concurrent runs never read half a file."""
    path = cache_path(cache_dir, encoder_name, key)
    io.save_torch(path, {'key': key, 'encoder': encoder_name,
                         'embeddings': table.detach().float().cpu().contiguous()})
    return path
