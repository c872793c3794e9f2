"""Checks that need a CUDA device (marker `cuda`: `pytest -m cuda`, run by .ci/gpu_check); each
skips without one. No text-encoder package is needed: the text table is a random one written in
text/export_embeddings.py's file format (what --text-embeddings reads).

- the GAP model's forward/backward under fp16 and bf16 autocast, through the trainer's step
- the graph conv's refined topology (with the adjacency A) stays in the activations' dtype under
  autocast (also checked on the CPU with bf16, so this one runs everywhere)
- a last.pt written by a GPU run resumes on the CPU
- evaluation under autocast and inference_mode matches fp32
- --phase predict gives the CPU's classes
"""
import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from model.ctrgcn import Model_lst_4part
from text.criterion import GAPCriterion
from text.embedding_file import save_embedding_file
from text.supervision import TextSupervision, prompt_bank
from torchlight.benchmark import train_step
from torchlight.cli import parse_args
from torchlight.device import autocast
from torchlight.logging import Logger

CUDA = torch.cuda.is_available()
needs_cuda = [pytest.mark.cuda, pytest.mark.skipif(not CUDA, reason='needs a CUDA device')]
CLASSES, ENCODER, WIDTH = 3, 'ViT-B/32', 512
DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}


def cuda_param(*values):
    return pytest.param(*values, marks=needs_cuda, id='-'.join(map(str, values)))


def model(device):
    torch.manual_seed(0)
    return Model_lst_4part(num_class=CLASSES, head=[ENCODER]).to(device).train()


def criterion(device, seed=0):
    bank = prompt_bank('ntu', CLASSES)
    table = torch.randn(len(bank.all_texts()), WIDTH, generator=torch.Generator().manual_seed(seed))
    supervision = TextSupervision(bank, device, table=table.to(device), seed=seed, encoder_description='random table')
    return GAPCriterion(supervision, ENCODER, 0.8)


def batch(device, n=4, frames=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 3, frames, 25, 2, generator=g).to(device),
            torch.randint(0, CLASSES, (n,), generator=g).to(device))


