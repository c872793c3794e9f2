"""Encode every prompt of a label set once and write the table to one file (text/embedding_file.py).

    python text/export_embeddings.py --dataset ucla --encoder all-MiniLM-L6-v2 -o ucla_minilm.pt

The prompts are built exactly as TextSupervision.build builds them (same descriptions, same
prompt sets, same order, same encode_all), so a trainer given the file gets the table it would
have encoded itself, on a machine without the text-encoder packages or their weights.
"""
import argparse
import sys
import time
from pathlib import Path

import torch

if __package__ in (None, ''):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from text.embedding_file import save_embedding_file
from text.label_set import LabelSet
from text.supervision import build_encoder, encode_all, prompt_bank
from torchlight.errors import UserError, run_cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Encode the prompts of a label set with a text encoder and write the table to '
                    'one file, for training with --text-embeddings FILE.')
    parser.add_argument('--dataset', '--text-dir', dest='dataset', required=True, metavar='LABEL_SET',
                        help="label set whose descriptions to encode: 'ntu', 'ucla' or a folder of "
                             "description files, as the trainer's --text-dir (required)")
    parser.add_argument('--encoder', required=True,
                        help="text encoder name, e.g. ViT-B/32 or all-MiniLM-L6-v2 (required)")
    parser.add_argument('--weights', default=None,
                        help="encoder weights: a CLIP .pt file or a MiniLM model folder, or 'random' "
                             "(tests only) (default: the encoder's own: clip's cache, downloaded "
                             "when missing; MiniLM's packaged weights)")
    parser.add_argument('--num-class', type=int, default=None,
                        help="encode the first N classes (default: all of the label set's)")
    parser.add_argument('--device', default='cpu', help='where to run the encoder (default: cpu)')
    parser.add_argument('-o', '--output', required=True, metavar='FILE',
                        help='file to write (required; replaced atomically if it exists)')
    return parser.parse_args(argv)


def export(dataset, encoder_name, output, weights=None, num_class=None, device='cpu', log=print):
    """Build the prompts of label set `dataset` (a name or folder), encode them once, write the
    file; returns (path, number of prompts, width)."""
    label_set = LabelSet.open(dataset)
    num_class = len(label_set) if num_class is None else num_class
    if num_class < 1:
        raise UserError(f'--num-class must be at least 1, got {num_class}')
    try:
        device = torch.device(device)
    except RuntimeError as e:
        raise UserError(f'--device {device!r}: {e}') from None
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise UserError(f'--device {device}: no CUDA device available here')
    output = Path(output)
    if output.is_dir():
        raise UserError(f'output {output} is a folder; give a file path with -o')
    texts = prompt_bank(label_set, num_class).all_texts()
    start = time.perf_counter()
    encoder = build_encoder(encoder_name, weights, device, weights_flag='--weights').float()
    encoder.requires_grad_(False)
    table = encode_all(encoder, texts)
    if table.shape != (len(texts), encoder.width):
        raise UserError(f'{encoder.description} gave a {tuple(table.shape)} table for '
                        f'{len(texts)} prompts, expected width {encoder.width}')
    try:
        save_embedding_file(output, table, texts, encoder.name, encoder.identity, dataset, num_class)
    except OSError as e:
        raise UserError(f'cannot write {output}: {e.strerror or e}') from None
    log(f'{len(texts)} prompts, width {table.shape[1]}, encoder {encoder.description}, '
        f'written to {output} in {time.perf_counter() - start:.1f} s')
    return output, len(texts), table.shape[1]


def main(argv=None):
    args = parse_args(argv)
    export(args.dataset, args.encoder, args.output, weights=args.weights, num_class=args.num_class,
           device=args.device)
    return 0


if __name__ == '__main__':
    run_cli(main)
