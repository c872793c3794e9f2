"""DistributedDataParallel under torchrun: the process group and the few collectives the trainer uses.

torchrun starts one process per device and tells each its place in the environment (RANK,
WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE; TORCHELASTIC_RESTART_COUNT after a restart). Without
them (a plain `python main_multipart_ntu.py`) every helper here is the identity of a 1-process run:
rank 0 of 1, is_main(), barrier() does nothing, gather(x) is x, all_gather_object(x) is [x].

The group is made before the arguments are read (session()), so that even a bad config ends
every rank: 'cpu:gloo,cuda:nccl' where CUDA exists (CUDA tensors, the training collectives, go
over NCCL; CPU tensors and pickled objects over gloo), plain gloo elsewhere (`--device cpu`).
A collective waits at most GAP_DIST_TIMEOUT seconds (default 1800) for the other ranks.
"""
import datetime
import os
from contextlib import contextmanager

import torch
import torch.distributed as dist

from torchlight.errors import UserError

TIMEOUT_ENV = 'GAP_DIST_TIMEOUT'


class SharedError(UserError):
    """One rank's error, raised on every rank together; the CLI prints it once, on rank 0."""


# ------------------------------------------------------------------ where this process stands
def launched():
    """True in a process started by torchrun (RANK and WORLD_SIZE set)."""
    return 'RANK' in os.environ and 'WORLD_SIZE' in os.environ


def active():
    return dist.is_available() and dist.is_initialized()


def rank():
    return int(os.environ['RANK']) if launched() else 0


def world_size():
    return int(os.environ['WORLD_SIZE']) if launched() else 1


def local_rank():
    return int(os.environ.get('LOCAL_RANK', 0)) if launched() else 0


def local_world_size():
    return int(os.environ.get('LOCAL_WORLD_SIZE', world_size())) if launched() else 1


def is_main():
    """Rank 0: the one process that logs and writes files."""
    return rank() == 0


def restarted():
    """True in workers torchrun restarted (--max-restarts) after a failure."""
    return launched() and int(os.environ.get('TORCHELASTIC_RESTART_COUNT', 0)) > 0


def run_id():
    """torchrun's id of this job (--rdzv-id; a fresh one per --standalone launch), kept over restarts."""
    return os.environ.get('TORCHELASTIC_RUN_ID') if launched() else None


def backend():
    return 'cpu:gloo,cuda:nccl' if torch.cuda.is_available() else 'gloo'


def local_device(device):
    """This rank's device: cuda:LOCAL_RANK for a CUDA run (one GPU per process), else `device`."""
    if device.type != 'cuda' or not launched():
        return device
    count = torch.cuda.device_count()
    if local_rank() >= count:
        raise UserError(f'torchrun started {local_world_size()} processes on this node, which has '
                        f'{count} GPU(s): use --nproc_per_node={count} or fewer')
    return torch.device('cuda', local_rank())


# ------------------------------------------------------------------ the group's life
def init():
    """Join torchrun's process group (no-op without torchrun, or when already joined)."""
    if not launched() or active():
        return False
    timeout = datetime.timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, 1800)))
    attempt = os.environ.get('TORCHELASTIC_RESTART_COUNT')
    if attempt is None:  # started by hand with RANK/WORLD_SIZE/MASTER_*: one attempt only
        dist.init_process_group(backend(), timeout=timeout)
    else:
        dist.init_process_group(backend(), timeout=timeout, store=_attempt_store(attempt, timeout),
                                rank=rank(), world_size=world_size())
    return True


def _attempt_store(attempt, timeout):
    """torchrun's store, with keys of this attempt's own.

    torchrun keeps one rendezvous store for all restarts of a job (TCP store sharing) while the
    process group's keys carry no attempt number: restarted workers could read the previous
    attempt's gloo addresses, and then fail to connect or hang. A prefix per attempt keeps them apart.
    """
    agent_hosts = os.environ.get('TORCHELASTIC_USE_AGENT_STORE') == str(True)
    store = dist.TCPStore(os.environ['MASTER_ADDR'], int(os.environ['MASTER_PORT']), world_size(),
                          is_master=not agent_hosts and rank() == 0, timeout=timeout)
    return dist.PrefixStore(f'gap_attempt_{attempt}', store)


def teardown():
    if active():
        dist.destroy_process_group()


