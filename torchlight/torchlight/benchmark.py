"""`--phase benchmark`: training speed and memory of a config, as one JSON line on stdout.

After the trainer's prepare() (loaders, model, criterion, optimizer, scaler: exactly what
`--phase train` would use), it times training steps (forward + criterion + backward + optimizer
step, under the run's autocast and loss scaling) for these arms, taking turns (ABCABC...) so that
load from other processes falls on all of them alike:

  ctrgcn             plain CTR-GCN built from the config's model args (same classes, joints,
                     persons, graph) by the model module's `Model`, cross-entropy only
  <variants>         the configured model with each criterion its criterion's
                     `benchmark_variants(args)` names, as changes to the run's criterion_args (GAP's:
                     gap_frozen, text targets from the frozen table; gap_text_per_step, the
                     batch's prompts re-encoded with grad every step, upstream's way)
  model_only         forward + backward of the configured skeleton model alone (a trivial loss,
                     no criterion, no optimizer): its share of the configured step
  <arm>_eager        with --compile: the configured arm again without torch.compile

and iterates the train loader alone (its configured workers) before and after the timed rounds.
A config whose criterion has no variants (plain CTR-GCN) times `ctrgcn` and `model_only`; the
GAP arms are null with a reason. Nothing is written into the work dir. Sizes: --batch-size; the
steps come from `arg.benchmark_warmup` / `arg.benchmark_steps` when the command line has them,
else 10 + 20 on CUDA and 3 + 10 on the CPU.

`time_arms` and `train_step` are also what tests/benchmarks/bench_*.py time with.
"""
import copy
import json
import math
import os
import resource
import statistics
import sys
import time

import torch

from torchlight import assemble, distributed, io, step
from torchlight.criterion import CrossEntropy, trained_parameters
from torchlight.device import autocast
from torchlight.errors import UserError
from torchlight.importing import import_class
from torchlight.schedule import apply_learning_rate, learning_rate

DEFAULT_STEPS = {'cuda': (10, 20), 'cpu': (3, 10)}  # (warm-up, timed) per arm
CUDA_BLOCK = 5  # on CUDA the arms take turns in blocks of steps: one synchronisation per block
GAP_TARGET = 1.15  # gap_frozen / ctrgcn step time the frozen table must stay under
POOL = 4  # distinct batches cycled through by the model arms
# The JSON line's keys (documented in README and checked by tests/test_benchmark.py).
KEYS = ('benchmark', 'config', 'model', 'device', 'gpu', 'precision', 'compile', 'torch', 'threads',
        'world_size', 'batch_size', 'input_shape', 'warmup_steps', 'timed_steps', 'block', 'arms', 'loader',
        'host_peak_rss_mb', 'host_peak_rss_workers_mb', 'gpu_peak_mb', 'model_share', 'ratios',
        'compile_check', 'load_average')
# Arms of the JSON line. The criterion names its own (`benchmark_variants`); a criterion without
# variants (plain cross-entropy) reports these two as null.
CRITERION_ARMS = ('gap_frozen', 'gap_text_per_step')
ARMS = ('ctrgcn', *CRITERION_ARMS, 'model_only', 'ctrgcn_eager', 'gap_frozen_eager')
TIMED_KEYS = ('step_ms', 'step_ms_median', 'cpu_ms', 'samples_per_s', 'steps', 'first_step_s')


