"""Build a run's pieces from its arguments: data loaders, model, optimizer."""
import math
import os

import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from torchlight import distributed, rng
from torchlight.errors import UserError
from torchlight.importing import build, import_class, signature_keywords


def check_args(arg):
    """The flag combinations a run refuses before building anything."""
    if arg.phase == 'test' and not arg.weights:
        raise UserError('--phase test needs --weights <checkpoint.pt>')
    if arg.weights and not os.path.isfile(arg.weights):
        raise UserError(f'--weights: file not found: {arg.weights}')
    if not arg.model:
        raise UserError('no model: give --model or a model: line in the config')
    if arg.optimizer not in ('SGD', 'Adam'):
        raise UserError(f'--optimizer: expected SGD or Adam, got {arg.optimizer!r}')
    if arg.phase == 'benchmark' and distributed.launched():
        raise UserError('--phase benchmark times one process: run it without torchrun')
    check_numbers(arg)


# flag -> (smallest value allowed, what it is): counts and sizes a run cannot work with below it
_AT_LEAST = {'batch_size': (1, 'a batch size'), 'test_batch_size': (1, 'a batch size'),
             'num_epoch': (1, 'an epoch count'), 'start_epoch': (0, 'an epoch count'),
             'num_worker': (0, 'a worker count'), 'log_interval': (0, 'a step interval'),
             'save_interval': (1, 'an epoch interval'), 'eval_interval': (0, 'an epoch interval (0: only the last)'),
             'save_epoch': (0, 'an epoch count'), 'warm_up_epoch': (0, 'an epoch count'), 'seed': (0, 'a seed')}


def check_numbers(arg):
    """Numeric flags with values no run can use: one line naming the flag and its value."""
    for key, (low, what) in _AT_LEAST.items():
        value = getattr(arg, key, None)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < low):
            raise UserError(f'--{key.replace("_", "-")} {value!r}: expected {what}, an integer >= {low}')
    for key in ('base_lr', 'weight_decay', 'lr_decay_rate'):
        value = getattr(arg, key, None)
        if value is not None and (not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0):
            raise UserError(f'--{key.replace("_", "-")} {value!r}: expected a finite number >= 0')
    for key in ('step', 'show_topk'):
        for value in getattr(arg, key, None) or ():
            if not isinstance(value, int) or value < (1 if key == 'show_topk' else 0):
                raise UserError(f'--{key.replace("_", "-")} {value!r}: expected integers >= '
                                f'{1 if key == "show_topk" else 0}')


