"""The trainer's entry point with one fault injected, for the fault matrix (test_faults.py).

    python tests/faults.py FAULT [trainer arguments...]

FAULT is `none` or `<kind>@<n>`:
  kill-step@n        SIGKILL at the n-th training step (global step n)
  kill-eval@n        SIGKILL at the start of the n-th evaluation
  kill-write@name#k  SIGKILL half-way through the k-th write (default 1st) of a file whose name
                     starts with `name` ('runs-2', 'last.pt#3')
  disk-full@name#k   that write fails with ENOSPC half-way instead
  nan-loss@n         the model's output is NaN from global step n on (a diverging run)

The faults are monkeypatches made here, in the test process's own copy of the code: the trainer
holds no hook for them.
"""
import errno
import os
import signal
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
sys.path[:0] = [str(TESTS), str(TESTS.parent)]

import torch  # noqa: E402

from torchlight import io, processor  # noqa: E402
from torchlight.cli import main  # noqa: E402


def kill():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def count_calls(owner, name, n, action):
    original = getattr(owner, name)
    calls = [0]

    def wrapped(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            action(args, kwargs)
        return original(*args, **kwargs)
    setattr(owner, name, wrapped)


def failing_write(where, fail):
    """io.atomic_open whose k-th file named `prefix`... gets half its bytes, then fail()."""
    prefix, _, k = where.partition('#')
    original = io.atomic_open
    seen = [0]

    def atomic_open(path, mode='w'):
        context = original(path, mode)
        if not os.path.basename(str(path)).startswith(prefix):
            return context
        seen[0] += 1
        if seen[0] != int(k or 1):
            return context

        class Half:
            def __enter__(self):
                self.file = context.__enter__()
                return self

            def write(self, data):
                self.file.write(bytes(data)[:max(1, len(data) // 2)])
                self.file.flush()
                fail()

            def __exit__(self, *exc):
                return context.__exit__(*exc)
        return Half()
    io.atomic_open = atomic_open


def no_space():
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def nan_from(step):
    from test_processor import TinyGAP
    forward = TinyGAP.forward
    seen = [0]

    def poisoned(self, x):
        if self.training:
            seen[0] += 1
        out = forward(self, x)
        if self.training and seen[0] >= step:
            return (out[0] * float('nan'),) + tuple(out[1:])
        return out
    TinyGAP.forward = poisoned


def install(fault):
    if fault == 'none':
        return
    kind, _, where = fault.partition('@')
    if kind == 'kill-step':
        count_calls(processor, 'train_step', int(where), lambda a, k: kill())
    elif kind == 'kill-eval':
        count_calls(processor.Processor, 'evaluate', int(where), lambda a, k: kill())
    elif kind == 'kill-write':
        failing_write(where, kill)
    elif kind == 'disk-full':
        failing_write(where, no_space)
    elif kind == 'nan-loss':
        nan_from(int(where))
    else:
        raise SystemExit(f'unknown fault {fault!r}')


if __name__ == '__main__':
    torch.set_num_threads(1)
    install(sys.argv[1])
    sys.exit(main(sys.argv[2:], feeder='test_processor.TinyFeeder', default_config=None))