# ------------------------------------------------------------------------- autocast training
@pytest.mark.parametrize('precision', [cuda_param('fp16'), cuda_param('bf16')])
def test_gap_forward_backward_under_autocast(precision):
    device, dtype = torch.device('cuda'), DTYPES[precision]
    net, crit = model(device), criterion(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    scaler = torch.amp.GradScaler('cuda', enabled=dtype == torch.float16)
    x, y = batch(device)
    with autocast(device, dtype):
        logits, feats, _, parts = net(x)
    assert logits.dtype == feats[ENCODER].dtype == parts[0].dtype == dtype
    before = {k: v.detach().clone() for k, v in net.state_dict().items()}
    for _ in range(6):  # fp16: the first steps may overflow at GradScaler's initial scale and be skipped
        losses = train_step(net, crit, opt, scaler, device, dtype, x, y)
        assert all(torch.isfinite(v).item() for v in losses.values()), losses
    assert losses['loss'].dtype == torch.float32  # gap_loss is computed in fp32
    for name, p in net.named_parameters():
        assert p.dtype == torch.float32 and p.grad is not None and p.grad.dtype == torch.float32, name
        assert torch.isfinite(p).all(), name
        if not scaler.is_enabled():  # with loss scaling a skipped step leaves inf gradients by design
            assert torch.isfinite(p.grad).all(), name
    changed = [k for k, v in net.state_dict().items() if v.dtype.is_floating_point and not torch.equal(v, before[k])]
    assert 'fc.weight' in changed and 'l1.gcn1.PA' in changed and 'linear_head.ViT-B/32.weight' in changed
    if scaler.is_enabled():
        assert 0 < scaler.get_scale() <= 2.0 ** 16


# ------------------------------------------------------------------------- activation dtype
class TopologyDtypes(TorchDispatchMode):
    """Records the dtype of every refined topology the graph conv makes: the baddbmm that starts
    from conv4's bias plus the adjacency A, shaped (n, C, V * V)."""

    def __init__(self, joints):
        super().__init__()
        self.joints, self.dtypes = joints, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is torch.ops.aten.baddbmm.default and out.shape[-1] == self.joints ** 2:
            self.dtypes.append(out.dtype)
        return out


@pytest.mark.parametrize('device,precision', [('cpu', 'bf16'), cuda_param('cuda', 'fp16'), cuda_param('cuda', 'bf16')])
def test_refined_topology_stays_in_activation_dtype(device, precision):
    device, dtype = torch.device(device), DTYPES[precision]
    net = model(device)
    x, _ = batch(device, n=2, frames=8)
    record = TopologyDtypes(joints=25)
    with autocast(device, dtype), record:
        net(x)
    assert len(record.dtypes) == 10 * 3  # three subsets in each of the ten CTR-GCN units
    assert set(record.dtypes) == {dtype}, record.dtypes


# ------------------------------------------------------------------------- GPU -> CPU resume
def write_npz(path, n_train=6, n_test=3, frames=12, seed=0):
    rng = np.random.default_rng(seed)

    def split(n):
        x = rng.normal(0, 0.3, (n, frames, 150)).astype(np.float32)
        x[:, :, 75:] = 0  # one actor
        return x, np.eye(60, dtype=np.float32)[np.arange(n) % CLASSES]
    (x_train, y_train), (x_test, y_test) = split(n_train), split(n_test)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def write_table(path):
    texts = prompt_bank('ntu', CLASSES).all_texts()
    table = torch.randn(len(texts), WIDTH, generator=torch.Generator().manual_seed(0))
    return save_embedding_file(path, table, texts, ENCODER, 'random:seed=0', 'ntu', CLASSES)


def trainer(tmp_path, work, *extra):
    from torchlight.processor import Processor
    data, table = write_npz(tmp_path / 'tiny.npz'), write_table(tmp_path / 'table.pt')
    argv = ['--work-dir', str(work), '--feeder', 'feeders.feeder_ntu.Feeder', '--model', 'model.ctrgcn.Model_lst_4part',
            '--train-feeder-args', f"data_path='{data}',split='train',window_size=8,p_interval=[0.5,1]",
            '--test-feeder-args', f"data_path='{data}',split='test',window_size=8,p_interval=[0.95]",
            '--model-args', f"num_class={CLASSES},num_point=25,num_person=2,graph='graph.ntu_rgb_d.Graph',"
                            f"head=['{ENCODER}'],k=8",
            '--text-dir', 'ntu', '--loss-alpha', '0.8', '--text-embeddings', str(table),
            '--batch-size', '3', '--test-batch-size', '3', '--num-worker', '0',
            '--base-lr', '0.05', '--save-epoch', '0', '--eval-interval', '1', '--log-interval', '0', *extra]
    p = Processor(parse_args(argv), log=Logger())
    p.run()
    return p


@pytest.mark.parametrize('precision', [cuda_param('fp16'), cuda_param('bf16')])
def test_last_pt_written_on_gpu_resumes_on_cpu(tmp_path, precision):
    pytest.importorskip('tensorboardX')  # the train phase's event files (.ci/gpu_check shims it)
    work = tmp_path / 'run'
    gpu = trainer(tmp_path, work, '--device', '0', '--precision', precision, '--num-epoch', '1')
    assert gpu.device.type == 'cuda' and (work / 'last.pt').is_file()
    state = torch.load(work / 'last.pt', map_location='cpu', weights_only=False)
    assert state['epoch'] == 1
    cpu = trainer(tmp_path, work, '--device', 'cpu', '--precision', 'fp32', '--num-epoch', '2', '--resume')
    assert cpu.device.type == 'cpu' and cpu.global_step == 2 * gpu.global_step
    resumed = torch.load(work / 'last.pt', map_location='cpu', weights_only=False)
    assert resumed['epoch'] == 2 and resumed['global_step'] == cpu.global_step
    assert all(torch.isfinite(v).all() for v in resumed['model'].values() if v.dtype.is_floating_point)


# ------------------------------------------------------------------------- evaluation
@pytest.mark.parametrize('precision', [cuda_param('fp16'), cuda_param('bf16')])
def test_evaluation_under_autocast_and_inference_mode(tmp_path, precision):
    from torch.utils.data import DataLoader

    from feeders.feeder_ntu import Feeder
    from torchlight.evaluation import evaluate
    device, dtype = torch.device('cuda'), DTYPES[precision]
    data = write_npz(tmp_path / 'tiny.npz', n_test=9)
    loader = DataLoader(Feeder(str(data), split='test', window_size=16, p_interval=[0.95]), batch_size=4)
    net, crit = model(device), criterion(device)
    with torch.no_grad():  # a few BN statistics so eval mode is not the identity init
        net.train()
        for x, _, _ in loader:
            net(x.float().to(device))
    reference = evaluate(net, loader, crit, device, autocast(device, None))
    mixed = evaluate(net, loader, crit, device, autocast(device, dtype))
    assert mixed.scores.dtype == np.float32 and mixed.scores.shape == (9, CLASSES)
    assert np.isfinite(mixed.scores).all() and np.isfinite(mixed.extra['text']).all()
    tolerance = 0.05 if dtype == torch.float16 else 0.2
    scale = np.abs(reference.scores).max() + 1e-6
    assert np.abs(mixed.scores - reference.scores).max() <= tolerance * scale
    assert np.array_equal(mixed.labels, reference.labels) and np.array_equal(mixed.indices, reference.indices)
    assert not net.training and all(p.grad is None for p in net.parameters())  # inference only

    # under inference_mode: no autograd graph, outputs are inference tensors
    with torch.inference_mode(), autocast(device, dtype):
        out = net(next(iter(loader))[0].float().to(device))
    assert out[0].is_inference() and not out[0].requires_grad and out[0].dtype == dtype


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason='needs a CUDA device')
@pytest.mark.parametrize('precision', ['fp32', None])
def test_predict_on_cuda_gives_the_cpus_classes(tmp_path, precision):
    """--phase predict with the shipped NW-UCLA model: the same top-1 on the GPU as on the CPU
    (fp32, and the test phase's default fp16 autocast), probabilities close."""
    import json
    from pathlib import Path

    from torchlight import predict
    repo = Path(__file__).resolve().parents[1]
    rng = np.random.default_rng(0)
    clips = []
    for i in range(6):  # smooth random motion of 20 joints about 2 m in front of the sensor
        seq = np.cumsum(rng.normal(0, 0.01, (1, 40, 20, 3)), axis=1) + rng.normal(0, 0.3, (1, 1, 20, 3))
        seq[..., 2] += 2.0
        np.save(tmp_path / f'c{i}.npy', seq)
        clips.append(str(tmp_path / f'c{i}.npy'))
    results = {}
    for device in ('cpu', '0'):
        out = tmp_path / f'{device}.jsonl'
        args = ['--phase', 'predict', '--weights', str(repo / 'checkpoints/nw-ucla/lst_joint.pt'),
                '--input', *clips, '--device', device, '--output', str(out)]
        if precision and device == '0':
            args += ['--precision', precision]
        predict.main(args, feeder='feeders.feeder_ucla.Feeder', out=open('/dev/null', 'w'))
        results[device] = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r['top1'] for r in results['cpu']] == [r['top1'] for r in results['0']]
    tol = 1e-4 if precision == 'fp32' else 2e-2
    for a, b in zip(results['cpu'], results['0']):
        assert abs(a['classes'][0][2] - b['classes'][0][2]) < tol