# ---------------------------------------------------------------------------------- timing
def synchronizer(device):
    """What to call at a measurement boundary: a CUDA sync on CUDA, nothing elsewhere."""
    device = torch.device(device)
    if device.type == 'cuda':
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def time_arms(arms, warmup, steps, block=1, sync=None, limits=None, device=None, log=None):
    """Time each zero-argument callable of `arms` ({name: step}), the arms taking turns.

    Each arm runs `warmup` untimed steps first (the first one timed on its own: compilation,
    cuDNN autotuning, lazy allocations), then rounds of `block` steps per arm until `steps` (or
    limits[name]) are done. `sync()` is called at each block's two boundaries only.
    Returns {name: {'first_s', 'wall' (seconds per step, one entry per block), 'cpu' (process CPU
    seconds per step, per block), 'n' (steps per block), 'steps', 'gpu_peak_bytes' (CUDA) or None}}.
    """
    sync = sync or (lambda: None)
    cuda = device is not None and torch.device(device).type == 'cuda'
    limits = dict(limits or {})
    out = {name: {'first_s': None, 'wall': [], 'cpu': [], 'n': [], 'steps': 0,
                  'gpu_peak_bytes': 0 if cuda else None} for name in arms}

    def peak_start():
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)

    def peak_end(name):
        if cuda:
            out[name]['gpu_peak_bytes'] = max(out[name]['gpu_peak_bytes'], torch.cuda.max_memory_allocated(device))

    for name, step in arms.items():
        if log:
            log(f'benchmark: warming up {name}')
        peak_start()
        for i in range(warmup if limits.get(name, steps) > 0 else 0):
            if i == 0:  # the first step is measured on its own; the others are not measured
                sync()
                start = time.perf_counter()
            step()
            if i == 0:
                sync()
                out[name]['first_s'] = time.perf_counter() - start
        sync()
        peak_end(name)
    for r in range(math.ceil(steps / max(block, 1))):
        for name, step in arms.items():
            n = min(block, limits.get(name, steps) - out[name]['steps'])
            if n <= 0:
                continue
            peak_start()
            sync()
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(n):
                step()
            sync()
            out[name]['wall'].append((time.perf_counter() - wall) / n)
            out[name]['cpu'].append((time.process_time() - cpu) / n)
            out[name]['n'].append(n)
            out[name]['steps'] += n
            peak_end(name)
        if log:
            log(f'benchmark: round {r + 1} of {math.ceil(steps / max(block, 1))} done')
    return out


def summary(timing, batch):
    """The JSON entry of one timed arm: mean (over all timed steps) and median (over blocks) step
    ms, process CPU ms per step, train samples/s at the mean step time (`batch`: samples per step)."""
    if not timing['steps']:
        return {'step_ms': None, 'samples_per_s': None, 'reason': 'no timed steps'}
    n = timing['n']
    mean = sum(t * k for t, k in zip(timing['wall'], n)) / sum(n)
    entry = {'step_ms': 1e3 * mean, 'step_ms_median': 1e3 * statistics.median(timing['wall']),
             'cpu_ms': 1e3 * sum(t * k for t, k in zip(timing['cpu'], n)) / sum(n),
             'samples_per_s': batch / mean, 'steps': timing['steps'], 'first_step_s': timing['first_s']}
    if timing['gpu_peak_bytes'] is not None:
        entry['gpu_peak_mb'] = timing['gpu_peak_bytes'] / 2 ** 20
    return entry


# ---------------------------------------------------------------------------------- steps
def train_step(model, criterion, optimizer, scaler, device, dtype, data, label, shared=None):
    """One training step exactly as the trainer takes it (torchlight.step). Returns the losses.
    shared: the criterion's trained parameters (found here when not given)."""
    shared = trained_parameters(criterion) if shared is None else shared
    return step.train_step(model, criterion, optimizer, scaler, device, dtype, data, label, shared)[1]


def tensors(output):
    """Every tensor in a model output (a tensor, or tuples/lists/dicts of them)."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (list, tuple)):
        return [t for item in output for t in tensors(item)]
    return []


def trivial_loss(output):
    """A loss touching every output (so every parameter gets a gradient) at next to no cost."""
    return sum(t.float().square().mean() for t in tensors(output) if t.requires_grad)


def model_step(model, device, dtype, data):
    """Forward + backward of the model alone: the skeleton model's part of a training step."""
    model.zero_grad(set_to_none=True)
    with autocast(device, dtype):
        output = model(data)
    trivial_loss(output).backward()


# ---------------------------------------------------------------------------------- the arms
def _core(model):
    """The module under torch.compile / DataParallel / DDP wrappers."""
    while True:
        inner = getattr(model, '_orig_mod', None) or getattr(model, 'module', None)
        if inner is None:
            return model
        model = inner


def _wrap_like(model, processor):
    """Wrap `model` as prepare() wrapped the processor's (DDP / DataParallel, then torch.compile)."""
    return assemble.wrap_model(model, processor.arg, processor.device, processor.gpus, training=True)[0]


