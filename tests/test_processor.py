"""The trainer's rules with tiny stand-in model/feeder/text pieces (fast, in-process).

The real pieces go through the entry scripts in test_cli.py; here the class paths point at this
module (`test_processor.TinyModel`), as a config would point at model.ctrgcn.
"""
import glob
import json
import os
import pickle
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from torchlight.cli import parse_args
from torchlight.errors import UserError
from torchlight.logging import Logger
from text.criterion import GAPCriterion
from torchlight.criterion import CrossEntropy
from torchlight.metrics import confusion_matrix
from torchlight.processor import Processor

NUM_CLASS, WIDTH = 3, 8


class TinyFeeder(Dataset):
    """Three separable classes; the train split adds np.random noise (so resume must restore numpy's RNG)."""

    def __init__(self, split='train', n=12):
        rng = np.random.default_rng(0 if split == 'train' else 1)
        self.label = [i % NUM_CLASS for i in range(n)]
        centres = np.eye(NUM_CLASS, 6, dtype=np.float32) * 3
        self.data = centres[self.label] + rng.normal(0, 0.3, (n, 6)).astype(np.float32)
        self.sample_name = [f'{split}_{i}' for i in range(n)]
        self.train = split == 'train'

    def __len__(self):
        return len(self.label)

    def __getitem__(self, i):
        x = self.data[i] + (np.random.normal(0, 0.1, 6).astype(np.float32) if self.train else 0)
        return x, self.label[i], i

    def score_keys(self):
        return self.sample_name

    def top_k(self, score, k):
        return float((np.argsort(score)[:, -k:] == np.array(self.label)[:, None]).any(1).mean())


class TinyModel(nn.Module):
    """Plain classifier: logits only (like model.ctrgcn.Model)."""

    def __init__(self, num_class=NUM_CLASS, wrong=False):
        super().__init__()
        self.fc = nn.Linear(6, num_class + 2 if wrong else num_class)
        self.drop = nn.Dropout(0.2)
        if wrong:  # always predicts a class no sample has: every epoch scores 0%
            with torch.no_grad():
                self.fc.weight.zero_()
                self.fc.bias.copy_(torch.tensor([0.0] * num_class + [100.0, 0.0]))

    def forward(self, x):
        return self.fc(self.drop(x))


class TinyGAP(nn.Module):
    """GAP-shaped output: (logits, {encoder: global}, logit_scale (1,5), four part features)."""

    text_width = WIDTH

    def __init__(self, num_class=NUM_CLASS, head=('tiny-encoder',)):
        super().__init__()
        self.head = list(head)
        self.body = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2))
        self.fc = nn.Linear(16, num_class)
        self.linear_head = nn.Linear(16, WIDTH)
        self.parts = nn.ModuleList(nn.Linear(16, WIDTH) for _ in range(4))
        self.logit_scale = nn.Parameter(torch.ones(1, 5))

    def forward(self, x):
        h = self.body(x)
        return self.fc(h), {self.head[0]: self.linear_head(h)}, self.logit_scale, [p(h) for p in self.parts]


class TinySupervision:
    """Random class embeddings; a global set drawn with its own generator, like text.supervision."""

    def __init__(self, num_class, te_lr_ratio, seed):
        self.table = nn.Parameter(torch.randn(5, num_class, WIDTH), requires_grad=te_lr_ratio > 0)
        self.generator = torch.Generator().manual_seed(seed)
        self.te_lr_ratio = te_lr_ratio
        self.device = torch.device('cpu')
        self.bank = SimpleNamespace(num_class=num_class)
        self.random_weights = False
        self.training = True
        self.texts = [f'class {c} set {s}' for s in range(5) for c in range(num_class)]
        self.frozen = te_lr_ratio == 0
        self.encoder_description = 'tiny table'

    def parameters(self):
        return [self.table] if self.table.requires_grad else []

    def train(self, mode=True):
        self.training = mode
        return self

    def targets(self, labels):
        jitter = torch.rand(labels.shape[0], 1, generator=self.generator) if self.training else 0
        return [self.table[s, labels] + jitter for s in range(5)]


def tiny_criterion(model, args, seed, device, log, training):
    """--criterion for the tiny models: cross-entropy, or GAP's criterion over TinySupervision
    (criterion_args: te_lr_ratio, loss_alpha)."""
    if not isinstance(model, TinyGAP):
        return CrossEntropy()
    supervision = TinySupervision(NUM_CLASS, args.get('te_lr_ratio', 0.0), seed) if training else None
    return GAPCriterion(supervision, model.head[0], args.get('loss_alpha', 0.8))


def run(work_dir, *extra, model='test_processor.TinyModel', phase='train'):
    argv = ['--work-dir', str(work_dir), '--phase', phase, '--feeder', 'test_processor.TinyFeeder',
            '--model', model, '--train-feeder-args', "split='train'", '--test-feeder-args', "split='test'",
            '--num-worker', '0', '--batch-size', '4', '--test-batch-size', '5', '--base-lr', '0.1',
            '--num-epoch', '3', '--save-epoch', '0', '--device', 'cpu', '--show-topk', '1', '2',
            '--criterion', 'test_processor.tiny_criterion', *extra]
    p = Processor(parse_args(argv), log=Logger())
    p.run()
    return p


