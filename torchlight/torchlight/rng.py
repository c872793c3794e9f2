"""Seeding and capture/restore of every RNG a training step draws from (for exact resume)."""
import contextlib
import random

import numpy as np
import torch


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def worker_init_fn(worker_id):
    """Seed a DataLoader worker's numpy/random from its torch seed.

    torch gives each worker base_seed + worker_id, with base_seed drawn from the main process's RNG
    every epoch, so augmentations differ across workers and epochs yet follow from --seed.
    (Upstream seeded each worker with its id, which replays the same augmentations every epoch.)
    """
    seed = torch.initial_seed() % 2 ** 32
    np.random.seed(seed)
    random.seed(seed)


def rng_state():
    """All RNG states as plain types and tensors, loadable with torch.load(weights_only=True)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        'python': random.getstate(),
        'numpy': [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        'torch': torch.get_rng_state(),
        'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state):
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state['numpy']
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state['torch'])
    cuda = state.get('cuda') or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


@contextlib.contextmanager
def preserved():
    """Run the body without moving any RNG the training draws from (an evaluation's DataLoader
    draws a seed): resuming before or after an evaluation then continues the same streams."""
    state = rng_state()
    try:
        yield
    finally:
        restore_rng_state(state)


def reseed_epoch():
    """Start an epoch from a torch seed drawn from the run's own RNG.

    Feeders that keep per-process generators keyed on torch.initial_seed() (as DataLoader workers
    get) then draw a fresh, reproducible stream every epoch also with num_workers=0, and an epoch
    depends only on the RNG state at its start: what `--resume` restores.
    """
    torch.manual_seed(int(torch.randint(0, 2 ** 62, (1,)).item()))


def rank_state(generators=()):
    """This process's RNG states and those of `generators` (a criterion's own draws), for last.pt's
    per-rank list under DDP."""
    return {'rng': rng_state(), 'generators': [g.get_state() for g in generators]}


def restore_rank_state(run_state, rank, world, generators=()):
    """Before the first resumed epoch: rank `rank`'s own streams when last.pt holds them for this
    number of processes; else rank 0's (a 1-process run's), re-seeded on the other ranks from
    there plus their rank. Returns whether the rank's own streams were restored."""
    ranks = run_state.get('rank_rng') or []
    if world > 1 and len(ranks) == world:
        restore_rng_state(ranks[rank]['rng'])
        for generator, state in zip(generators, ranks[rank]['generators']):
            generator.set_state(state)
        return True
    restore_rng_state(run_state['rng'])
    if rank:
        seed_everything(int(torch.randint(0, 2 ** 62, (1,)).item()) + rank)
        for generator in generators:
            generator.manual_seed(int(torch.randint(0, 2 ** 62, (1,)).item()))
    return False
