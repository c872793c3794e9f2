"""A prompt-embedding table exported to one file, so training needs no text-encoder package.

`python text/export_embeddings.py` encodes every prompt of a dataset once and writes the file; a
trainer given the file reads the frozen table from it instead of building the encoder. The file is
a torch.save of a dict of plain tensors, strings and ints (it loads with weights_only=True):

  format           FORMAT_TAG, so other .pt files (checkpoints, cache entries) are told apart
  version          FORMAT_VERSION; bump it when the layout changes
  table            (len(texts), width) float32, row i = embedding of texts[i]
  encoder          encoder name ('ViT-B/32', 'all-MiniLM-L6-v2', ...)
  encoder_identity its weights identity (file path+size+mtime, or 'random:seed=S')
  dataset, num_class
  texts_sha256     texts_sha256(texts)
  texts            the ordered prompts (PromptBank.all_texts())

The loader refuses, in one line, a file whose prompts, width or encoder differ from the run's. A file
holding every prompt of the run and more (NTU120's table for an NTU60 run: NTU60's classes are
NTU120's first 60) serves it: each prompt's embedding does not depend on the others'.
This module imports only torch and torchlight: never clip, sentence_transformers or transformers.
"""
import hashlib
import warnings
from pathlib import Path

import torch

from torchlight import io
from torchlight.errors import UserError

FORMAT_TAG = 'gap-text-embeddings'
FORMAT_VERSION = 1
_SHOWN_CHARS = 60  # a prompt quoted in an error is cut to this many characters
_EXPORT_HINT = 'export it again with `python text/export_embeddings.py`'


def texts_sha256(texts):
    """Hex sha256 of the ordered prompts (count first, each text NUL-terminated)."""
    h = hashlib.sha256(f'{len(texts)}\0'.encode())
    for text in texts:
        h.update(text.encode('utf-8') + b'\0')
    return h.hexdigest()


def _canonical_encoder(name):
    """Encoder names compare like text.encoders.build_encoder reads them (MiniLM: any case, with
    or without its 'sentence-transformers/' prefix)."""
    name = str(name).strip()
    lowered = name.lower()
    if lowered.startswith('sentence-transformers/'):
        lowered = lowered[len('sentence-transformers/'):]
    return lowered if lowered == 'all-minilm-l6-v2' else name


def _short(text):
    text = ' '.join(str(text).split())
    return repr(text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS - 3] + '...')


def save_embedding_file(path, table, texts, encoder_name, encoder_identity, dataset, num_class):
    """Write the table of `texts` atomically to `path` (a temp file renamed over it); returns path."""
    texts = [str(t) for t in texts]
    if not isinstance(table, torch.Tensor) or table.ndim != 2 or table.shape[0] != len(texts):
        shape = tuple(table.shape) if isinstance(table, torch.Tensor) else type(table).__name__
        raise ValueError(f'table {shape} does not have one row per text ({len(texts)} texts)')
    entry = {
        'format': FORMAT_TAG,
        'version': FORMAT_VERSION,
        'table': table.detach().to('cpu', torch.float32).contiguous().clone(),
        'encoder': str(encoder_name),
        'encoder_identity': str(encoder_identity),
        'dataset': str(dataset),
        'num_class': int(num_class),
        'texts_sha256': texts_sha256(texts),
        'texts': texts,
    }
    io.save_torch(path, entry)
    return Path(path)


