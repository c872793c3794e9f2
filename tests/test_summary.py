"""torchlight.summary: best/last per run from metrics.jsonl, mean and spread per group of runs
that share a config.yaml (seed and work dir aside)."""
import json
import subprocess
import sys

import pytest
import yaml

from torchlight.errors import UserError
from torchlight.summary import main, mean_spread, run_summary, summarize

CONFIG = {'work_dir': './work_dir/x', 'config': 'config/ucla/gap.yaml', 'seed': 1, 'num_epoch': 1,
          'model': 'model.lst.Model', 'model_args': {'num_class': 10, 'graph_args': {'mode': 'spatial'}},
          'base_lr': 0.1, 'log_interval': 100}


def write_run(folder, accs, text=None, **config):
    """A finished run as the trainer leaves it: config.yaml (command line on top) and metrics.jsonl."""
    folder.mkdir(parents=True)
    config = {**CONFIG, 'work_dir': str(folder), 'num_epoch': len(accs), **config}
    (folder / 'config.yaml').write_text('# command line: main.py\n\n' + yaml.safe_dump(config))
    lines = []
    for i, acc in enumerate(accs, 1):
        record = {'epoch': i, 'train_loss': 1.0 / i}
        if acc is not None:
            record['test_top1'] = acc
            if text is not None:
                record['test_text_top1'] = text[i - 1]
        lines.append(json.dumps(record))
    (folder / 'metrics.jsonl').write_text('\n'.join(lines) + '\n')
    return folder


def as_json(capsys, dirs):
    assert main([str(d) for d in dirs] + ['--json']) == 0
    return json.loads(capsys.readouterr().out)


def test_best_is_the_first_maximum_and_last_the_last_evaluated_in_percent(tmp_path):
    r, _ = run_summary(write_run(tmp_path / 'a_s1', [0.5, 0.8, 0.8, 0.7, None], text=[0.1, 0.2, 0.3, 0.4, 0]))
    assert (r['best'], r['best_epoch'], r['last'], r['epochs']) == (80.0, 2, 70.0, 5)
    assert r['text_last'] == pytest.approx(40.0) and r['text_best'] == pytest.approx(40.0)


def test_seeds_of_one_config_form_a_group_with_mean_and_sample_sd(tmp_path, capsys):
    # seed and logging differ, the config does not
    dirs = [write_run(tmp_path / f'gap_s{s}', [a], seed=s, log_interval=s)
            for s, a in ((1, 0.90), (2, 0.86), (3, 0.88))]
    dirs.append(write_run(tmp_path / 'ctr_s1', [0.80], model='model.ctrgcn.Model'))
    out = as_json(capsys, dirs)
    gap = out['groups']['gap']
    assert gap['runs'] == 3 and gap['paths'] == [str(d) for d in dirs[:3]]
    assert gap['best']['mean'] == pytest.approx(88.0) and gap['best']['sd'] == pytest.approx(2.0)
    assert (gap['best']['min'], gap['best']['max']) == pytest.approx((86.0, 90.0))
    assert out['groups']['ctr']['runs'] == 1 and out['groups']['ctr']['best']['sd'] == 0.0
    assert [r['group'] for r in out['runs']] == ['gap', 'gap', 'gap', 'ctr']
    assert mean_spread([50.0])['mean'] == 50.0


def test_json_accuracies_are_all_percentages(tmp_path, capsys):
    out = as_json(capsys, [write_run(tmp_path / 'g_s1', [0.5, 0.75], text=[0.25, 0.5])])
    run, group = out['runs'][0], out['groups']['g']
    assert (run['best'], run['last'], run['text_best'], run['text_last']) == (75.0, 75.0, 50.0, 50.0)
    assert group['best']['mean'] == group['last']['mean'] == 75.0 and group['text_last']['mean'] == 50.0


