"""Turn upstream's `--device 0 1` into a torch.device (and the GPU ids for DataParallel)."""
import torch

from torchlight import distributed
from torchlight.errors import UserError


def resolve_device(device_arg, warn=print):
    """Return (output device, GPU ids). No CUDA: the CPU, with one warning, so GPU commands still run.

    `--device cpu` asks for the CPU explicitly (no warning). Under torchrun each process has one
    device, no DataParallel: cuda:LOCAL_RANK (the --device indices only say "GPUs"), or the CPU.
    """
    device, ids = _resolve(device_arg, warn)
    if distributed.launched():
        return distributed.local_device(device), []
    return device, ids


def _resolve(device_arg, warn):
    ids = device_arg if isinstance(device_arg, (list, tuple)) else [device_arg]
    ids = [str(i).strip().lower() for i in ids]
    if not ids or 'cpu' in ids:
        return torch.device('cpu'), []
    try:
        ids = [int(i) for i in ids]
    except ValueError:
        raise UserError(f'--device: expected GPU indices (e.g. --device 0 1) or cpu, got {" ".join(ids)}') from None
    if not torch.cuda.is_available():
        warn(f'CUDA is not available: running on the CPU (--device {" ".join(map(str, ids))} ignored)')
        return torch.device('cpu'), []
    count = torch.cuda.device_count()
    bad = [i for i in ids if not 0 <= i < count]
    if bad:
        raise UserError(f'--device: no GPU {bad[0]} (this machine has {count}: 0..{count - 1})')
    if len(set(ids)) != len(ids):
        raise UserError(f'--device: repeated GPU index in {ids}')
    return torch.device('cuda', ids[0]), ids


# glibc's mallopt parameters
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def _libc():
    """glibc's (or the platform's C library's) handle, or None where there is none to load."""
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library('c')
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def release_freed_memory():
    """Give freed heap memory back to the OS now (glibc's malloc_trim; a no-op without glibc),
    e.g. after a large pickle was read and dropped."""
    trim = getattr(_libc(), 'malloc_trim', None)
    if trim is not None:
        trim(0)


def keep_cpu_memory_in_heap(limit=1 << 30):
    """On a glibc CPU run, let freed tensor memory be reused instead of returned to the OS.

    By default glibc serves every block over 32 MiB with its own mmap and gives it back on free, so
    each CTR-GCN layer's large relation tensors are page-faulted in again at every step (measured:
    a third of training time and half of evaluation time spent in the kernel). Raising the mmap and
    trim thresholds keeps that memory in the heap; the process keeps its peak footprint instead.
    Returns True when applied; a no-op elsewhere (macOS, Windows, musl).
    """
    mallopt = getattr(_libc(), 'mallopt', None)
    if mallopt is None:
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, limit) and mallopt(_M_TRIM_THRESHOLD, limit)
    return bool(ok and mallopt(_M_TOP_PAD, limit // 4))


PRECISIONS = {'fp32': None, 'fp16': torch.float16, 'bf16': torch.bfloat16}


def autocast_dtype(precision, device):
    """The autocast dtype for --precision on `device` (None: fp32, no autocast).

    Default (None): fp16 mixed precision on CUDA, as upstream's AMP, and fp32 on the CPU.
    """
    if precision is None:
        precision = 'fp16' if device.type == 'cuda' else 'fp32'
    if precision not in PRECISIONS:
        raise UserError(f'--precision: expected one of {", ".join(PRECISIONS)}, got {precision!r}')
    if precision == 'fp16' and device.type != 'cuda':
        raise UserError('--precision fp16 needs a CUDA device; use bf16 or fp32 on the CPU')
    return PRECISIONS[precision]


def autocast(device, dtype):
    """The autocast context of a run (a no-op context for fp32)."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def configure_backends(device, deterministic):
    """cuDNN autotuning for fixed shapes unless --deterministic; the first GPU as current device."""
    if device.type == 'cuda':
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = bool(deterministic)
