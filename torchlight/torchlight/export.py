"""An inference-only checkpoint from a finished run: the weights and what using them needs.

    python -m torchlight.export WORK_DIR -o model.pt [--checkpoint runs-E-S.pt]

Without --checkpoint the run's re-tested best checkpoint is taken (the one its
epoch1_test_score.json names). The file holds no optimizer and no text table, loads with
torch.load(weights_only=True), and `--weights model.pt` reads its `model` entry as a state dict:

    format, version     FORMAT, VERSION
    model               the state dict (upstream's names)
    model_class, model_args, feeder, test_feeder_args, criterion, criterion_args
                        as the run's config.yaml has them (with model_args.graph the layout)
    class_names         the run's class names, in label order (from its criterion's label set)
    config              the run's whole config.yaml
    origin              work dir, checkpoint file and its sha256, its test accuracy when recorded
"""
import argparse
import hashlib
import json
import os
import sys

import yaml

from torchlight import io
from torchlight.args import parse_kv_dict
from torchlight.checkpoint import read_state_dict, upgraded_settings
from torchlight.criterion import class_names_for
from torchlight.errors import UserError, run_cli
from torchlight.importing import build

FORMAT, VERSION = 'gap-inference', 1


def best_checkpoint(work_dir):
    """The checkpoint the run re-tested as its best (epoch1_test_score.json), and its accuracy."""
    path = os.path.join(work_dir, 'epoch1_test_score.json')
    try:
        with open(path, encoding='utf-8') as f:
            record = json.load(f)
    except (OSError, ValueError):
        raise UserError(f'{work_dir}: no readable epoch1_test_score.json (an unfinished run?); '
                        'name the weights with --checkpoint') from None
    if not record.get('checkpoint'):
        raise UserError(f'{path} names no checkpoint; name the weights with --checkpoint')
    checkpoint = record['checkpoint']
    if not os.path.isfile(checkpoint):  # the run's folder moved: the same name in this one
        checkpoint = os.path.join(work_dir, os.path.basename(checkpoint))
    return checkpoint, record.get('accuracy')


def export(work_dir, out, checkpoint=None, criterion_args=None):
    """Write the inference checkpoint of the run in `work_dir`; `criterion_args` fill what its
    config.yaml leaves unset (a run from before criterion_args: its entry script's label set)."""
    try:
        with open(os.path.join(work_dir, 'config.yaml'), encoding='utf-8') as f:
            config = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        raise UserError(f'{work_dir}: no readable config.yaml (not a work dir?)') from None
    given = dict(criterion_args or {})
    config = upgraded_settings(config, {'criterion_args': given})
    config['criterion_args'] = {**given, **config.get('criterion_args', {})}
    accuracy = None
    if checkpoint is None:
        checkpoint, accuracy = best_checkpoint(work_dir)
    weights, _ = read_state_dict(checkpoint)
    model = build(config['model'], dict(config.get('model_args') or {}), 'model_args')
    model.load_state_dict(weights)  # the weights fit the run's own model
    names = class_names_for(config['criterion'], model, config.get('criterion_args'), config.get('seed', 1))
    with open(checkpoint, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    entry = {
        'format': FORMAT, 'version': VERSION,
        'model': {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        'model_class': config['model'], 'model_args': config.get('model_args') or {},
        'feeder': config.get('feeder'), 'test_feeder_args': config.get('test_feeder_args') or {},
        'criterion': config.get('criterion'), 'criterion_args': config.get('criterion_args') or {},
        'class_names': list(names) if names else None, 'config': config,
        'origin': {'work_dir': os.path.abspath(work_dir), 'checkpoint': os.path.basename(checkpoint),
                   'sha256': digest, 'test_top1': accuracy},
    }
    io.save_torch(out, entry)
    return entry


def main(argv=None):
    p = argparse.ArgumentParser(prog='python -m torchlight.export', description=__doc__.split('\n\n')[0])
    p.add_argument('work_dir', help="a finished run's work dir (its config.yaml names the model)")
    p.add_argument('-o', '--out', required=True, help='the file to write')
    p.add_argument('--checkpoint', default=None, help='runs-E-S.pt to export (default: the re-tested best)')
    p.add_argument('--criterion-args', default='', help="k=v,... for what the run's config leaves unset "
                   "(e.g. text_dir='ucla' for a run that named its label set through its entry script)")
    args = p.parse_args(argv)
    entry = export(args.work_dir, args.out, args.checkpoint, parse_kv_dict(args.criterion_args, '--criterion-args'))
    size = os.path.getsize(args.out) / 2 ** 20
    print(f'{args.out}: {entry["model_class"]} from {entry["origin"]["checkpoint"]}, '
          f'{len(entry["class_names"] or [])} class names, {size:.2f} MiB')
    return 0


if __name__ == '__main__':
    sys.path.insert(0, os.getcwd())  # the run's class paths (model., text.) from the repo root
    run_cli(main)