def plain_model(processor):
    """Plain CTR-GCN from the configured model's module and args, on the processor's device;
    (model, None) or (None, reason)."""
    arg, core = processor.arg, processor.model_core
    module = str(arg.model).rpartition('.')[0]
    try:
        cls = import_class(f'{module}.Model')
    except UserError as e:
        return None, f'no plain model to compare with: {e}'
    from torchlight.importing import signature_keywords
    names, _ = signature_keywords(cls)
    kwargs = {k: v for k, v in dict(arg.model_args).items()
              if k not in ('head', 'k', 'parts') and (names is None or k in names)}
    for key in ('num_class', 'num_point', 'num_person', 'in_channels'):
        if hasattr(core, key) and (names is None or key in names):
            kwargs[key] = getattr(core, key)
    graph = getattr(core, 'graph', None)
    if graph is not None and 'graph' not in kwargs and (names is None or 'graph' in names):
        kwargs['graph'] = f'{type(graph).__module__}.{type(graph).__qualname__}'
    try:
        return cls(**kwargs).to(processor.device), None
    except (UserError, TypeError, ValueError) as e:
        return None, f'cannot build {module}.Model({kwargs}): {e}'


def _stderr(message):
    print(message, file=sys.stderr, flush=True)


def _criterion(processor, changes):
    """The criterion prepare() would build with `changes` to the run's criterion_args (the same
    factory call, the same DDP hook-up); returns it and the args it was built from."""
    arg = copy.copy(processor.arg)
    arg.criterion_args = {**arg.criterion_args, **changes}
    saved = processor.arg
    try:
        processor.arg = arg
        return processor.build_criterion(), arg
    finally:
        processor.arg = saved


def build_arms(processor, pool):
    """{name: step callable}, {name: reason} for the arms that cannot run, and notes per arm."""
    device, dtype = processor.device, processor.amp_dtype
    arg = processor.arg

    def batches():  # each arm cycles through the same pool of batches, one per step
        i = 0
        while True:
            yield pool[i % len(pool)]
            i += 1

    def fresh_optimizer(model_core, criterion, a=arg):
        opt = assemble.optimizer(a, model_core, criterion)
        apply_learning_rate(opt, learning_rate(0, a.base_lr, a.step, a.lr_decay_rate, a.warm_up_epoch))
        return opt, torch.amp.GradScaler('cuda', enabled=dtype == torch.float16)

    def step_of(model, criterion, optimizer, scaler):
        feed, shared = batches(), trained_parameters(criterion)

        def step():
            train_step(model, criterion, optimizer, scaler, device, dtype, *next(feed), shared)
        return step

    arms, missing, notes = {}, {}, {}
    configured = processor.criterion
    variants = (configured.benchmark_variants(dict(arg.criterion_args))
                if hasattr(configured, 'benchmark_variants') else {})
    apply_learning_rate(processor.optimizer, learning_rate(0, arg.base_lr, arg.step, arg.lr_decay_rate,
                                                           arg.warm_up_epoch))
    processor.model.train()
    configured.train()

    # (a) plain CTR-GCN
    if not variants:
        arms['ctrgcn'] = step_of(processor.model, configured, processor.optimizer, processor.scaler)
        notes['ctrgcn'] = f'the configured model {arg.model}'
        main_arm = 'ctrgcn'
    else:
        plain, reason = plain_model(processor)
        if plain is None:
            missing['ctrgcn'] = reason
        else:
            plain.train()
            opt, scaler = fresh_optimizer(plain, CrossEntropy())
            arms['ctrgcn'] = step_of(_wrap_like(plain, processor), CrossEntropy(), opt, scaler)
            notes['ctrgcn'] = f'{type(plain).__module__}.{type(plain).__name__} with the config\'s model args'
        main_arm = next(iter(variants))

    # the criterion's own variants (GAP: frozen table; prompts re-encoded every step)
    if not variants:
        for name in CRITERION_ARMS:
            missing[name] = f'{arg.model} has no text heads'
    built = {}
    for name, changes in variants.items():
        try:
            if changes:
                start = time.perf_counter()
                criterion, a = _criterion(processor, changes)
                notes[f'{name}_setup_s'] = time.perf_counter() - start
                criterion.train()
                opt, scaler = fresh_optimizer(processor.model_core, criterion, a)
            else:
                criterion, opt, scaler = configured, processor.optimizer, processor.scaler
        except (UserError, ImportError, OSError) as e:
            missing[name] = f'not available: {" ".join(str(e).split())[:300]}'
            continue
        built[name] = criterion, opt, scaler
        arms[name] = step_of(processor.model, criterion, opt, scaler)
        notes[name] = getattr(criterion, 'description', arg.model)

    # the skeleton model alone
    feed = batches()

    def model_only():
        model_step(processor.model, device, dtype, next(feed)[0])
    arms['model_only'] = model_only
    notes['model_only'] = 'forward + backward of the configured model, trivial loss, no optimizer'

    # --compile: the configured arm again, eager
    if hasattr(processor.model, '_orig_mod') and main_arm in arms:
        eager_model = processor.model._orig_mod
        criterion, opt, scaler = built.get(main_arm, (configured, processor.optimizer, processor.scaler))
        arms[f'{main_arm}_eager'] = step_of(eager_model, criterion, opt, scaler)
        notes[f'{main_arm}_eager'] = 'the same step without torch.compile'

    return arms, missing, notes, main_arm


