"""Convert an NTU .npz (from the prep scripts) to the HDF5 file the feeder reads per item.

    python feeders/convert_h5.py data/ntu/NTU60_CS.npz            # -> data/ntu/NTU60_CS.h5
    python feeders/convert_h5.py IN.npz -o OUT.h5 --compression lzf

Each sample is stored at its true length (trailing zero frames of the padding dropped), which
is what makes the file a fraction of the npz; see feeders/storage.py for the layout. The npz is
streamed block by block, so memory stays small whatever its size. Feeders give identical items
for the npz and its .h5.
"""
import argparse
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

if __package__ in (None, ''):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from feeders.storage import (FEATURES, H5_FORMAT, H5_VERSION, SPLITS,  # noqa: E402
                             check_samples, labels_from_onehot, nonfinite_message,
                             npz_member_memmap, prep_command)
from torchlight.errors import UserError, run_cli  # noqa: E402


def true_lengths(block):
    """Per sample of (B, T, F): 1 + index of its last frame with any non-zero value (0 if none)."""
    nonzero = block.any(axis=2)
    last = nonzero.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)
    return np.where(nonzero.any(axis=1), last, 0)


def read_samples(npz_path, key):
    """The x array of a split: memory-mapped, or loaded when the npz is compressed."""
    with zipfile.ZipFile(npz_path) as zf:
        compressed = zf.getinfo(key + '.npy').compress_type != zipfile.ZIP_STORED
    if compressed:
        with np.load(npz_path, allow_pickle=False) as npz:
            return npz[key]
    return npz_member_memmap(npz_path, key)


def convert(npz_path, h5_path, compression=None, chunk_frames=128, block=256, log=print):
    """Write h5_path from npz_path (both splits); returns {split: number of samples}."""
    import h5py
    npz_path, h5_path = Path(npz_path), Path(h5_path)
    if not npz_path.is_file():
        raise UserError(f'NTU data file {npz_path} not found; make it with: '
                        f'{prep_command(npz_path)}')
    with np.load(npz_path, allow_pickle=False) as npz:
        missing = [k for s in SPLITS for k in (f'x_{s}', f'y_{s}') if k not in npz.files]
        if missing:
            raise UserError(f'{npz_path} lacks {", ".join(missing)}; expected the keys x_train, '
                            f'y_train, x_test, y_test of the NTU prep scripts')
        onehots = {s: npz[f'y_{s}'] for s in SPLITS}
    tmp = h5_path.with_name(h5_path.name + '.part')
    try:
        with h5py.File(tmp, 'w') as out:
            counts = write_splits(out, npz_path, onehots, compression, chunk_frames, block, log)
    except BaseException:  # no half-written file left behind
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, h5_path)
    return counts


def write_splits(out, npz_path, onehots, compression, chunk_frames, block, log):
    """Both splits into the open HDF5 file `out`; returns {split: number of samples}."""
    counts, num_frames = {}, 0
    for split in SPLITS:
        x = read_samples(npz_path, f'x_{split}')
        label = labels_from_onehot(onehots[split], f'{npz_path} y_{split}')
        check_samples(x.shape, len(label), f'{npz_path} x_{split}')
        num_frames = max(num_frames, x.shape[1])
        group = out.create_group(split)
        frames = group.create_dataset(
            'frames', shape=(0, FEATURES), maxshape=(None, FEATURES), dtype='float32',
            chunks=(chunk_frames, FEATURES), compression=compression)
        offsets = [0]
        for start in range(0, len(x), block):
            samples = np.asarray(x[start:start + block], dtype=np.float32)
            finite = np.isfinite(samples).reshape(len(samples), -1).all(axis=1)
            if not finite.all():
                bad = start + int(np.argmin(finite))
                raise UserError(nonfinite_message(npz_path, f'x_{split}', f'{split}_{bad} (row {bad})',
                                                  prep_command(npz_path)))
            lengths = true_lengths(samples)
            kept = np.concatenate([s[:n] for s, n in zip(samples, lengths)])
            frames.resize(offsets[-1] + len(kept), axis=0)
            frames[offsets[-1]:] = kept
            offsets.extend(offsets[-1] + np.cumsum(lengths))
        group.create_dataset('offsets', data=np.asarray(offsets, dtype=np.int64))
        group.create_dataset('label', data=label)
        counts[split] = len(label)
        log(f'{split}: {len(label)} samples, {offsets[-1]} frames '
            f'(padded: {len(label) * x.shape[1]})')
    out.attrs.update(format=H5_FORMAT, version=H5_VERSION, num_frames=num_frames,
                     num_class=onehots['train'].shape[1], source=npz_path.name)
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('npz', help='NTU .npz made by the prep scripts')
    parser.add_argument('-o', '--out', help='output .h5 (default: the npz path with .h5)')
    parser.add_argument('--compression', choices=['none', 'lzf', 'gzip'], default='none',
                        help='HDF5 filter: smaller file, slower reads (default none)')
    parser.add_argument('--chunk-frames', type=int, default=128,
                        help='frames per HDF5 chunk (default 128)')
    args = parser.parse_args(argv)
    out = args.out or str(Path(args.npz).with_suffix('.h5'))
    compression = None if args.compression == 'none' else args.compression
    counts = convert(args.npz, out, compression, args.chunk_frames)
    mib = {path: os.path.getsize(path) / 2**20 for path in (out, args.npz)}
    print(f'wrote {out} ({counts["train"]} train, {counts["test"]} test samples, '
          f'{mib[out]:.1f} MiB; npz {mib[args.npz]:.1f} MiB)')


if __name__ == '__main__':
    run_cli(main)
