"""The fault matrix: each fault a run can meet, and how it must end.

Every case runs the real entry point in a subprocess (tests/faults.py injects the fault) on the tiny
pieces of test_processor.py, 3 epochs of 3 steps, and asserts the outcome: exit status, the one
`error:` line (no traceback), which files exist, and that the last good state loads and, once
resumed, ends exactly where an uninterrupted run ends. The README's section on errors lists it.
"""
import json
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import REPO
from test_distributed import CONFIG as DDP_CONFIG
from test_distributed import environment

FAULTS = str(REPO / 'tests' / 'faults.py')
# test_distributed's tiny run, 3 epochs with a step in the lr: 3 steps per epoch, every epoch saved
CONFIG = DDP_CONFIG.replace('num_epoch: 2', 'num_epoch: 3').replace('save_score: true\n', 'step: [2]\n')


def trainer(root, work, *args, fault='none'):
    return subprocess.run([sys.executable, FAULTS, fault, '--config', str(root / 'tiny.yaml'),
                           '--work-dir', str(work), *map(str, args)],
                          cwd=REPO, env=environment(), capture_output=True, text=True, timeout=180)


def one_error(out, *words):
    """The run failed with exit 2 and exactly one `error:` line holding `words`, no traceback."""
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    errors = [line for line in out.stderr.splitlines() if line.startswith('error: ')]
    assert len(errors) == 1 and 'Traceback' not in out.stderr, out.stderr[-2000:]
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def killed(out):
    assert out.returncode == -9, (out.returncode, out.stderr[-2000:])


def strict_metrics(work):
    """metrics.jsonl read as strict JSON (a bare NaN or Infinity fails)."""
    def refuse(constant):
        raise ValueError(f'non-JSON constant {constant} in metrics.jsonl')
    return [json.loads(line, parse_constant=refuse) for line in (work / 'metrics.jsonl').read_text().splitlines()]


def last_state(work):
    state = torch.load(work / 'last.pt', weights_only=True)
    assert all(torch.isfinite(v).all() for v in state['model'].values() if v.is_floating_point())
    return state


def names(work):
    return sorted(p.name for p in work.iterdir()) if work.exists() else []


def same_run(work, reference):
    """`work`, resumed to its end, is exactly the uninterrupted `reference`."""
    a, b = last_state(work), last_state(reference)
    assert a['epoch'] == b['epoch'] == 3 and a['global_step'] == b['global_step'] == 9
    assert all(torch.equal(a['model'][k], b['model'][k]) for k in b['model'])
    strip = lambda rows: [{k: v for k, v in m.items() if 'per_s' not in k} for m in rows]  # noqa: E731
    assert strip(strict_metrics(work)) == strip(strict_metrics(reference))
    assert not [n for n in names(work) if n.endswith('.tmp')]


def resume(root, work, *args):
    out = trainer(root, work, '--resume', *args)
    assert out.returncode == 0, out.stderr[-3000:]
    return (work / 'log.txt').read_text()


def make_unwritable(path):
    """A folder nothing can be written in, also for root (immutable); None when this system has no way."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        path.chmod(0o555)
        return lambda: path.chmod(0o755)
    if shutil.which('chattr') and subprocess.run(['chattr', '+i', str(path)], capture_output=True).returncode == 0:
        return lambda: subprocess.run(['chattr', '-i', str(path)], check=True)
    return None


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp('faults')
    (root / 'tiny.yaml').write_text(CONFIG)
    out = trainer(root, root / 'reference')
    assert out.returncode == 0, out.stderr[-3000:]
    return SimpleNamespace(path=root, reference=root / 'reference')


# ---------------------------------------------------------------- the cases
def input_nan(root, tmp):
    """NaN in a prepared .npz: refused when the feeder opens it, naming file and sample."""
    x = np.zeros((4, 8, 150), np.float32)
    x[2, 3, 7] = np.nan
    y = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    np.savez(tmp / 'bad.npz', x_train=x, y_train=y, x_test=np.zeros_like(x), y_test=y)
    work = tmp / 'w'
    out = trainer(root.path, work, '--feeder', 'feeders.feeder_ntu.Feeder',
                  '--train-feeder-args', f"data_path='{tmp / 'bad.npz'}',split='train'",
                  '--test-feeder-args', f"data_path='{tmp / 'bad.npz'}',split='test'")
    one_error(out, 'bad.npz', 'train_2', 'NaN')
    assert not work.exists()


def loss_nan(root, tmp):
    """The loss turns NaN at step 5 (epoch 2): the run stops there; epoch 1 stays, loadable."""
    work = tmp / 'w'
    one_error(trainer(root.path, work, fault='nan-loss@5'), 'diverged', 'epoch 2, step 5')
    assert [m['epoch'] for m in strict_metrics(work)] == [1]
    assert last_state(work)['epoch'] == 1 and last_state(work)['pending'] is None
    assert [n for n in names(work) if n.startswith('runs-')] == ['runs-1-3.pt']
    assert 'training diverged' in (work / 'log.txt').read_text()


def lr_1e30(root, tmp):
    """--base-lr 1e30 diverges in its first steps: one line, no NaN checkpoint, no bare NaN."""
    work = tmp / 'w'
    one_error(trainer(root.path, work, '--base-lr', '1e30'), 'diverged', 'epoch 1')
    assert not (work / 'last.pt').exists() and not list(work.glob('runs-*.pt'))
    if (work / 'metrics.jsonl').exists():
        strict_metrics(work)


def kill_in_step(root, tmp):
    """SIGKILL at step 5 (epoch 2): --resume redoes epoch 2 from its start, exactly."""
    work = tmp / 'w'
    killed(trainer(root.path, work, fault='kill-step@5'))
    assert last_state(work)['epoch'] == 1
    log = resume(root.path, work)
    assert 'stopped during epoch 2: training it again' in log
    same_run(work, root.reference)


def kill_in_first_evaluation(root, tmp):
    """SIGKILL in epoch 1's evaluation: last.pt holds the trained epoch; --resume evaluates it
    without training it again."""
    work = tmp / 'w'
    killed(trainer(root.path, work, fault='kill-eval@1'))
    state = last_state(work)
    assert state['epoch'] == 1 and state['pending']['epoch'] == 1 and not (work / 'metrics.jsonl').exists()
    log = resume(root.path, work)
    assert 'stopped while evaluating epoch 1: evaluating it now, without training it again' in log
    assert log.count('Training epoch: 1') == 1
    same_run(work, root.reference)


def kill_in_checkpoint_write(root, tmp):
    """SIGKILL half-way through last.pt's 3rd write (epoch 2, trained): the previous last.pt is
    intact, the partial file is removed on resume, and the run ends exactly."""
    work = tmp / 'w'
    killed(trainer(root.path, work, fault='kill-write@last.pt#3'))
    assert [n for n in names(work) if n.endswith('.tmp')]  # the partial write, beside an intact last.pt
    state = last_state(work)
    assert state['epoch'] == 1 and state['pending'] is None
    log = resume(root.path, work)
    assert 'unfinished temporary file' in log
    same_run(work, root.reference)


def disk_full(root, tmp):
    """The disk fills while epoch 2's checkpoint is written: one line; epoch 1's files intact."""
    work = tmp / 'w'
    one_error(trainer(root.path, work, fault='disk-full@runs-2'), 'runs-2-6.pt', 'No space left on device')
    assert not [n for n in names(work) if n.endswith('.tmp')] and not list(work.glob('runs-2-*'))
    assert last_state(work)['epoch'] == 1 and (work / 'runs-1-3.pt').is_file()
    torch.load(work / 'runs-1-3.pt', weights_only=True)


def disk_full_in_run_state(root, tmp):
    """The disk fills while last.pt is written after epoch 2's training: the old last.pt stays."""
    work = tmp / 'w'
    one_error(trainer(root.path, work, fault='disk-full@last.pt#3'), 'last.pt', 'No space left on device')
    assert last_state(work)['epoch'] == 1 and not [n for n in names(work) if n.endswith('.tmp')]