@contextmanager
def session():
    """The process group for the body of a run, destroyed at its end, also on an error."""
    init()
    try:
        yield
        # leave together: a rank destroying its group while a peer still uses it aborts the peer (gloo)
        barrier(timeout=120, quiet=True)
    finally:
        teardown()


# ------------------------------------------------------------------ collectives
def barrier(timeout=None, quiet=False):
    """Wait for every rank (at most `timeout` seconds when given; quiet: a failure is no error)."""
    if not active():
        return
    try:
        dist.barrier(timeout=None if timeout is None else datetime.timedelta(seconds=timeout))
    except Exception:  # noqa: BLE001  (a rank already gone: nothing left to wait for)
        if not quiet:
            raise


def broadcast_object(obj, src=0):
    """Rank `src`'s `obj` on every rank (pickled)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj):
    """[rank 0's obj, rank 1's, ...] on every rank (pickled)."""
    if not active():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def mean(tensor):
    """The mean of `tensor` over the ranks (a new tensor)."""
    if not active():
        return tensor
    total = tensor.detach().clone()
    dist.all_reduce(total)
    return total / dist.get_world_size()


class _GatherWithGrad(torch.autograd.Function):
    """Rows of every rank, concatenated in rank order, with gradients flowing back to each rank's rows.

    Every rank computes its loss from all rows, so the gradient of this rank's rows is the sum of
    what each rank's loss gives them: backward all-reduces (sums) the gradient and keeps the local
    slice (what torch.distributed.nn.functional.all_gather does; written with all_reduce, which
    gloo and NCCL both have, instead of its deprecated alltoall path).
    """

    @staticmethod
    def forward(ctx, tensor):
        ctx.rows = tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start = dist.get_rank() * ctx.rows
        return grad[start:start + ctx.rows]


def gather(tensor):
    """Concatenate `tensor` (same shape on every rank) over the ranks along dim 0, differentiably."""
    if not active():
        return tensor
    if tensor.requires_grad:
        return _GatherWithGrad.apply(tensor)
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def _coalesced(tensors, op):
    """Apply the collective `op` to `tensors` in one flat buffer per dtype and device."""
    groups = {}
    for t in tensors:
        groups.setdefault((t.dtype, t.device), []).append(t)
    for group in groups.values():
        flat = torch._utils._flatten_dense_tensors(group)
        op(flat)
        for t, synced in zip(group, torch._utils._unflatten_dense_tensors(flat, group)):
            t.copy_(synced)


def average_gradients(params):
    """Average the gradients of `params` (not wrapped by DDP, e.g. a fine-tuned text encoder)."""
    if not active():
        return
    grads = [p.grad for p in params if p.grad is not None]
    if grads:
        world = dist.get_world_size()
        _coalesced(grads, lambda flat: (dist.all_reduce(flat), flat.div_(world)))


@torch.no_grad()
def broadcast_tensors(tensors, src=0):
    """Give every rank rank `src`'s values of `tensors` (in place)."""
    if active() and tensors:
        _coalesced([t.data for t in tensors], lambda flat: dist.broadcast(flat, src))


# ------------------------------------------------------------------ errors on some ranks
def one_line(error):
    text = str(error).strip().splitlines()
    first = text[0] if text else ''
    if isinstance(error, UserError):
        return first
    return f'{type(error).__name__}: {first}' if first else type(error).__name__


def check_all(fn, *args, **kwargs):
    """fn's result; when it fails on any rank, every rank raises, none is left waiting.

    The ranks compare outcomes: the first failing rank's error becomes a SharedError on each rank
    (a failing rank's own error other than a UserError, a bug, is re-raised with its traceback).
    Every collective inside fn must be reached by all ranks or by none.
    """
    error = result = None
    try:
        result = fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001  (told to the others, then raised again)
        error = e
    if not active():
        if error is not None:
            raise error
        return result
    outcomes = all_gather_object(None if error is None else one_line(error))
    failed = [(r, line) for r, line in enumerate(outcomes) if line is not None]
    if not failed:
        return result
    if error is not None and not isinstance(error, UserError):
        raise error
    first, line = failed[0]
    raise SharedError(line if first == 0 else f'{line} (rank {first})') from None


def main_first(fn):
    """fn() on rank 0, then, once it succeeded there, on the others (rank 0 fills a cache the
    others then read); errors as check_all. Returns this rank's result."""
    first = check_all(lambda: fn() if is_main() else None)
    rest = check_all(lambda: None if is_main() else fn())
    return first if is_main() else rest