def _read_entry(path):
    """The stored dict, or UserError when `path` is missing or not a text-embedding file."""
    if not path.is_file():
        what = 'is a folder, not a file' if path.is_dir() else 'not found'
        raise UserError(f'text-embedding file {path}: {what}')
    try:
        with warnings.catch_warnings():  # a plain pickle file: torch's protocol notice, then ours
            warnings.filterwarnings('ignore', message='Detected pickle protocol')
            entry = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # not a torch file, truncated, or holding arbitrary objects
        reason = ' '.join(str(e).split())
        if reason.startswith('Weights only load failed'):  # torch's long advice does not apply
            reason = 'it holds pickled objects other than tensors, strings and numbers'
        reason = reason[:160] or type(e).__name__
        raise UserError(f'text-embedding file {path}: not a readable torch file ({reason})') from None
    if not isinstance(entry, dict) or entry.get('format') != FORMAT_TAG:
        raise UserError(f'text-embedding file {path}: not a text-embedding file (no {FORMAT_TAG!r} '
                        f'tag; a checkpoint or cache entry?); {_EXPORT_HINT}')
    if entry.get('version') != FORMAT_VERSION:
        raise UserError(f'text-embedding file {path}: unknown format version {entry.get("version")!r} '
                        f'(this code reads version {FORMAT_VERSION}); {_EXPORT_HINT}')
    table, stored = entry.get('table'), entry.get('texts')
    if not (isinstance(table, torch.Tensor) and table.ndim == 2 and table.is_floating_point()
            and isinstance(stored, list) and all(isinstance(t, str) for t in stored)
            and table.shape[0] == len(stored) and isinstance(entry.get('encoder'), str)
            and entry.get('texts_sha256') == texts_sha256(stored)):
        raise UserError(f'text-embedding file {path}: damaged (table, prompts and their checksum '
                        f'do not agree); {_EXPORT_HINT}')
    if not bool(torch.isfinite(table).all()):
        raise UserError(f'text-embedding file {path}: the table holds NaN or infinite values; '
                        f'{_EXPORT_HINT}')
    return entry


def _texts_problem(stored, texts, entry):
    """None when the prompts are the same, else what differs, in words."""
    if len(stored) == len(texts) and entry['texts_sha256'] == texts_sha256(texts):
        return None
    made_for = f'made for {entry.get("dataset")!s} with {entry.get("num_class")} classes'
    first = next((i for i, (a, b) in enumerate(zip(stored, texts)) if a != b), min(len(stored), len(texts)))
    file_text = _short(stored[first]) if first < len(stored) else '(none)'
    run_text = _short(texts[first]) if first < len(texts) else '(none)'
    return (f'prompts differ from this run\'s ({made_for}: {len(stored)} prompts in the file, '
            f'{len(texts)} in the run; first difference at prompt {first}: file {file_text}, '
            f'run {run_text})')


def _rows_of(stored, texts):
    """The file's row of each of the run's prompts, or None when one is missing from the file."""
    row = {}
    for i, text in enumerate(stored):
        row.setdefault(text, i)
    if not all(text in row for text in texts):
        return None
    return torch.tensor([row[text] for text in texts], dtype=torch.long)


def load_embedding_file(path, texts, width=None, encoder_name=None):
    """(table, description): the (len(texts), width) float32 table stored at `path`, checked
    against the run's ordered prompts `texts`, the model's text `width` and `encoder_name` (None
    skips a check), and a description of the encoder for logs. UserError, one line, on a mismatch."""
    path = Path(path)
    entry = _read_entry(path)
    table, stored = entry['table'], entry['texts']
    if encoder_name is not None and _canonical_encoder(entry['encoder']) != _canonical_encoder(encoder_name):
        raise UserError(f'text-embedding file {path}: encoded with {entry["encoder"]}, but the model '
                        f'is configured for {encoder_name}; export it again with `python '
                        f'text/export_embeddings.py --encoder {encoder_name} ...`')
    if width is not None and table.shape[1] != int(width):
        raise UserError(f'text-embedding file {path}: embeddings are {table.shape[1]}-d, but the '
                        f'model\'s text width is {width}')
    texts = list(texts)
    problem = _texts_problem(stored, texts, entry)
    subset = ''
    if problem:
        rows = _rows_of(stored, texts)
        if rows is None:
            raise UserError(f'text-embedding file {path}: {problem}; descriptions edited, or another '
                            f'dataset or --num-class? {_EXPORT_HINT}')
        table = table[rows]
        subset = f'; the rows of this run\'s {len(texts)} of its {len(stored)} prompts'

    identity = str(entry.get('encoder_identity', ''))
    random_weights = identity.startswith('random:')
    if random_weights:
        warnings.warn(f'text-embedding file {path} was encoded by {entry["encoder"]} with RANDOM '
                      'WEIGHTS: its text supervision is meaningless (use it only for tests and '
                      'benchmarks)', stacklevel=2)
    weights = 'RANDOM WEIGHTS' if random_weights else identity or 'weights unknown'
    description = f'{entry["encoder"]} ({weights}; table from {path}{subset})'
    return table.to(torch.float32).contiguous(), description