# ---------------------------------------------------------------------------------- loader
def time_loader(loader, max_batches, keep=0):
    """Iterate `loader` alone for up to max_batches batches. The first batch (worker start-up)
    is timed on its own; samples/s counts the batches after it. Also returns up to `keep`
    (data, label) batches for the model arms."""
    kept = []
    start = time.perf_counter()
    first_s, after, samples, batches = None, None, 0, 0
    iterator = iter(loader)
    for data, label, *_ in iterator:
        batches += 1
        now = time.perf_counter()
        if first_s is None:
            first_s, after, first_n = now - start, now, label.shape[0]
        else:
            samples += label.shape[0]
        if len(kept) < keep:
            kept.append((data, label))
        if batches >= max_batches:
            break
    end = time.perf_counter()
    del iterator  # stops the workers
    if batches == 0:
        raise UserError('benchmark: the train loader gave no batch')
    if batches == 1:  # nothing after the first batch: count it, start-up included
        samples, seconds = first_n, first_s
    else:
        seconds = end - after
    return {'batches': batches, 'samples': samples, 'seconds': seconds, 'first_batch_s': first_s}, kept


def _mb(nbytes):
    return None if nbytes is None else nbytes / 2 ** 20


def host_peak_rss():
    """(this process, largest child process) peak RSS in bytes (children: loader workers that ended)."""
    scale = 1 if sys.platform == 'darwin' else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale)


def steps_of(arg, device):
    """(warm-up, timed) steps per arm: arg.benchmark_warmup / arg.benchmark_steps when set."""
    warmup, steps = DEFAULT_STEPS['cuda' if device.type == 'cuda' else 'cpu']
    if getattr(arg, 'benchmark_warmup', None) is not None:
        warmup = arg.benchmark_warmup
    if getattr(arg, 'benchmark_steps', None) is not None:
        steps = arg.benchmark_steps
    if warmup < 0 or steps < 1:
        raise UserError(f'benchmark: need warm-up >= 0 and timed steps >= 1, got {warmup} and {steps}')
    return warmup, steps


def _ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


