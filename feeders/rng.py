"""Random numbers for train-time augmentation that behave under DataLoader workers.

NumPy's global RNG is copied into every forked worker, so all workers would draw the same
"random" crops and rotations (upstream's pitfall). Instead each feeder draws from a Generator
seeded with torch.initial_seed(), which the DataLoader sets to base_seed + worker_id in each
worker, drawing a fresh base_seed from torch's RNG every epoch. So: different streams per worker
and per epoch, and reproducible runs after torch.manual_seed(seed). With num_workers=0 the stream
is seeded once from the main process's torch seed and then just advances.
"""
import os

import numpy as np
import torch


class WorkerRNG:
    _key = None
    _generator = None

    def get(self):
        """The Generator for this process and torch seed, made on first use."""
        key = (os.getpid(), torch.initial_seed())
        if key != self._key:
            self._generator, self._key = np.random.default_rng(key[1]), key
        return self._generator

    def __getstate__(self):  # a copy in another process starts afresh
        return {}
