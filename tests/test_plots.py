"""torchlight/plots.py: learning curves and confusion matrices as PNG files, written atomically."""
import ast
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from torchlight import plots
from torchlight.errors import UserError, run_cli

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
# a failed write: the OSError, or torchlight.io's one-line WriteError (a UserError) that reports it
WRITE_ERRORS = (OSError, UserError)


def png_size(path):
    """(width, height) of a PNG file, after checking its signature and IHDR chunk."""
    with open(path, 'rb') as f:
        head = f.read(24)
    assert head[:8] == PNG_MAGIC, f'{path} is not a PNG'
    assert head[12:16] == b'IHDR'
    return int.from_bytes(head[16:20], 'big'), int.from_bytes(head[20:24], 'big')


def read_png(path):
    from matplotlib.image import imread
    return imread(path)


def metrics(epochs=12, eval_every=3, text=True):
    """Per-epoch records as the trainer writes them; test values only on evaluated epochs."""
    out = []
    for e in range(1, epochs + 1):
        rec = {'epoch': e, 'global_step': 10 * e, 'lr': 0.1 if e < 8 else 0.01,
               'train_loss': 3 / e + 0.5, 'train_ce': 2 / e + 0.3, 'train_text': 1 / e + 0.2,
               'train_kl': 0.05 / e, 'train_acc': 1 - 0.9 / e, 'train_samples_per_s': 500.0}
        if e % eval_every == 0:
            rec.update(test_top1=0.8 - 0.5 / e, test_loss=2.5 / e + 0.6)
            if text:
                rec['test_text_top1'] = 0.75 - 0.5 / e
        out.append(rec)
    return out


def leftovers(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith('.tmp'))


# ------------------------------------------------------------------------- learning curves
def test_learning_curves_writes_a_png(tmp_path):
    path = tmp_path / 'curves.png'
    assert plots.plot_learning_curves(metrics(), path) == path
    width, height = png_size(path)
    assert 1000 <= width <= 3000 and 300 <= height <= 1200  # three panels side by side
    image = read_png(path)
    assert image.shape[:2] == (height, width) and image[..., :3].std() > 0.05  # not blank
    assert leftovers(tmp_path) == []


def test_loss_keys_finds_every_loss_and_no_other_train_key():
    keys = plots.loss_keys(metrics())
    assert keys == ['train_loss', 'train_ce', 'train_text', 'train_kl']
    assert plots.loss_keys([{'epoch': 1, 'train_acc': 0.5, 'train_samples_per_s': 3.0,
                             'train_top5': 0.9, 'train_focal': 0.3, 'train_step_loss': 1.0,
                             'train_note': 'text'}]) == ['train_focal', 'train_step_loss']


@pytest.mark.parametrize('records', [
    metrics(eval_every=100),  # never evaluated: no test lines at all
    metrics(epochs=1, eval_every=1),  # one epoch
    metrics(text=False),  # no text-space accuracy
    [{'epoch': 1, 'lr': 0.1, 'train_loss': 1.0, 'train_acc': 0.2},
     {'epoch': 2, 'lr': 0.1, 'train_loss': math.nan, 'train_acc': None, 'test_top1': 0.3},
     {'epoch': 3}],  # holes, NaN and None are skipped
])
def test_learning_curves_with_missing_values(tmp_path, records):
    path = plots.plot_learning_curves(records, tmp_path / 'c.png')
    assert png_size(path)[0] > 500