# ---------------------------------------------------------------------------------- the phase
def run_benchmark(processor):
    """Time the arms for the prepared processor and print one JSON line on stdout; returns it as a dict."""
    arg, device = processor.arg, processor.device
    load_start = os.getloadavg()
    warmup, steps = steps_of(arg, device)
    block = min(CUDA_BLOCK, steps) if device.type == 'cuda' else 1
    sync = synchronizer(device)
    loader = processor.loaders['train']
    loader_batches = max(2, min(len(loader), steps + 1))

    # loader alone, before the model rounds (its first batches feed the model arms)
    first_pass, pool = time_loader(loader, loader_batches, keep=POOL)
    pool = [(d.float().to(device, non_blocking=True), y.long().to(device, non_blocking=True)) for d, y in pool]
    batch = int(pool[0][1].shape[0])  # per process
    world = int(getattr(processor, 'world', 1) or 1)  # under torchrun a step trains world x batch samples

    arms, missing, notes, main_arm = build_arms(processor, pool)
    _stderr(f'benchmark: {warmup} warm-up + {steps} timed steps per arm ({", ".join(arms)}), batch {batch}'
            + (f', blocks of {block}' if block > 1 else '') + (f'; null: {", ".join(missing)}' if missing else ''))
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    timing = time_arms(arms, warmup, steps, block=block, sync=sync, device=device, log=_stderr)
    second_pass, _ = time_loader(loader, loader_batches)  # and after them

    result_arms = {}
    for name in ARMS:
        if name in timing:
            result_arms[name] = summary(timing[name], batch * world)
            if notes.get(name):
                result_arms[name]['what'] = notes[name]
        elif name in missing:
            result_arms[name] = {'step_ms': None, 'samples_per_s': None, 'reason': missing[name]}
    for name in result_arms:
        if f'{name}_setup_s' in notes and name in timing:
            result_arms[name]['setup_s'] = notes[f'{name}_setup_s']

    samples = first_pass['samples'] + second_pass['samples']
    seconds = first_pass['seconds'] + second_pass['seconds']
    loader_entry = {'samples_per_s': samples / max(seconds, 1e-12),  # one process's loader
                    'batches': first_pass['batches'] + second_pass['batches'], 'workers': loader.num_workers,
                    'first_batch_s': first_pass['first_batch_s'], 'passes': 2}
    step = lambda name: result_arms.get(name, {}).get('step_ms')  # noqa: E731
    cpu = lambda name: result_arms.get(name, {}).get('cpu_ms')  # noqa: E731
    main_samples = result_arms.get(main_arm, {}).get('samples_per_s')
    eager = f'{main_arm}_eager'
    compile_entry = None
    if eager in result_arms:
        first = timing[main_arm]['first_s']
        compile_entry = {'compiled_step_ms': step(main_arm), 'eager_step_ms': step(eager),
                         'speedup': _ratio(step(eager), step(main_arm)),
                         'compile_s': None if first is None else first - step(eager) / 1e3,
                         'plain_compile_s': None if main_arm == 'ctrgcn' or 'ctrgcn' not in timing
                         else timing['ctrgcn']['first_s']}
    self_rss, child_rss = host_peak_rss()
    result = {
        'benchmark': 'train_step', 'config': arg.config, 'model': arg.model, 'device': str(device),
        'gpu': torch.cuda.get_device_name(device) if device.type == 'cuda' else None,
        'precision': {None: 'fp32', torch.float16: 'fp16', torch.bfloat16: 'bf16'}[processor.amp_dtype],
        'compile': bool(getattr(arg, 'compile', False)), 'torch': torch.__version__,
        'threads': torch.get_num_threads(), 'world_size': world, 'batch_size': batch,
        'input_shape': list(pool[0][0].shape),
        'warmup_steps': warmup, 'timed_steps': steps, 'block': block,
        'arms': result_arms,
        'loader': loader_entry,
        'host_peak_rss_mb': _mb(self_rss), 'host_peak_rss_workers_mb': _mb(child_rss) if child_rss else None,
        'gpu_peak_mb': _mb(max(t['gpu_peak_bytes'] for t in timing.values())) if device.type == 'cuda' else None,
        'model_share': _ratio(step('model_only'), step(main_arm)),
        'ratios': {
            'gap_frozen_over_ctrgcn': _ratio(step('gap_frozen'), step('ctrgcn')),
            'gap_frozen_over_ctrgcn_target': GAP_TARGET,
            'gap_frozen_over_ctrgcn_cpu': _ratio(cpu('gap_frozen'), cpu('ctrgcn')) if device.type == 'cpu' else None,
            'gap_text_per_step_over_gap_frozen': _ratio(step('gap_text_per_step'), step('gap_frozen')),
            'loader_over_train': _ratio(loader_entry['samples_per_s'], main_samples and main_samples / world),
        },
        'compile_check': compile_entry,
        'load_average': [round(load_start[0], 2), round(os.getloadavg()[0], 2)],
    }
    if distributed.is_main():  # under torchrun: rank 0's line
        print(json.dumps(io.finite_or_none(result)), flush=True)
    return result
