"""Per-step training values kept on the device and read once per log interval (no per-step sync)."""
import torch


class StepMeter:
    def __init__(self, writer):
        self.writer = writer  # tensorboard: per step, as upstream logged them
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
        table = torch.stack([torch.stack([v[n] for n in names]) for _, v in self.pending]).tolist()
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
