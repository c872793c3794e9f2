"""Summarise finished runs from their metrics.jsonl and config.yaml: best and last epoch per run,
mean and spread per group of runs that share a configuration (seeds of one config).

    python -m torchlight.summary work_dir/ucla_cpu30/*_s*/

A group is every run whose config.yaml is the same apart from the keys in NOT_CONFIG. Its name is
the runs' common folder name without _s<N>, else the config file's name; groups that would get the
same name get the config keys that tell them apart. A folder that holds no finished run (no or
partial metrics.jsonl, no config.yaml, fewer epochs than num_epoch) is skipped with a note on stderr.

Every accuracy is in %. --json prints one object:
  runs:    [{run (folder name), path, group, epochs (last epoch), best, best_epoch, last (last
           evaluated epoch), text_best, text_last (text-space top-1, when the run has it)}]
  groups:  {name: {runs (count), paths, best, last, text_last: {mean, sd (sample), min, max}}}
  skipped: {path: why}
"""
import argparse
import json
import math
import os
import re
import statistics
import sys

import yaml

from torchlight.errors import UserError, run_cli

# config.yaml keys that say where a run lives or what it logs and saves, none of which changes its
# numbers; with the seed they are ignored when grouping. start_epoch: a --resume rewrites it to the
# epoch it resumed from, so a resumed run would otherwise leave its seeds' group.
NOT_CONFIG = frozenset({'seed', 'work_dir', 'model_saved_name', 'config', 'print_log', 'log_interval',
                        'show_topk', 'save_score', 'save_interval', 'save_epoch', 'start_epoch'})
ACCURACIES = ('best', 'last', 'text_last')  # the per-run values a group gets statistics of


class Unfinished(Exception):
    """A folder without a finished run: skipped with a note."""


def number(value):
    """A finite number; the trainer writes null for a non-finite value (older runs: NaN)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_metrics(path):
    """metrics.jsonl's records; Unfinished when it is missing or a line is not a JSON object (a copy
    cut short, a write interrupted)."""
    try:
        with open(path, encoding='utf-8') as f:
            lines = f.readlines()
    except FileNotFoundError:
        raise Unfinished(f'no {os.path.basename(path)}') from None
    except OSError as e:
        raise Unfinished(f'{os.path.basename(path)}: {e.strerror}') from None
    records = []
    for i, line in enumerate(lines, 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError:
                records.append(None)
            if not isinstance(records[-1], dict):
                raise Unfinished(f'{os.path.basename(path)} line {i} is not a JSON object (cut short?)')
    return records


def read_config(work_dir):
    path = os.path.join(work_dir, 'config.yaml')
    try:
        with open(path, encoding='utf-8') as f:
            config = yaml.safe_load(f)
    except OSError:
        raise Unfinished('no config.yaml') from None
    except yaml.YAMLError:
        raise Unfinished('config.yaml is not valid YAML') from None
    if not isinstance(config, dict):
        raise Unfinished('config.yaml is not a mapping')
    return config


def run_summary(work_dir):
    """(summary of the run in `work_dir`, its config); Unfinished when there is no finished run."""
    if not os.path.isdir(work_dir):
        raise Unfinished('not a folder')
    records = read_metrics(os.path.join(work_dir, 'metrics.jsonl'))
    config = read_config(work_dir)
    epochs = records[-1].get('epoch') if records else None
    if not number(epochs):
        raise Unfinished('metrics.jsonl holds no finished epoch')
    if number(config.get('num_epoch')) and epochs < config['num_epoch']:
        raise Unfinished(f'metrics.jsonl ends at epoch {epochs} of {config["num_epoch"]}')
    evaluated = [r for r in records if number(r.get('test_top1'))]
    if not evaluated:
        raise Unfinished('no evaluated epoch')
    best = max(evaluated, key=lambda r: r['test_top1'])  # first maximum, as the trainer's best
    last = evaluated[-1]
    out = {'run': os.path.basename(os.path.normpath(work_dir)), 'path': work_dir, 'epochs': epochs,
           'best': 100 * best['test_top1'], 'best_epoch': best.get('epoch'), 'last': 100 * last['test_top1']}
    text = [r['test_text_top1'] for r in evaluated if number(r.get('test_text_top1'))]
    if number(last.get('test_text_top1')):
        out.update(text_best=100 * max(text), text_last=100 * last['test_text_top1'])
    return out, config


def flatten(config, prefix=''):
    """{dotted key: value} of the settings that define a run (nested dicts: model_args.num_class)."""
    out = {}
    for key, value in config.items():
        if not prefix and key in NOT_CONFIG:
            continue
        if isinstance(value, dict) and value:
            out.update(flatten(value, f'{prefix}{key}.'))
        else:
            out[f'{prefix}{key}'] = json.dumps(value, sort_keys=True, default=str)
    return out


def stem(run):
    return re.sub(r'_s\d+$', '', run)


def group_names(groups):
    """A readable name per group (list of (flat config, config, runs)), distinct for distinct configs."""
    names = []
    for _, config, runs in groups:
        stems = {stem(r['run']) for r in runs}
        from_config = os.path.splitext(os.path.basename(str(config.get('config') or '')))[0]
        names.append(stems.pop() if len(stems) == 1 else from_config or '+'.join(sorted(stems)))
    for name in set(names):
        same = [i for i, n in enumerate(names) if n == name]
        if len(same) > 1:  # add what tells them apart: the keys whose values differ among them
            flats = [groups[i][0] for i in same]
            keys = sorted(k for k in set().union(*flats) if len({f.get(k) for f in flats}) > 1)
            for i, flat in zip(same, flats):
                shown = ', '.join(f'{k}={flat.get(k, "-")[:30]}' for k in keys[:3])
                names[i] = f'{name} [{shown}{", ..." if len(keys) > 3 else ""}]'
    # values cut short can still coincide: number those
    return [f'{n} #{names[:i].count(n) + 1}' if names.count(n) > 1 else n for i, n in enumerate(names)]


def mean_spread(values):
    """{mean, sd (sample standard deviation), min, max} of values in %."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {'mean': statistics.fmean(values), 'sd': sd, 'min': min(values), 'max': max(values)}


