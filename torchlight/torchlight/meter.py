"""Per-step training values kept on the device and read once per log interval (no per-step sync)."""
import torch


class NullWriter:
    """A tensorboard writer that writes nothing (ranks other than 0)."""

    def add_scalar(self, *args, **kwargs):
        pass

    def close(self):
        pass


class StepMeter:
    def __init__(self, writer, reduce=None):
        self.writer = writer  # tensorboard: per step, as upstream logged them
        self.reduce = reduce  # under DDP: the mean over the ranks (at each flush, one collective)
        self.pending = []     # (global step, {name: 0-dim tensor}) not yet read
        self.sums = {}
        self.last = {}

    def add(self, step, values):
        self.pending.append((step, values))

    def flush(self, lr):
        """Read the pending values in one transfer; add them to the sums and tensorboard."""
        if not self.pending:
            return
        names = list(self.pending[0][1])
        table = torch.stack([torch.stack([v[n] for n in names]) for _, v in self.pending])
        table = (self.reduce(table) if self.reduce else table).tolist()
        for (step, _), row in zip(self.pending, table):
            for name, value in zip(names, row):
                self.sums[name] = self.sums.get(name, 0.0) + value
                if name in ('loss', 'acc'):
                    self.writer.add_scalar(name, value, step)
            self.writer.add_scalar('lr', lr, step)
        self.last = dict(zip(names, table[-1]))
        self.pending.clear()

    def means(self, batches):
        return {k: v / max(batches, 1) for k, v in self.sums.items()}


def epoch_summary(mean, data_time, net_time, samples, seconds):
    """Upstream's two end-of-epoch log lines: mean losses and accuracy, then where the time went."""
    parts = ', '.join(f'{k} {v:.4f}' for k, v in mean.items() if k not in ('loss', 'acc'))
    seconds = max(seconds, 1e-9)
    return [f'\tMean training loss: {mean.get("loss", 0.0):.4f}' + (f' ({parts})' if parts else '')
            + f'.  Mean training acc: {100 * mean.get("acc", 0.0):.2f}%.',
            f'\tTime consumption: [Data]{100 * data_time / seconds:.0f}%, [Network]{100 * net_time / seconds:.0f}%; '
            f'{samples} samples in {seconds:.1f}s ({samples / seconds:.1f} samples/s)']
