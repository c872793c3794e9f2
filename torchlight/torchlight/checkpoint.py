"""Checkpoints: load model weights strictly with one-line errors, and save/load the run state.

`runs-E-S.pt` files are plain state dicts (upstream's format); `last.pt` is the versioned run state.
"""
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from torchlight import io
from torchlight.errors import UserError

_SHOW = 5  # key names quoted per kind of mismatch in an error message


def read_state_dict(path_or_state):
    """The state dict in a path / dict: a raw one, or one held under 'state_dict' or 'model'."""
    source = 'the given state dict'
    obj = path_or_state
    if isinstance(path_or_state, (str, Path)):
        source = str(path_or_state)
        if not Path(source).is_file():
            raise UserError(f'checkpoint not found: {source}')
        try:
            obj = torch.load(source, map_location='cpu', weights_only=True)
        except Exception as e:  # zip, pickle and restricted-unpickler errors: not loadable
            if 'weights only load failed' in str(e).lower():
                reason = ('it holds Python objects besides tensors (a pickled model?), which a '
                          'weights-only load refuses to unpickle')
            else:
                reason = f'not a PyTorch checkpoint file ({type(e).__name__})'
            raise UserError(f'cannot read checkpoint {source}: {reason}') from None
    if isinstance(obj, Mapping):
        for key in ('state_dict', 'model'):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if (not isinstance(obj, Mapping) or not obj
            or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())):
        raise UserError(f'{source} holds no state dict (a name -> tensor mapping, possibly under '
                        f"'state_dict' or 'model')")
    return obj, source


def _strip_module(key):
    # nn.DataParallel / DistributedDataParallel save their wrapped model's keys as 'module.<key>'.
    while key.startswith('module.'):
        key = key[len('module.'):]
    return key


def _quote(keys):
    keys = sorted(keys)
    shown = ', '.join(keys[:_SHOW])
    return shown + (f', ... ({len(keys) - _SHOW} more)' if len(keys) > _SHOW else '')


