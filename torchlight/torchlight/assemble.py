"""Build a run's pieces from its arguments: data loaders, model, optimizer."""
import os

import torch
from torch.utils.data import DataLoader

from torchlight import rng
from torchlight.errors import UserError
from torchlight.importing import build


def data_loaders(arg, device, log):
    """{'train': ..., 'test': ...} (no 'train' in the test phase)."""
    workers = min(arg.num_worker, os.cpu_count() or 1)
    if workers < arg.num_worker:
        log(f'num_worker {arg.num_worker} > {workers} CPUs: using {workers} DataLoader workers')
    common = dict(num_workers=workers, worker_init_fn=rng.worker_init_fn, pin_memory=device.type == 'cuda')
    loaders = {}
    if arg.phase in ('train', 'benchmark'):
        train = build(arg.feeder, dict(arg.train_feeder_args), 'train_feeder_args')
        if len(train) == 0:
            raise UserError(f'train feeder {arg.feeder}: no samples ({arg.train_feeder_args})')
        # upstream drops the last partial batch; with fewer samples than a batch keep the one batch
        loaders['train'] = DataLoader(train, batch_size=arg.batch_size, shuffle=True,
                                      drop_last=len(train) >= arg.batch_size, **common)
    test = build(arg.feeder, dict(arg.test_feeder_args), 'test_feeder_args')
    if len(test) == 0:
        raise UserError(f'test feeder {arg.feeder}: no samples ({arg.test_feeder_args})')
    loaders['test'] = DataLoader(test, batch_size=arg.test_batch_size, shuffle=False, drop_last=False, **common)
    return loaders


def optimizer(arg, model, criterion):
    """SGD or Adam over the model and the criterion's own groups, each at base_lr x its lr_scale."""
    groups = [{'params': list(model.parameters()), 'lr_scale': 1.0}]
    groups += [dict(group) for group in criterion.param_groups()]
    for group in groups:
        group['lr'] = arg.base_lr * group['lr_scale']
    if arg.optimizer == 'SGD':
        return torch.optim.SGD(groups, lr=arg.base_lr, momentum=0.9, nesterov=arg.nesterov,
                               weight_decay=arg.weight_decay)
    return torch.optim.Adam(groups, lr=arg.base_lr, weight_decay=arg.weight_decay)
