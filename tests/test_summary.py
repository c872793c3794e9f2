"""torchlight.summary: best/last per run from metrics.jsonl, mean and spread per group of seeds."""
import json

import pytest

from torchlight.errors import UserError
from torchlight.summary import main, mean_spread, run_summary


def write_run(folder, accs, text=None):
    folder.mkdir(parents=True)
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


def test_best_is_the_first_maximum_and_last_the_last_evaluated(tmp_path):
    r = run_summary(write_run(tmp_path / 'a_s1', [0.5, 0.8, 0.8, 0.7, None], text=[0.1, 0.2, 0.3, 0.4, 0]))
    assert (r['best'], r['best_epoch'], r['last'], r['epochs']) == (0.8, 2, 0.7, 5)
    assert r['text_last'] == 0.4


def test_groups_seeds_with_mean_and_sample_sd(tmp_path, capsys):
    dirs = [write_run(tmp_path / f'gap_s{s}', [a]) for s, a in ((1, 0.90), (2, 0.86), (3, 0.88))]
    dirs.append(write_run(tmp_path / 'ctr_s1', [0.80]))
    assert main([str(d) for d in dirs] + ['--json']) == 0
    groups = json.loads(capsys.readouterr().out)['groups']
    mean, sd, low, high = groups['gap']['best']
    assert mean == pytest.approx(88.0) and sd == pytest.approx(2.0) and (low, high) == (86.0, 90.0)
    assert groups['ctr']['runs'] == 1 and groups['ctr']['best'][1] == 0.0
    assert mean_spread([0.5])[0] == 50.0


def test_a_dir_without_metrics_is_a_one_line_error(tmp_path):
    with pytest.raises(UserError, match='metrics.jsonl: not found'):
        run_summary(tmp_path)