def test_same_folder_name_with_different_configs_are_distinct_groups(tmp_path, capsys):
    ntu = write_run(tmp_path / 'ntu' / 'joint', [0.6], model_args={'num_class': 60, 'graph_args': {'mode': 'spatial'}})
    ucla = write_run(tmp_path / 'ucla' / 'joint', [0.9])
    out = as_json(capsys, [ntu, ucla])
    assert len(out['groups']) == 2
    names = [r['group'] for r in out['runs']]
    assert names == ['joint [model_args.num_class=60]', 'joint [model_args.num_class=10]']
    assert [out['groups'][n]['best']['mean'] for n in names] == [60.0, 90.0]


def test_configs_that_differ_past_the_shown_width_are_numbered(tmp_path, capsys):
    dirs = [write_run(tmp_path / name / 'joint', [0.5], text_dir='x' * 40 + name) for name in ('a', 'b')]
    assert list(as_json(capsys, dirs)['groups']) == [f'joint [text_dir="{"x" * 29}] #{i}' for i in (1, 2)]


def test_group_of_differently_named_folders_is_named_after_the_config_file(tmp_path, capsys):
    dirs = [write_run(tmp_path / 'first', [0.5], seed=1), write_run(tmp_path / 'rerun', [0.7], seed=2)]
    assert list(as_json(capsys, dirs)['groups']) == ['gap']


@pytest.mark.parametrize('damage, why', [
    (lambda d: (d / 'metrics.jsonl').unlink(), 'metrics.jsonl'),
    (lambda d: (d / 'config.yaml').unlink(), 'no config.yaml'),
    (lambda d: (d / 'metrics.jsonl').write_text('{"epoch": 1, "test_top1": 0.5}\n{"epoch": 2, "te'),
     'line 2 is not a JSON object'),
    (lambda d: (d / 'metrics.jsonl').write_text('{"epoch": 1, "test_top1": 0.5}\n'), 'epoch 1 of 2'),
    (lambda d: (d / 'metrics.jsonl').write_text(''), 'no finished epoch'),
])
def test_an_unfinished_folder_is_skipped_with_a_one_line_note(tmp_path, capsys, damage, why):
    good = write_run(tmp_path / 'gap_s1', [0.5, 0.6])
    bad = write_run(tmp_path / 'gap_s2', [0.5, 0.7], seed=2)
    damage(bad)
    assert main([str(good), str(bad), '--json']) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)['groups']['gap']['runs'] == 1 and why in json.loads(out)['skipped'][str(bad)]
    assert err.count('\n') == 1 and err.startswith(f'note: skipped {bad}: ') and why in err


def test_the_note_goes_to_stderr_and_no_finished_run_is_a_one_line_error(tmp_path):
    good = write_run(tmp_path / 'gap_s1', [0.5])
    cmd = [sys.executable, '-m', 'torchlight.summary', str(good), str(tmp_path / 'missing')]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and '| gap | 1 |' in done.stdout
    assert done.stderr == f'note: skipped {tmp_path / "missing"}: not a folder\n'
    done = subprocess.run(cmd[:3] + [str(tmp_path / 'missing')], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.splitlines()[-1] == 'error: no finished run in 1 folder(s)'
    assert 'Traceback' not in done.stderr
    with pytest.raises(UserError):
        summarize([str(tmp_path / 'missing')], note=lambda line: None)


def test_null_and_nan_values_are_skipped(tmp_path, capsys):
    run = write_run(tmp_path / 'n_s1', [0.5, 0.6, 0.4])
    lines = (run / 'metrics.jsonl').read_text().splitlines()
    lines[1] = '{"epoch": 2, "test_top1": null, "test_loss": null, "test_text_top1": null}'
    lines[2] = '{"epoch": 3, "test_top1": 0.4, "test_loss": NaN, "test_text_top1": 0.3}'
    (run / 'metrics.jsonl').write_text('\n'.join(lines) + '\n')
    out = as_json(capsys, [run])['runs'][0]
    assert (out['best'], out['best_epoch'], out['last'], out['text_last']) == (50.0, 1, 40.0, 30.0)
