"""DistributedDataParallel under torchrun, gloo on the CPU, with the tiny pieces of test_processor.py.

(a) the first step's loss and gradients of 2 processes equal 1 process on the same global batch;
(b) `torchrun --nproc_per_node=2` through the entry script against a 1-process run (steps, one log,
    score files, metrics) and the gathered test scores against a 1-process test phase;
(c) two torchrun agents (two "nodes") meeting at a c10d rendezvous;
(d) an error on one rank (at preparation, or mid-training) ends every rank, quickly;
(e) workers torchrun restarts (--max-restarts) resume from last.pt by themselves, exactly.
Plus the in-process rules: global batch / world size, the ranks' disjoint shares of the data.
"""
import json
import os
import pickle
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from conftest import REPO
from test_processor import NUM_CLASS, WIDTH, TinyFeeder, TinyGAP
from text.criterion import GAPCriterion
from torchlight.errors import UserError

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason='torch.distributed with gloo is needed')

NTU = str(REPO / 'main_multipart_ntu.py')
CONFIG = """\
feeder: test_processor.TinyFeeder
train_feeder_args: {split: train}
test_feeder_args: {split: test, n: 11}
model: test_processor.TinyGAP
criterion: test_processor.tiny_criterion
batch_size: 4
test_batch_size: 5
num_worker: 0
base_lr: 0.1
num_epoch: 2
save_epoch: 0
eval_interval: 1
device: cpu
show_topk: [1, 2]
save_score: true
"""


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def environment():
    path = os.pathsep.join([str(REPO / 'tests'), str(REPO), os.environ.get('PYTHONPATH', '')])
    env = {k: v for k, v in os.environ.items() if k not in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_PORT')}
    return dict(env, PYTHONPATH=path, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1', GAP_DIST_TIMEOUT='60')


def launch(*args, torchrun=('--standalone', '--nproc_per_node=2'), timeout=120):
    """The entry script under torchrun (torchrun=None: one plain process); (result, seconds)."""
    prefix = [sys.executable, '-m', 'torch.distributed.run', *torchrun] if torchrun else [sys.executable]
    start = time.perf_counter()
    out = subprocess.run([*prefix, NTU, *map(str, args)], cwd=REPO, env=environment(), capture_output=True,
                         text=True, timeout=timeout)
    return out, time.perf_counter() - start


def metrics(work):
    return [json.loads(line) for line in (work / 'metrics.jsonl').read_text().splitlines()]


def scores(path):
    with open(path, 'rb') as f:
        return pickle.load(f)


# ---------------------------------------------------------------- tiny pieces used through class paths
class ExactGAP(nn.Module):
    """GAP-shaped output and deterministic in train mode (no dropout, no BatchNorm), so that one
    and two processes can be compared step for step."""

    text_width = WIDTH

    def __init__(self, num_class=NUM_CLASS, head=('tiny-encoder',)):
        super().__init__()
        self.head = list(head)
        self.body = nn.Sequential(nn.Linear(6, 16), nn.Tanh())
        self.fc = nn.Linear(16, num_class)
        self.linear_head = nn.Linear(16, WIDTH)
        self.parts = nn.ModuleList(nn.Linear(16, WIDTH) for _ in range(4))
        self.logit_scale = nn.Parameter(torch.full((1, 5), 2.0))

    def forward(self, x):
        h = self.body(x)
        return self.fc(h), {self.head[0]: self.linear_head(h)}, self.logit_scale, [p(h) for p in self.parts]


class TableSupervision:
    """A fine-tuned 'text encoder': a trained table of class embeddings (the targets have gradients)."""

    te_lr_ratio = 1.0

    def __init__(self, seed=0):
        self.table = nn.Parameter(torch.randn(5, NUM_CLASS, WIDTH, generator=torch.Generator().manual_seed(seed)))
        self.generator = torch.Generator().manual_seed(seed)

    def parameters(self):
        return [self.table]

    def train(self, mode=True):
        return self

    def targets(self, labels):
        return [self.table[s, labels] for s in range(5)]


class NormGAP(TinyGAP):
    """TinyGAP with BatchNorm: each rank's running statistics see only its own batches."""

    def __init__(self, num_class=NUM_CLASS, head=('tiny-encoder',)):
        super().__init__(num_class, head)
        self.body = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU())


class RankFeeder(TinyFeeder):
    """Its train split is missing on rank 1 only (a node without the data)."""

    def __init__(self, split='train', n=12):
        if split == 'train' and os.environ.get('RANK') == '1':
            raise UserError('train data missing on this node')
        super().__init__(split, n)


class CrashingGAP(TinyGAP):
    """TinyGAP whose `crash_rank` fails at its `crash_step`-th training step, in torchrun's first
    attempt only (TORCHELASTIC_RESTART_COUNT 0)."""

    def __init__(self, num_class=NUM_CLASS, head=('tiny-encoder',), crash_step=0, crash_rank=1):
        super().__init__(num_class, head)
        self.crash_step, self.crash_rank, self.steps = crash_step, crash_rank, 0

    def forward(self, x):
        if self.training:
            self.steps += 1
            if (self.steps == self.crash_step and os.environ.get('RANK') == str(self.crash_rank)
                    and os.environ.get('TORCHELASTIC_RESTART_COUNT', '0') == '0'):
                raise RuntimeError(f'simulated failure at step {self.steps}')
        return super().forward(x)


# ---------------------------------------------------------------- (a) loss and gradients
def global_batch():
    g = torch.Generator().manual_seed(3)
    labels = torch.tensor([0, 1, 0, 2, 1, 1, 0, 2])  # same-label pairs within and across the ranks' shares
    return torch.randn(8, 6, generator=g) + 2 * torch.eye(NUM_CLASS, 6)[labels], labels


def pieces():
    torch.manual_seed(0)
    return ExactGAP(), GAPCriterion(TableSupervision(), 'tiny-encoder', alpha=0.8)


def step_grads(model, criterion):
    named = {name: p.grad.clone() for name, p in model.named_parameters()}
    named['text_table'] = criterion.supervision.table.grad.clone()
    return named


def ddp_step(rank, world, port, out):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from torchlight import assemble, distributed
    with distributed.session():
        model, criterion = pieces()
        ddp, _ = assemble.wrap_model(model, SimpleNamespace(compile=False), torch.device('cpu'), [])
        criterion.distribute(distributed.gather, rank)
        data, labels = global_batch()
        mine = slice(rank, None, world)  # a DistributedSampler's kind of share
        results = {}
        for name, gather in (('global', distributed.gather), ('local', None)):
            criterion.gather = gather  # 'local': each rank's text term sees only its own samples
            losses = criterion(ddp(data[mine]), labels[mine])
            losses['loss'].backward()
            distributed.average_gradients(criterion.supervision.parameters())
            results[name] = {'loss': distributed.mean(losses['loss']), 'text': losses['text'].detach(),
                             'grads': step_grads(model, criterion)}
            model.zero_grad()
            criterion.supervision.table.grad = None
        if rank == 0:
            torch.save(results, out)
        distributed.barrier()  # both leave the group together: a rank tearing down early aborts the other


def test_two_processes_step_like_one_on_the_global_batch(tmp_path):
    model, criterion = pieces()
    data, labels = global_batch()
    losses = criterion(model(data), labels)
    losses['loss'].backward()
    expected = step_grads(model, criterion)

    out = tmp_path / 'rank0.pt'
    mp.spawn(ddp_step, args=(2, free_port(), str(out)), nprocs=2, join=True)
    got = torch.load(out, weights_only=True)
    assert torch.allclose(got['global']['loss'], losses['loss'].detach(), rtol=1e-5, atol=1e-6)
    assert torch.allclose(got['global']['text'], losses['text'].detach(), rtol=1e-5, atol=1e-6)
    for name, grad in expected.items():
        assert torch.allclose(got['global']['grads'][name], grad, rtol=1e-4, atol=1e-6), name
    # without the gather each rank's contrastive term sees half the batch: other gradients
    local = got['local']['grads']
    assert not all(torch.allclose(local[name], grad, rtol=1e-3, atol=1e-5) for name, grad in expected.items())


# ---------------------------------------------------------------- in-process rules (no process group)
def ranks_env(monkeypatch, rank, world=2):
    for key, value in (('RANK', rank), ('WORLD_SIZE', world), ('LOCAL_RANK', rank), ('LOCAL_WORLD_SIZE', world)):
        monkeypatch.setenv(key, str(value))


def loader_args(**over):
    arg = dict(phase='train', batch_size=4, test_batch_size=5, num_worker=4, seed=1, feeder='test_processor.TinyFeeder',
               train_feeder_args={'split': 'train', 'n': 13}, test_feeder_args={'split': 'test', 'n': 11})
    return SimpleNamespace(**{**arg, **over})


def test_ranks_share_the_data_without_overlap(monkeypatch):
    from torchlight.assemble import data_loaders
    shares, parts = [], []
    for rank in (0, 1):
        ranks_env(monkeypatch, rank)
        loaders = data_loaders(loader_args(), torch.device('cpu'), print)
        assert loaders['train'].batch_size == 2 and loaders['train'].num_workers in (1, 2)
        loaders['train'].sampler.set_epoch(0)
        shares.append(list(loaders['train'].sampler))
        parts.append([int(i) for _, _, index in loaders['test'] for i in index])
    # train: 13 samples, global batch 4 -> 3 steps of 2 per rank (as 1 process: 13 // 4), disjoint shares
    assert len(shares[0]) == len(shares[1]) == 6 and not set(shares[0]) & set(shares[1])
    # test: contiguous parts in rank order, each sample once, no padding
    assert parts[0] + parts[1] == list(range(11))
    ranks_env(monkeypatch, 0)
    with pytest.raises(UserError, match='global batch.*multiple of the 2 processes'):
        data_loaders(loader_args(batch_size=5), torch.device('cpu'), print)


def test_evaluation_joins_rank_parts_into_the_one_process_numbers():
    from torchlight.evaluation import evaluate
    model, criterion = pieces()
    feeder = TinyFeeder('test', n=11)
    criterion.supervision = None  # test phase: classifier only
    cpu, ctx = torch.device('cpu'), torch.autocast('cpu', enabled=False)
    whole = evaluate(model, torch.utils.data.DataLoader(feeder, batch_size=5), criterion, cpu, ctx)
    halves = [evaluate(model, torch.utils.data.DataLoader(feeder, batch_size=2, sampler=part), criterion, cpu, ctx)
              for part in (range(0, 5), range(5, 11))]
    joined = evaluate(model, torch.utils.data.DataLoader(feeder, batch_size=2, sampler=range(0, 5)), criterion,
                      cpu, ctx, gather=lambda mine: [mine, {**vars(halves[1]), 'seconds': 0.0}], batch_size=5)
    assert joined.indices.tolist() == list(range(11)) and joined.batches == whole.batches == 3
    assert np.allclose(joined.scores, whole.scores, atol=1e-6) and abs(joined.loss - whole.loss) < 1e-6


# ---------------------------------------------------------------- (b) torchrun against one process
@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp('ddp')
    (root / 'tiny.yaml').write_text(CONFIG)
    one, _ = launch('--config', root / 'tiny.yaml', '--work-dir', root / 'one', torchrun=None)
    assert one.returncode == 0, one.stderr[-3000:]
    two, _ = launch('--config', root / 'tiny.yaml', '--work-dir', root / 'two')
    assert two.returncode == 0, two.stderr[-3000:]
    return SimpleNamespace(root=root, one=root / 'one', two=root / 'two', stdout=two.stdout)


def test_torchrun_two_processes_match_one_process_run(runs):
    one, two = metrics(runs.one), metrics(runs.two)
    assert [m['global_step'] for m in two] == [m['global_step'] for m in one] == [3, 6]  # 12 samples / global 4
    assert [sorted(m) for m in two] == [sorted(m) for m in one]
    # one log, rank 0's: each line once, naming the world size and the per-rank batch
    assert sorted(p.name for p in runs.two.rglob('log.txt')) == ['log.txt']
    log = (runs.two / 'log.txt').read_text()
    assert log.count('Training epoch: 1') == 1 and runs.stdout.count('Training epoch: 1') == 1
    assert 'world size 2 (gloo backend), global batch 4 = 2 per rank' in log
    def names(work):  # the wrong/right files are named after the best epoch, which may differ
        return sorted(p.name for p in work.iterdir() if not p.name.endswith(('_wrong.txt', '_right.txt')))
    assert names(runs.two) == names(runs.one)
    for epoch in (1, 2):  # the same score keys in the same order
        assert list(scores(runs.two / f'epoch{epoch}_test_score.pkl')) == [f'test_{i}' for i in range(11)]
        assert list(scores(runs.one / f'epoch{epoch}_test_score.pkl')) == [f'test_{i}' for i in range(11)]
    assert json.loads((runs.two / 'provenance.json').read_text())['torchrun']['world_size'] == 2


def test_gathered_test_scores_are_a_one_process_test_phase(runs):
    record = json.loads((runs.two / 'epoch1_test_score.json').read_text())  # the re-tested best checkpoint
    out, _ = launch('--config', runs.root / 'tiny.yaml', '--work-dir', runs.root / 'one_test', '--phase', 'test',
                    '--weights', record['checkpoint'], torchrun=None)
    assert out.returncode == 0, out.stderr[-3000:]
    mine, theirs = scores(runs.two / 'epoch1_test_score.pkl'), scores(runs.root / 'one_test' / 'epoch1_test_score.pkl')
    assert list(mine) == list(theirs) and all(np.allclose(mine[k], theirs[k], atol=1e-6) for k in mine)
    def loss_line(text):  # the last 'Mean test loss of 3 batches: x' (the re-test's), without the time
        return [line.split('] ')[-1].split(';')[0] for line in text.splitlines() if 'Mean test loss' in line][-1]
    assert loss_line(runs.stdout) == loss_line(out.stdout)


def check_torchrun_epoch_figures(tmp_path):  # a case of test_faults.py's matrix
    """With BatchNorm, each rank's running statistics drift apart in the last training step; the
    ranks score with rank 0's (the saved model's), so every epoch's logged loss and accuracy are a
    one-process test of that epoch's runs-E-S.pt."""
    (tmp_path / 'tiny.yaml').write_text(CONFIG)
    out, _ = launch('--config', tmp_path / 'tiny.yaml', '--work-dir', tmp_path / 'w', '--model',
                    'test_distributed.NormGAP', '--num-epoch', '3', '--base-lr', '0.3')
    assert out.returncode == 0, out.stderr[-3000:]
    for record in metrics(tmp_path / 'w'):
        epoch = record['epoch']
        (checkpoint,) = (tmp_path / 'w').glob(f'runs-{epoch}-*.pt')
        test, _ = launch('--config', tmp_path / 'tiny.yaml', '--work-dir', tmp_path / f'test{epoch}',
                         '--model', 'test_distributed.NormGAP', '--phase', 'test', '--weights', checkpoint,
                         torchrun=None)
        assert test.returncode == 0, test.stderr[-3000:]
        loss = float(test.stdout.split('Mean test loss of 3 batches: ')[1].split(';')[0])
        top1 = float(test.stdout.split('Top1: ')[1].split('%')[0])
        top2 = float(test.stdout.split('Top2: ')[1].split('%')[0])
        assert abs(record['test_loss'] - loss) < 1e-4, (epoch, record['test_loss'], loss)
        assert f'{100 * record["test_top1"]:.2f}' == f'{top1:.2f}' and f'{100 * record["test_top2"]:.2f}' == f'{top2:.2f}'


# ---------------------------------------------------------------- (c) two nodes on this machine
def test_two_nodes_meet_at_a_c10d_rendezvous(tmp_path):
    (tmp_path / 'tiny.yaml').write_text(CONFIG)
    rdzv = ['--nnodes=2', '--nproc_per_node=1', '--rdzv-backend=c10d', f'--rdzv-endpoint=127.0.0.1:{free_port()}',
            f'--rdzv-id=gap-test-{os.getpid()}']
    args = [NTU, '--config', str(tmp_path / 'tiny.yaml'), '--work-dir', str(tmp_path / 'w'), '--num-epoch', '1']
    agents = [subprocess.Popen([sys.executable, '-m', 'torch.distributed.run', *rdzv, *args], cwd=REPO,
                               env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(2)]
    try:
        outs = [agent.communicate(timeout=120) for agent in agents]
    finally:
        for agent in agents:
            agent.kill()
    assert [agent.returncode for agent in agents] == [0, 0], [err[-2000:] for _, err in outs]
    assert sum('Training epoch: 1' in out for out, _ in outs) == 1  # rank 0's agent prints, the other is silent
    log = (tmp_path / 'w' / 'log.txt').read_text()
    assert 'world size 2' in log and '2 per rank' in log
    assert [m['global_step'] for m in metrics(tmp_path / 'w')] == [3]
    assert list(scores(tmp_path / 'w' / 'epoch1_test_score.pkl')) == [f'test_{i}' for i in range(11)]


# ---------------------------------------------------------------- (d) an error on one rank
def test_an_error_on_one_rank_ends_all(tmp_path):
    (tmp_path / 'tiny.yaml').write_text(CONFIG)
    out, seconds = launch('--config', tmp_path / 'tiny.yaml', '--work-dir', tmp_path / 'a',
                          '--feeder', 'test_distributed.RankFeeder')
    assert out.returncode != 0 and seconds < 60
    errors = [line for line in out.stderr.splitlines() if line.startswith('error: ')]
    assert errors == ['error: train data missing on this node (rank 1)']  # once, from rank 0
    assert not (tmp_path / 'a').exists()
    # a failure mid-training: torchrun ends the other rank, which is waiting in a collective
    out, seconds = launch('--config', tmp_path / 'tiny.yaml', '--work-dir', tmp_path / 'b',
                          '--model', 'test_distributed.CrashingGAP', '--model-args', 'crash_step=2')
    assert out.returncode != 0 and seconds < 60
    assert 'simulated failure at step 2' in out.stderr


# ---------------------------------------------------------------- (e) torchrun restarts resume
def test_restarted_workers_resume_from_last_checkpoint(runs, tmp_path):
    """Rank 1 fails in epoch 2 (its 2nd step: rank 0 has written last.pt); torchrun restarts both
    workers, which resume from last.pt and end exactly where the uninterrupted run did."""
    out, _ = launch('--config', runs.root / 'tiny.yaml', '--work-dir', tmp_path / 'w', '--model',
                    'test_distributed.CrashingGAP', '--model-args', 'crash_step=5',
                    torchrun=('--standalone', '--nproc_per_node=2', '--max-restarts=1'))
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'simulated failure at step 5' in out.stderr
    log = (tmp_path / 'w' / 'log.txt').read_text()
    assert 'torchrun restarted the workers: resuming from' in log and 'Resume from' in log
    a = torch.load(runs.two / 'last.pt', weights_only=True)
    b = torch.load(tmp_path / 'w' / 'last.pt', weights_only=True)
    assert a['global_step'] == b['global_step'] == 6
    for key in a['model']:
        assert torch.equal(a['model'][key], b['model'][key]), key
    strip = lambda rows: [{k: v for k, v in m.items() if 'per_s' not in k} for m in rows]  # noqa: E731
    assert strip(metrics(tmp_path / 'w')) == strip(metrics(runs.two))