def data_loaders(arg, device, log):
    """{'train': ..., 'test': ...} (no 'train' in the test phase).

    Under torchrun --batch-size is the global batch (upstream's meaning): each of the W ranks takes
    batch/W samples of a DistributedSampler's share, and num_worker/W workers. Each rank scores its
    own contiguous part of the test set, no sample twice (evaluation gathers them in order).
    """
    world, rank = distributed.world_size(), distributed.rank()
    training = arg.phase in ('train', 'benchmark')
    if training and arg.batch_size % world:
        raise UserError(f'--batch-size {arg.batch_size} is the global batch: it must be a multiple of the '
                        f'{world} processes torchrun started')
    cpus = max(1, (os.cpu_count() or 1) // distributed.local_world_size())
    wanted = max(1, arg.num_worker // world) if arg.num_worker > 0 else 0
    workers = min(wanted, cpus)
    if workers < wanted:
        log(f'num_worker {wanted} > {cpus} CPUs: using {workers} DataLoader workers'
            + (' per process' if distributed.launched() else ''))
    common = dict(num_workers=workers, worker_init_fn=rng.worker_init_fn, pin_memory=device.type == 'cuda')
    loaders = {}
    if training:
        train = build(arg.feeder, dict(arg.train_feeder_args), 'train_feeder_args')
        if len(train) == 0:
            raise UserError(f'train feeder {arg.feeder}: no samples ({arg.train_feeder_args})')
        # upstream drops the last partial batch; with fewer samples than a batch keep the one batch
        drop_last = len(train) >= arg.batch_size
        sampler = None
        if distributed.launched():  # the same permutation on every rank (seed + epoch: set_epoch)
            sampler = DistributedSampler(train, num_replicas=world, rank=rank, shuffle=True, seed=arg.seed,
                                         drop_last=drop_last)
        loaders['train'] = DataLoader(train, batch_size=arg.batch_size // world, shuffle=sampler is None,
                                      sampler=sampler, drop_last=drop_last, **common)
    test = build(arg.feeder, dict(arg.test_feeder_args), 'test_feeder_args')
    if len(test) == 0:
        raise UserError(f'test feeder {arg.feeder}: no samples ({arg.test_feeder_args})')
    part = range(rank * len(test) // world, (rank + 1) * len(test) // world) if distributed.launched() else None
    loaders['test'] = DataLoader(test, batch_size=max(1, arg.test_batch_size // world), shuffle=False,
                                 sampler=part, drop_last=False, **common)
    if training:
        check_feeders_agree(train, test, arg.feeder)
    return loaders


# What a model trained on one feeder's items needs the other's to share.
AGREE = ('modality', 'layout', 'num_class')


def check_feeders_agree(train, test, feeder):
    """Train and test items must be of one kind: a model trained on bones scored on joints, or on
    60 classes scored on 120, gives a number without meaning. One line naming both values."""
    for key in AGREE:
        a, b = getattr(train, key, None), getattr(test, key, None)
        if a is not None and b is not None and a != b:
            raise UserError(f'{feeder}: train_feeder_args give {key} {a!r} but test_feeder_args give {b!r}; '
                            'train and test data must agree')


# model_args a config may leave out, each with the feeder attribute that then gives it: the layout
# is named once, in the feeder args (the feeder's `layout`), the class count and the bodies per
# item come from the data.
FROM_DATA = (('graph', 'layout'), ('num_class', 'num_class'), ('num_person', 'num_person'))


def model_args_from_data(model, model_args, feeder, log):
    """model_args plus each FROM_DATA key it leaves out (or sets to None) that the model class
    takes and the test feeder states; a value the config gives is kept (the model checks it
    against its graph, check_model_fits against the labels)."""
    args = dict(model_args)
    takes, _ = signature_keywords(import_class(model))
    for key, attribute in FROM_DATA:
        value = getattr(feeder, attribute, None)
        if args.get(key) is None and value is not None and (takes is None or key in takes):
            args[key] = value
            log(f'model_args {key}: {value!r} (the test feeder\'s {attribute})')
    return args


def check_model_fits(model, feeder):
    """Every label of the test data must be one of the model's classes (a label beyond them fails
    deep inside the loss, or in a GPU kernel)."""
    labels, own = getattr(feeder, 'label', None), getattr(model, 'num_class', None)
    if labels is not None and len(labels) and isinstance(own, int) and int(max(labels)) >= own:
        raise UserError(f'model_args num_class {own} does not fit the data: its labels go up to {int(max(labels))}')


def wrap_model(model, arg, device, gpus, training=True):
    """(what a training step runs, what evaluation runs) around `model` (already on `device`):
    DistributedDataParallel when training under torchrun, DataParallel over several --device GPUs,
    then torch.compile with --compile. Evaluation under torchrun runs the bare model: the ranks
    score test parts of different lengths, so no collective may hide in its forward."""
    evaluated = None
    if distributed.launched():
        if training:
            ids = [device.index] if device.type == 'cuda' else None
            model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
            evaluated = model.module
    elif len(gpus) > 1:
        model = torch.nn.DataParallel(model, device_ids=gpus, output_device=gpus[0])
    if arg.compile:  # the compiled wrapper runs the steps; the bare model keeps the plain state-dict names
        model = torch.compile(model)
    return model, evaluated or model


def sync_batch_norm(model, arg, device, log):
    """--sync-bn: BatchNorm statistics over the global batch (DDP on GPUs only)."""
    if not getattr(arg, 'sync_bn', False):
        return model
    if not distributed.launched():
        log('--sync-bn: one process (no torchrun): plain BatchNorm')
        return model
    if device.type != 'cuda':
        raise UserError('--sync-bn needs CUDA devices (SyncBatchNorm has no CPU kernel); drop it for --device cpu')
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)


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


def describe_ranks(arg, loaders):
    """The log line of a torchrun run: world size, each rank's share of the batches, its workers."""
    world, train = distributed.world_size(), loaders['train']
    return (f'DistributedDataParallel: world size {world} ({distributed.backend()} backend), global batch '
            f'{arg.batch_size} = {train.batch_size} per rank, test batch {loaders["test"].batch_size} per rank, '
            f'{train.num_workers} DataLoader workers per rank' + (', SyncBatchNorm' if arg.sync_bn else ''))
