"""Per-step training values kept on the device and read once per log interval (no per-step sync).

Reading them is also where a diverged run is caught: a non-finite loss ends the run (Diverged)
at the first read after it, naming its epoch and step, before anything of that epoch is saved.
"""
import math

import torch

from torchlight.distributed import SharedError


class Diverged(SharedError):
    """The training loss became non-finite. Under torchrun every rank reads the same reduced values
    at the same flush, so every rank raises it together (one line, printed by rank 0)."""


class NullWriter:
    """A tensorboard writer that writes nothing (ranks other than 0)."""

    def add_scalar(self, *args, **kwargs):
        pass

    def close(self):
        pass


class StepMeter:
    """`skip_nonfinite`: fp16 with a GradScaler, which skips a step whose loss overflowed (its
    gradients are inf) instead of diverging: such steps are counted, not averaged, and only an
    epoch in which every step overflowed counts as divergence."""

    def __init__(self, writer, reduce=None, epoch=None, skip_nonfinite=False):
        self.writer = writer  # tensorboard: per step, as upstream logged them
        self.reduce = reduce  # under DDP: the mean over the ranks (at each flush, one collective)
        self.epoch = epoch    # 1-based, for the divergence message
        self.skip_nonfinite = skip_nonfinite
        self.pending = []     # (global step, {name: 0-dim tensor}) not yet read
        self.sums = {}
        self.last = {}
        self.count = self.skipped = 0

    def add(self, step, values):
        self.pending.append((step, values))

    def flush(self, lr):
        """Read the pending values in one transfer; add them to the sums and tensorboard."""
        if not self.pending:
            return
        names = list(self.pending[0][1])
        table = torch.stack([torch.stack([v[n] for n in names]) for _, v in self.pending])
        table = (self.reduce(table) if self.reduce else table).tolist()
        loss = names.index('loss') if 'loss' in names else None
        for (step, _), row in zip(self.pending, table):
            if loss is not None and not math.isfinite(row[loss]):
                if not self.skip_nonfinite:
                    self.pending.clear()
                    raise Diverged(f'training diverged: the loss is {row[loss]} at epoch {self.epoch}, step {step}')
                self.skipped += 1
                continue
            self.count += 1
            for name, value in zip(names, row):
                self.sums[name] = self.sums.get(name, 0.0) + value
                if name in ('loss', 'acc'):
                    self.writer.add_scalar(name, value, step)
            self.writer.add_scalar('lr', lr, step)
        self.last = dict(zip(names, table[-1]))
        self.pending.clear()

    def means(self):
        """Each value's mean over the steps read (fp16 steps the scaler skipped left out)."""
        if self.skipped and not self.count:
            raise Diverged(f'training diverged: every one of the {self.skipped} fp16 steps of epoch '
                           f'{self.epoch} had a non-finite loss (the gradient scaler skipped them all)')
        return {k: v / max(self.count, 1) for k, v in self.sums.items()}


def epoch_summary(mean, data_time, net_time, samples, seconds):
    """Upstream's two end-of-epoch log lines: mean losses and accuracy, then where the time went."""
    parts = ', '.join(f'{k} {v:.4f}' for k, v in mean.items() if k not in ('loss', 'acc'))
    seconds = max(seconds, 1e-9)
    return [f'\tMean training loss: {mean.get("loss", 0.0):.4f}' + (f' ({parts})' if parts else '')
            + f'.  Mean training acc: {100 * mean.get("acc", 0.0):.2f}%.',
            f'\tTime consumption: [Data]{100 * data_time / seconds:.0f}%, [Network]{100 * net_time / seconds:.0f}%; '
            f'{samples} samples in {seconds:.1f}s ({samples / seconds:.1f} samples/s)']