def summarize(work_dirs, note=lambda line: print(line, file=sys.stderr)):
    """(runs, groups, skipped) as --json prints them; a skipped folder gets one note line."""
    runs, by_config, skipped = [], {}, {}
    for work_dir in work_dirs:
        try:
            run, config = run_summary(work_dir)
        except Unfinished as e:
            skipped[work_dir] = str(e)
            note(f'note: skipped {work_dir}: {e}')
            continue
        runs.append(run)
        flat = flatten(config)
        by_config.setdefault(tuple(sorted(flat.items())), (flat, config, []))[2].append(run)
    if not runs:
        raise UserError(f'no finished run in {len(work_dirs)} folder(s)')
    groups = {}
    for name, (_, _, members) in zip(group_names(list(by_config.values())), by_config.values()):
        for run in members:
            run['group'] = name
        groups[name] = {'runs': len(members), 'paths': [r['path'] for r in members]} | {
            key: mean_spread([r[key] for r in members]) for key in ACCURACIES if all(key in r for r in members)}
    return runs, groups, skipped


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m torchlight.summary', description=__doc__.splitlines()[0])
    parser.add_argument('work_dirs', nargs='+', help='work dirs of finished runs (metrics.jsonl, config.yaml)')
    parser.add_argument('--json', action='store_true', help='print one JSON object (keys: see the module doc)')
    args = parser.parse_args(argv)
    runs, groups, skipped = summarize(args.work_dirs)
    if args.json:
        print(json.dumps({'runs': runs, 'groups': groups, 'skipped': skipped}, indent=1))
        return 0
    print('| run | group | epochs | best top-1 (epoch) | last top-1 | text-space top-1, last |')
    print('|---|---|---|---|---|---|')
    for r in runs:
        text = f'{r["text_last"]:.2f}' if 'text_last' in r else '-'
        print(f'| {r["run"]} | {r["group"]} | {r["epochs"]} | {r["best"]:.2f} ({r["best_epoch"]}) | '
              f'{r["last"]:.2f} | {text} |')
    print()
    print('| group | runs | best: mean +- sd [min, max] | last: mean +- sd [min, max] | text-space, last |')
    print('|---|---|---|---|---|')
    for name, stats in groups.items():
        cell = lambda k: ('{mean:.2f} +- {sd:.2f} [{min:.2f}, {max:.2f}]'.format(**stats[k])  # noqa: E731
                          if k in stats else '-')
        print(f'| {name} | {stats["runs"]} | {cell("best")} | {cell("last")} | {cell("text_last")} |')
    return 0


if __name__ == '__main__':
    run_cli(main, sys.argv[1:])