def test_outputs_and_save_eval_rules(tmp_path):
    w = tmp_path / 'w'
    p = run(w, '--save-interval', '2', '--eval-interval', '2', '--save-score', 'True')
    names = sorted(os.path.basename(f) for f in glob.glob(str(w / 'runs-*.pt')))
    assert names == ['runs-2-6.pt', 'runs-3-9.pt']  # every 2nd epoch, and always the last
    metrics = [json.loads(line) for line in (w / 'metrics.jsonl').read_text().splitlines()]
    assert [m['epoch'] for m in metrics] == [1, 2, 3]
    assert ['test_top1' in m for m in metrics] == [False, True, True]  # eval every 2nd and the last
    assert 'samples_per_s' in json.dumps(metrics[0])
    assert sorted(os.path.basename(f) for f in glob.glob(str(w / 'epoch*'))) == [
        'epoch1_confusion.png', 'epoch1_test_each_class_acc.csv', 'epoch1_test_score.json', 'epoch1_test_score.pkl',
        'epoch2_test_each_class_acc.csv', 'epoch2_test_score.json', 'epoch2_test_score.pkl',
        'epoch3_test_each_class_acc.csv', 'epoch3_test_score.json', 'epoch3_test_score.pkl']
    # each pickle says what produced it: the re-tested best checkpoint, or the epoch's own weights
    record = json.loads((w / 'epoch1_test_score.json').read_text())
    assert record['checkpoint'] == str(w / f'runs-{p.best_epoch}-{3 * p.best_epoch}.pt')
    assert record['accuracy'] == p.best_acc and record['samples'] == 12
    assert json.loads((w / 'epoch3_test_score.json').read_text())['epoch'] == 3
    scores = pickle.loads((w / 'epoch1_test_score.pkl').read_bytes())
    assert list(scores) == [f'test_{i}' for i in range(12)] and scores['test_0'].shape == (NUM_CLASS,)
    state = torch.load(w / 'runs-3-9.pt', weights_only=True)
    assert set(state) == {'fc.weight', 'fc.bias'} and all(v.device.type == 'cpu' for v in state.values())
    best = f'runs-{p.best_epoch}-{3 * p.best_epoch}'
    right = (w / f'{best}_right.txt').read_text().splitlines()
    assert len(right) == 12 and all(len(line.split(',')) == 2 for line in right)
    wrong = (w / f'{best}_wrong.txt').read_text().splitlines()
    assert all(len(line.split(',')) == 3 for line in wrong)
    assert (w / 'config.yaml').read_text().startswith('# command line: ')
    assert (w / 'runs' / 'train').is_dir() and (w / 'runs' / 'val').is_dir()
    log = (w / 'log.txt').read_text()
    for line in ['Top1: ', 'Top2: ', 'samples/s', 'Best accuracy:', 'Epoch number:', 'Model total number of params:',
                 'Weight decay:', 'Base LR:', 'Batch Size:', 'Test Batch Size:', 'seed: 1', 'Last evaluated epoch: 3']:
        assert line in log, line
    assert not glob.glob(str(w / '.*tmp'))  # atomic writes left no temporaries


def test_best_checkpoint_is_written_when_the_save_rules_skipped_it(tmp_path):
    w = tmp_path / 'w'
    p = run(w, '--save-epoch', '30', '--eval-interval', '1', '--num-epoch', '2')
    saved = glob.glob(str(w / 'runs-*.pt'))
    assert [os.path.basename(f) for f in saved] == [f'runs-{p.best_epoch}-{3 * p.best_epoch}.pt']
    assert (w / 'epoch1_test_score.pkl').is_file()


def test_no_epoch_above_zero_still_retests_the_last(tmp_path):
    w = tmp_path / 'w'
    p = run(w, '--model-args', 'wrong=True', '--base-lr', '0', '--eval-interval', '1', '--save-epoch', '30')
    assert p.best_epoch is None and p.last_acc == 0.0
    assert os.path.basename(glob.glob(str(w / 'runs-*.pt'))[0]) == 'runs-3-9.pt'
    assert len((w / 'runs-3-9_wrong.txt').read_text().splitlines()) == 12
    assert (w / 'epoch1_test_score.pkl').is_file()


def test_existing_checkpoints_refused_unless_resume_or_overwrite(tmp_path):
    w = tmp_path / 'w'
    run(w, '--num-epoch', '1')
    (w / 'notes.txt').write_text('mine')
    with pytest.raises(UserError, match='--resume .* --overwrite'):
        run(w, '--num-epoch', '1')
    with pytest.raises(UserError, match='exclude'):
        run(w, '--resume', '--overwrite')
    run(w, '--num-epoch', '1', '--overwrite')
    assert (w / 'notes.txt').read_text() == 'mine'  # only the trainer's own files go
    assert len((w / 'metrics.jsonl').read_text().splitlines()) == 1
    with pytest.raises(UserError, match='no last.pt'):
        run(tmp_path / 'empty', '--resume')