def read_only_work_dir(root, tmp):
    """A work dir nothing can be written in: one line before any work, nothing created."""
    work = tmp / 'locked' / 'w'
    undo = make_unwritable(tmp / 'locked')
    if undo is None:
        pytest.skip('no way to make a read-only folder here')
    try:
        one_error(trainer(root.path, work), 'cannot write in', str(tmp / 'locked'))
        assert names(tmp / 'locked') == []
    finally:
        undo()


def read_only_checkpoint_folder(root, tmp):
    """--phase test of a checkpoint in a read-only folder: every output goes into --work-dir."""
    folder = tmp / 'published'
    folder.mkdir()
    shutil.copy(root.reference / 'runs-3-9.pt', folder)
    undo = make_unwritable(folder)
    try:
        out = trainer(root.path, tmp / 'test', '--phase', 'test', '--weights', folder / 'runs-3-9.pt')
        assert out.returncode == 0, out.stderr[-2000:]
    finally:
        if undo:
            undo()
    assert names(folder) == ['runs-3-9.pt']
    assert {'runs-3-9_wrong.txt', 'runs-3-9_right.txt', 'epoch1_test_each_class_acc.csv'} <= set(names(tmp / 'test'))


def changed_resume_settings(root, tmp):
    """--resume with other settings is refused, naming each with both values; config.yaml is
    untouched. Extending --num-epoch is allowed and ends where a run of that length does."""
    work = tmp / 'w'
    out = trainer(root.path, work, '--num-epoch', '2')
    assert out.returncode == 0, out.stderr[-2000:]
    config = (work / 'config.yaml').read_bytes()
    one_error(trainer(root.path, work, '--resume', '--batch-size', '8', '--base-lr', '0.5'),
              'batch_size: run 4, now 8', 'base_lr: run 0.1, now 0.5')
    assert (work / 'config.yaml').read_bytes() == config
    resume(root.path, work, '--num-epoch', '3')
    same_run(work, root.reference)


def bad_numbers(root, tmp):
    """Numeric flags no run can use: one line naming the flag, before anything is built."""
    for flag, value in (('--batch-size', '0'), ('--num-epoch', '-1'), ('--test-batch-size', '-5')):
        one_error(trainer(root.path, tmp / 'w', flag, value), flag, value)
    assert not (tmp / 'w').exists()


def torchrun_evaluation(root, tmp):
    """Under torchrun (2 ranks, BatchNorm) each epoch's logged loss and accuracy are a 1-process
    test of the checkpoint that epoch saved."""
    from test_distributed import check_torchrun_epoch_figures
    check_torchrun_epoch_figures(tmp)


CASES = {f.__name__: f for f in (input_nan, loss_nan, lr_1e30, kill_in_step, kill_in_first_evaluation,
                                 kill_in_checkpoint_write, disk_full, disk_full_in_run_state, read_only_work_dir,
                                 read_only_checkpoint_folder, changed_resume_settings, bad_numbers,
                                 torchrun_evaluation)}


@pytest.mark.parametrize('fault', list(CASES))
def test_fault(fault, root, tmp_path):
    CASES[fault](root, tmp_path)