def test_learning_curves_without_records_raises_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError):
        plots.plot_learning_curves([], tmp_path / 'c.png')
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------ confusion matrix
def confusion(n, per_class=20, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.integers(0, 3, size=(n, n))
    np.fill_diagonal(c, per_class)
    return c


def test_confusion_small(tmp_path):
    names = [f'action {i}' for i in range(10)]
    path = plots.plot_confusion(confusion(10), names, tmp_path / 'cm.png', title='NW-UCLA val')
    width, height = png_size(path)
    assert 600 <= width <= 2500 and 500 <= height <= 2500
    assert leftovers(tmp_path) == []


def test_confusion_120_classes(tmp_path):
    names = [f'a rather long action name number {i}' for i in range(120)]
    counts = confusion(120)
    counts[7] = 0  # a class without test samples: its accuracy is n/a, not a crash
    path = plots.plot_confusion(counts, names, tmp_path / 'cm120.png')
    width, height = png_size(path)
    assert min(width, height) >= 1500  # room for 120 rows of labels
    assert max(width, height) <= 6000


@pytest.mark.parametrize('counts, names', [
    (np.ones((3, 4)), ['a', 'b', 'c']),  # not square
    (np.ones((3, 3)), ['a', 'b']),  # names do not match
    (-np.ones((2, 2)), ['a', 'b']),  # negative counts
    (np.ones(3), ['a', 'b', 'c']),  # not a matrix
])
def test_confusion_bad_input_raises_and_writes_nothing(tmp_path, counts, names):
    with pytest.raises(ValueError):
        plots.plot_confusion(counts, names, tmp_path / 'cm.png')
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------- atomicity
def test_bad_path_raises_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / 'taken.png'
    target.mkdir()  # a folder where the file should go: os.replace fails
    with pytest.raises(WRITE_ERRORS):
        plots.plot_learning_curves(metrics(), target)
    assert sorted(os.listdir(tmp_path)) == ['taken.png'] and os.listdir(target) == []
    blocker = tmp_path / 'file'
    blocker.write_text('x')  # a file where a folder should be
    with pytest.raises(WRITE_ERRORS):
        plots.plot_confusion(confusion(3), 'abc', blocker / 'cm.png')
    assert sorted(os.listdir(tmp_path)) == ['file', 'taken.png']


def test_failure_while_writing_keeps_the_old_file(tmp_path, monkeypatch):
    from matplotlib.figure import Figure
    path = tmp_path / 'curves.png'
    path.write_bytes(b'old')

    def half_written(self, f, **kwargs):
        f.write(PNG_MAGIC + b'partial')
        raise RuntimeError('disk full')

    monkeypatch.setattr(Figure, 'savefig', half_written)
    with pytest.raises(RuntimeError):
        plots.plot_learning_curves(metrics(), path)
    with pytest.raises(RuntimeError):
        plots.plot_confusion(confusion(4), 'abcd', tmp_path / 'cm.png')
    assert path.read_bytes() == b'old'
    assert sorted(os.listdir(tmp_path)) == ['curves.png']


def test_import_has_no_side_effects():
    """matplotlib is imported inside the functions only (no backend chosen at import time)."""
    for rel in ('torchlight/torchlight/plots.py', 'data/render.py'):
        tree = ast.parse((REPO / rel).read_text())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = [a.name for n in top for a in n.names] + [n.module or '' for n in top
                                                          if isinstance(n, ast.ImportFrom)]
        assert not any(name.split('.')[0] in ('matplotlib', 'PIL') for name in names), rel


# ------------------------------------------------------------------------ python -m torchlight.plots
def test_cli_without_arguments_prints_usage_and_exits_2():
    done = subprocess.run([sys.executable, '-m', 'torchlight.plots'], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith('usage: python -m torchlight.plots')
    assert done.stdout == '' and 'Traceback' not in done.stderr


def test_cli_redraws_learning_curves_from_metrics_with_nulls(tmp_path, capsys):
    records = metrics()
    records[4].update(train_loss=None, lr=None)  # the trainer writes null for a non-finite value
    records[5].update(test_top1=None, test_loss=None, epoch=None)
    (tmp_path / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in records))
    assert plots.main([str(tmp_path)]) == 0
    assert capsys.readouterr().out == f'{tmp_path / "learning_curves.png"}\n'
    assert png_size(tmp_path / 'learning_curves.png')[0] > 500


@pytest.mark.parametrize('content, message', [
    (None, 'no metrics.jsonl'), ('', 'holds no epoch'), ('{"epoch": 1}\n{"epo', 'line 2 is not a JSON object')])
def test_cli_on_a_bad_work_dir_is_a_one_line_error(tmp_path, capsys, content, message):
    if content is not None:
        (tmp_path / 'metrics.jsonl').write_text(content)
    with pytest.raises(SystemExit) as end:
        run_cli(plots.main, [str(tmp_path)])
    err = capsys.readouterr().err
    assert end.value.code == 2 and err.startswith(f'error: {tmp_path}: ') and message in err
    assert err.count('\n') == 1 and not (tmp_path / 'learning_curves.png').exists()
