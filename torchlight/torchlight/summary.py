"""Summarise finished runs from their metrics.jsonl: best and last epoch per run, mean and spread
per group of runs (seeds of one config).

    python -m torchlight.summary work_dir/ucla_cpu/*_s*/       # group = work-dir name minus _s<N>
"""
import argparse
import json
import os
import re
import statistics
import sys

from torchlight.errors import UserError, run_cli


def run_summary(work_dir):
    path = os.path.join(work_dir, 'metrics.jsonl')
    try:
        with open(path, encoding='utf-8') as f:
            records = [json.loads(line) for line in f if line.strip()]
    except OSError:
        raise UserError(f'{path}: not found (not a finished work dir?)') from None
    evaluated = [r for r in records if 'test_top1' in r]
    if not evaluated:
        raise UserError(f'{path}: no evaluated epoch')
    best = max(evaluated, key=lambda r: r['test_top1'])  # first maximum, as the trainer's best
    last = evaluated[-1]
    out = {'run': os.path.basename(os.path.normpath(work_dir)), 'epochs': records[-1]['epoch'],
           'best': best['test_top1'], 'best_epoch': best['epoch'], 'last': last['test_top1']}
    if 'test_text_top1' in last:
        out['text_last'] = last['test_text_top1']
        out['text_best'] = max(r.get('test_text_top1', 0.0) for r in evaluated)
    return out


def group_name(run):
    return re.sub(r'_s\d+$', '', run)


def mean_spread(values):
    """(mean, sample standard deviation, min, max) in %."""
    values = [100 * v for v in values]
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), sd, min(values), max(values)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('work_dirs', nargs='+', help='finished work dirs (each with metrics.jsonl)')
    parser.add_argument('--json', action='store_true', help='print one JSON object instead of tables')
    args = parser.parse_args(argv)
    runs = [run_summary(d) for d in args.work_dirs]
    groups = {}
    for r in runs:
        groups.setdefault(group_name(r['run']), []).append(r)
    table = {name: {key: mean_spread([r[key] for r in members]) for key in ('best', 'last', 'text_last')
                    if all(key in r for r in members)} | {'runs': len(members)}
             for name, members in groups.items()}
    if args.json:
        print(json.dumps({'runs': runs, 'groups': table}, indent=1))
        return 0
    print('| run | epochs | best top-1 (epoch) | last top-1 | text-space top-1, last |')
    print('|---|---|---|---|---|')
    for r in runs:
        text = f'{100 * r["text_last"]:.2f}' if 'text_last' in r else '-'
        print(f'| {r["run"]} | {r["epochs"]} | {100 * r["best"]:.2f} ({r["best_epoch"]}) | '
              f'{100 * r["last"]:.2f} | {text} |')
    print()
    print('| group | runs | best: mean +- sd [min, max] | last: mean +- sd [min, max] | text-space, last |')
    print('|---|---|---|---|---|')
    for name, stats in table.items():
        cell = lambda k: ('{:.2f} +- {:.2f} [{:.2f}, {:.2f}]'.format(*stats[k]) if k in stats else '-')  # noqa: E731
        print(f'| {name} | {stats["runs"]} | {cell("best")} | {cell("last")} | {cell("text_last")} |')
    return 0


if __name__ == '__main__':
    run_cli(main, sys.argv[1:])