def test_resume_equals_uninterrupted(tmp_path):
    common = ('--model', 'test_processor.TinyGAP', '--eval-interval', '1', '--te-lr-ratio', '0.5')
    full = run(tmp_path / 'full', *common[2:], model=common[1])
    run(tmp_path / 'part', *common[2:], '--num-epoch', '1', model=common[1])
    resumed = run(tmp_path / 'part', *common[2:], '--resume', model=common[1])
    a = torch.load(tmp_path / 'full' / 'last.pt', weights_only=True)
    b = torch.load(tmp_path / 'part' / 'last.pt', weights_only=True)
    for key in a['model']:
        assert torch.equal(a['model'][key], b['model'][key]), key
    assert torch.equal(a['criterion']['encoder'][0], b['criterion']['encoder'][0])
    assert torch.equal(a['criterion']['generator'], b['criterion']['generator'])
    strip = lambda path: [{k: v for k, v in json.loads(line).items() if 'per_s' not in k}
                          for line in path.read_text().splitlines()]
    assert strip(tmp_path / 'full' / 'metrics.jsonl') == strip(tmp_path / 'part' / 'metrics.jsonl')
    assert (full.best_acc, full.best_epoch) == (resumed.best_acc, resumed.best_epoch)


def test_text_encoder_group_lr_follows_its_ratio(tmp_path):
    p = run(tmp_path / 'w', '--model', 'test_processor.TinyGAP', '--te-lr-ratio', '0.25', '--warm_up_epoch', '2',
            '--num-epoch', '3', model='test_processor.TinyGAP')
    skeleton, text = p.optimizer.param_groups
    assert skeleton['lr'] == pytest.approx(0.1) and text['lr'] == pytest.approx(0.025)
    frozen = run(tmp_path / 'f', '--num-epoch', '1', model='test_processor.TinyGAP')
    assert len(frozen.optimizer.param_groups) == 1  # frozen encoder: nothing of it in the optimizer


def test_test_phase_and_weights_errors(tmp_path):
    w = tmp_path / 'w'
    run(w, '--num-epoch', '1', '--save-epoch', '0')
    weights = w / 'runs-1-3.pt'
    out = tmp_path / 'test'
    run(out, '--weights', str(weights), '--save-score', 'True', phase='test')
    assert (w / 'runs-1-3_wrong.txt').is_file() and (out / 'epoch1_test_score.pkl').is_file()
    with pytest.raises(UserError, match='needs --weights'):
        run(tmp_path / 'x', phase='test')
    with pytest.raises(UserError, match='not found'):
        run(tmp_path / 'x', '--weights', str(tmp_path / 'nope.pt'), phase='test')
    assert not (tmp_path / 'x').exists()  # nothing half-written


def test_confusion_matrix_matches_hand_count():
    m = confusion_matrix(np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 2, 0]))
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    # labels that occur only as predictions get a row too (as sklearn's)
    assert confusion_matrix(np.array([0, 0]), np.array([0, 4])).tolist() == [[1, 1], [0, 0]]


def test_device_resolution(monkeypatch):
    from torchlight.device import resolve_device
    warnings = []
    assert resolve_device(['cpu'], warnings.append) == (torch.device('cpu'), [])
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert resolve_device([0, 1], warnings.append) == (torch.device('cpu'), [])
    assert len(warnings) == 1 and 'CUDA is not available' in warnings[0]
    with pytest.raises(UserError, match='--device'):
        resolve_device(['gpu0'], warnings.append)


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc mallopt is Linux-only')
def test_cpu_allocator_tuning_applies_on_glibc():
    import platform
    from torchlight.device import keep_cpu_memory_in_heap
    if platform.libc_ver()[0] != 'glibc':
        pytest.skip('not glibc')
    assert keep_cpu_memory_in_heap() is True
    # memory still works as usual afterwards
    assert torch.ones(64, 1024, 1024).sum().item() == 64 * 1024 * 1024


def test_training_learns_well_above_chance(tmp_path):
    # three separable classes, chance 1/3: a few steps must take both heads far above it
    plain = run(tmp_path / 'plain', '--eval-interval', '1', '--num-epoch', '4')
    acc = [json.loads(line)['test_top1'] for line in (tmp_path / 'plain' / 'metrics.jsonl').read_text().splitlines()]
    assert acc[-1] >= 0.9 and plain.best_acc >= 0.9
    gap = run(tmp_path / 'gap', '--eval-interval', '1', '--num-epoch', '4', model='test_processor.TinyGAP')
    last = json.loads((tmp_path / 'gap' / 'metrics.jsonl').read_text().splitlines()[-1])
    assert gap.best_acc >= 0.9 and last['train_loss'] < 0.9 * json.loads(
        (tmp_path / 'gap' / 'metrics.jsonl').read_text().splitlines()[0])['train_loss']
    assert 'test_text_top1' in last and last['test_text_top1'] > 1 / 3


def test_confusion_matrix_over_every_class():
    m = confusion_matrix(np.array([0, 2]), np.array([0, 0]), num_class=4)
    assert m.shape == (4, 4) and m[0, 0] == 1 and m[2, 0] == 1 and m.sum() == 2