def load_weights(model, path_or_state, ignore_weights=(), strict=True, log=print):
    """Load `path_or_state` into `model`; returns {'loaded', 'dropped', 'missing', 'unexpected'}.

    `module.` prefixes are stripped. Keys containing any `ignore_weights` substring are dropped
    from the checkpoint (and the model's own such keys keep their values without counting as
    missing). Any other missing or unexpected key raises a one-line UserError when `strict`,
    else is logged; a shape mismatch always raises. Nothing is loaded when an error is raised.
    """
    state, source = read_state_dict(path_or_state)
    if isinstance(model, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
        model = model.module
    ignore = [ignore_weights] if isinstance(ignore_weights, str) else list(ignore_weights)
    ignored = lambda key: any(word in key for word in ignore)  # noqa: E731

    weights, dropped = {}, []
    for key, value in state.items():
        key = _strip_module(key)
        if ignored(key):
            dropped.append(key)
        else:
            weights[key] = value
    for key in dropped:
        log(f'Dropped weight {key} (matches ignore_weights)')

    own = model.state_dict()
    missing = [k for k in own if k not in weights and not ignored(k)]
    unexpected = [k for k in weights if k not in own]
    mismatched = [k for k in weights if k in own and weights[k].shape != own[k].shape]

    problems = []
    if missing:
        problems.append(f'{len(missing)} missing key(s): {_quote(missing)}')
    if unexpected:
        problems.append(f'{len(unexpected)} unexpected key(s): {_quote(unexpected)}')
    if mismatched:
        shapes = [f'{k} {tuple(weights[k].shape)} vs {tuple(own[k].shape)}'
                  for k in sorted(mismatched)]
        problems.append(f'{len(mismatched)} shape mismatch(es) (checkpoint vs model): '
                        + ', '.join(shapes[:_SHOW]) + (' ...' if len(shapes) > _SHOW else ''))
    name = type(model).__name__
    if mismatched or (strict and problems):
        raise UserError(f'checkpoint {source} does not fit {name}: ' + '; '.join(problems))
    if problems:
        log(f'Warning: loading {source} into {name} partially: ' + '; '.join(problems))

    loadable = {k: v for k, v in weights.items() if k in own}
    model.load_state_dict(loadable, strict=False)
    return {'loaded': sorted(loadable), 'dropped': dropped, 'missing': missing,
            'unexpected': unexpected}


# ---------------------------------------------------------------- the resumable run state
RUN_STATE_VERSION = 2  # 1 was the unversioned last.pt of the first release
RUN_STATE_KEYS = ('version', 'args', 'epoch', 'global_step', 'model', 'optimizer', 'scaler',
                  'criterion', 'best_acc', 'best_epoch', 'best_step', 'best_model', 'last_acc',
                  'last_epoch', 'rng')


# Settings --resume may change: how the run is watched, where it runs, which outputs it writes.
# Everything else (data, model, optimisation, seed, schedule) must be the run's own.
RESUME_FREE = ('config', 'work_dir', 'model_saved_name', 'phase', 'start_epoch', 'device', 'num_worker',
               'print_log', 'log_interval', 'show_topk', 'save_score')


# Flags that runs before criterion_args held at the top level, with the values that meant "unset".
LEGACY_CRITERION_FLAGS = {'loss_alpha': None, 'te_lr_ratio': 0.0, 'text_dir': None, 'text_encoder_weights': None,
                          'text_embeddings': None}


def upgraded_settings(saved, current):
    """A run's settings from before criterion_args, in today's shape: its criterion flags move into
    criterion_args, where an unset one takes today's value (the entry script's, as it did then)."""
    if 'criterion_args' in saved or not any(key in saved for key in LEGACY_CRITERION_FLAGS):
        return saved
    saved = dict(saved)
    criterion_args = dict(current.get('criterion_args') or {})
    for key, unset in LEGACY_CRITERION_FLAGS.items():
        value = saved.pop(key, unset)
        if value != unset:
            criterion_args[key] = value
    return {**saved, 'criterion_args': criterion_args}


def check_resume_settings(saved, current, epochs_done):
    """A one-line UserError naming every setting of `current` that differs from the run's `saved`
    ones (both values), except RESUME_FREE and --num-epoch (any count not below the epochs done)."""
    saved = upgraded_settings(saved, current)
    changed = []
    for key in sorted(set(saved) | set(current)):
        if key in RESUME_FREE or key == 'num_epoch' or saved.get(key) == current.get(key):
            continue
        changed.append(f'{key}: run {saved.get(key)!r}, now {current.get(key)!r}')
    if 'num_epoch' in current and current['num_epoch'] < epochs_done:
        changed.append(f'num_epoch {current["num_epoch"]} < the {epochs_done} epochs already done')
    if changed:
        raise UserError('--resume with settings other than the run\'s own (' + '; '.join(changed)
                        + '); resume with the same settings (only --num-epoch may grow), or start a new work dir')


def save_run_state(path, state):
    """Write `<work_dir>/last.pt`, everything `--resume` needs, loadable with weights_only=True:

    version      RUN_STATE_VERSION
    args         the run's settings (the dict config.yaml holds)
    epoch        epochs done; global_step: optimizer steps done
    model        model state dict (CPU, no `module.` prefix); optimizer, scaler: their state dicts
    criterion    the criterion's own state_dict() (e.g. a fine-tuned text encoder, its RNG)
    best_acc, best_epoch, best_step   the best evaluated epoch so far (best_epoch None: none yet)
    best_model   that epoch's weights when no runs-E-S.pt was written for it, else None
    last_acc, last_epoch              the latest evaluation
    rng          torchlight.rng.rng_state() at the end of the epoch (rank 0's under torchrun)
    rank_rng     (torchrun only) every rank's torchlight.rng.rank_state(), in rank order
    pending      (optional) the training record of epoch `epoch` when its evaluation has not run yet
                 (the state is written after each epoch's training and again after its evaluation)
    """
    missing = [k for k in RUN_STATE_KEYS if k != 'version' and k not in state]
    if missing:
        raise ValueError(f'run state lacks {missing}')
    io.save_torch(path, {'version': RUN_STATE_VERSION, **state})


def load_run_state(path):
    """The dict save_run_state wrote; UserError (one line) for a file it cannot resume from."""
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except FileNotFoundError:
        raise UserError(f'--resume: no {os.path.basename(path)} in {os.path.dirname(path)} to resume from') from None
    except Exception as e:  # truncated, foreign or pickled-object files
        raise UserError(f'--resume: cannot read {path} ({type(e).__name__})') from None
    if not isinstance(state, dict) or 'epoch' not in state:
        raise UserError(f'--resume: {path} is not a run state (last.pt) file')
    version = state.get('version', 1)
    if version != RUN_STATE_VERSION:
        raise UserError(f'--resume: {path} has run-state format {version}, this version reads '
                        f'{RUN_STATE_VERSION}; resume it with the release that wrote it, or start '
                        f'over with --overwrite')
    return state


def resume_into(path, model, optimizer, criterion, scaler, state=None):
    """Load last.pt's model, optimizer, criterion and scaler states into those objects; returns the
    run state (`state`: already read from `path`). UserError (one line) for a file that does not fit them."""
    state = load_run_state(path) if state is None else state
    try:
        model.load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
        criterion.load_state_dict(state['criterion'])
    except (RuntimeError, KeyError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f'--resume: {path} does not fit this model/optimizer/criterion ({first})') from None
    if state.get('scaler'):
        scaler.load_state_dict(state['scaler'])
    return state
