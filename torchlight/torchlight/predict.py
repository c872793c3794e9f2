"""`--phase predict`: what action do these clips show? From raw skeleton files to class names.

    python main_multipart_ucla.py --phase predict --weights checkpoints/nw-ucla/lst_joint.pt \\
        --input data/NW-UCLA/all_sqe/a01_s01_e00_v01.json [more files] [--output preds.jsonl]

Each stream (one --weights) is a model with the test-time view of its feeder: the feeder class's
`clip_view(test_feeder_args, num_class)` reads a clip (feeders/clips.py, by file suffix) as the
test phase reads that sample, so a clip's scores are the test phase's scores of it. Several
--weights (streams of one dataset: joint, bone, motion) fuse their classifier scores with the
ensemble's weights (ensemble.py); the probabilities are the softmax of the (fused) scores.

What a checkpoint must say (layout, modality, window: the feeder and its test args; the model
class and args; the class names) comes from:
  - an inference checkpoint (python -m torchlight.export): all of it;
  - a plain state dict (upstream's, or this project's runs-E-S.pt / last.pt): --config, else
    the config.yaml of the run folder it sits in; class names from that config's label set.
Only the classifier runs: no text encoder is loaded (test-time GAP is CTR-GCN). Every input is
read and checked before the first prediction, and --output is written once, at the end: bad
input is one line and leaves no file.
"""
import os
import sys

import numpy as np
import torch
import yaml

from torchlight import io
from torchlight.args import ArgumentParser
from torchlight.checkpoint import load_weights, read_state_dict
from torchlight.criterion import class_names_for
from torchlight.device import autocast, autocast_dtype, keep_cpu_memory_in_heap, resolve_device
from torchlight.errors import UserError
from torchlight.importing import build, import_class

TOP_K = 5
INFERENCE_FORMAT = 'gap-inference'  # torchlight.export's


def get_parser(prog=None):
    p = ArgumentParser(prog=prog, description='Predict the action of skeleton clips (--phase predict).')
    p.add_argument('--phase', choices=['predict'], required=True)
    p.add_argument('--weights', nargs='+', required=True, metavar='CKPT',
                   help='one checkpoint per stream (joint, bone, ... of one dataset); several fuse')
    p.add_argument('--input', nargs='+', required=True, metavar='FILE',
                   help='.skeleton (NTU), .json (NW-UCLA), .pkl (pyskl annotations) or .npy (M, T, V, C)')
    p.add_argument('--output', default=None, metavar='PATH', help='also write one JSON line per clip here')
    p.add_argument('--config', default=None,
                   help='the run config of a checkpoint that holds weights only (e.g. upstream\'s)')
    p.add_argument('--split', default=None, help='pyskl pickles: only the clips of this split')
    p.add_argument('--device', default=None, nargs='+',
                   help='a GPU index or cpu (default: GPU 0 when CUDA is available, else the CPU)')
    p.add_argument('--test-batch-size', type=int, default=64, help='clips per forward pass')
    p.add_argument('--precision', default=None, choices=['fp32', 'fp16', 'bf16'],
                   help="autocast precision, as the test phase's (None: fp16 on CUDA, fp32 on the CPU)")
    return p


# ------------------------------------------------------------------------------------ streams

class Stream:
    """One checkpoint ready to score clips: the model, its feeder's clip view, its class names."""

    def __init__(self, path, spec, weights, device):
        self.path, self.spec = path, spec
        self.model = build(spec['model_class'], dict(spec['model_args']), 'model_args')
        try:
            load_weights(self.model, weights, log=lambda *a, **k: None)  # strict
        except UserError as e:  # name the file, not 'the given state dict'
            raise UserError(f'{path}: {e}'.replace('checkpoint the given state dict does not fit', 'its weights do not fit')) from None
        self.model.to(device).eval()
        self.num_class = getattr(self.model, 'num_class', None)
        feeder = import_class(spec['feeder'])
        if not hasattr(feeder, 'clip_view'):
            raise UserError(f'{path}: its feeder {spec["feeder"]} has no clip_view: predict cannot '
                            'read raw clips for it')
        self.view = feeder.clip_view(dict(spec['test_feeder_args']), self.num_class)
        self.names = spec['class_names'] or class_names_for(spec['criterion'], self.model, spec['criterion_args'])
        if not self.names:
            raise UserError(f'{path}: no class names (neither the checkpoint nor its config\'s label set gives '
                            'them); give --config with the run\'s config, its criterion_args naming the label set')
        if self.num_class is not None and len(self.names) != self.num_class:
            raise UserError(f'{path}: {len(self.names)} class names for a model of {self.num_class} classes')
        self.layout = self.view.layout.name
        self.modality = stream_modality(self.view.modality, self.model)

    def describe(self):
        return f'{self.path} (layout {self.layout}, {len(self.names)} classes)'


def load_checkpoint(path):
    """The object in `path`, loaded without unpickling code; one line for anything unreadable."""
    if not os.path.isfile(path):
        raise UserError(f'--weights: file not found: {path}')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # truncated zip, a foreign pickle, not a torch file
        raise UserError(f'cannot read checkpoint {path}: not a complete PyTorch checkpoint ({type(e).__name__}); '
                        'a truncated download?') from None


def stream_spec(path, obj, config_path, entry):
    """(spec, state dict) of a checkpoint: what building and feeding its model needs."""
    if isinstance(obj, dict) and obj.get('format') == INFERENCE_FORMAT:
        spec = {key: obj.get(key) for key in ('model_class', 'model_args', 'feeder', 'test_feeder_args',
                                              'criterion', 'criterion_args', 'class_names')}
        spec['model_args'] = spec['model_args'] or {}
        spec['test_feeder_args'] = spec['test_feeder_args'] or {}
        spec['criterion_args'] = spec['criterion_args'] or {}
        return spec, read_state_dict(obj['model'])[0]
    try:
        weights, _ = read_state_dict(obj)  # a state dict (also under 'model' / 'state_dict')
    except UserError:
        raise UserError(f'{path} holds no model weights (a name -> tensor mapping): not a checkpoint of '
                        'this project or upstream\'s') from None
    if config_path is None:
        beside = os.path.join(os.path.dirname(os.path.abspath(path)), 'config.yaml')
        if not os.path.isfile(beside):
            raise UserError(f'{path} holds weights only (no layout, model or class names): give --config '
                            'with the config it was trained with')
        config_path = beside
    return spec_from_config(config_path, entry), weights


def spec_from_config(path, entry):
    """A stream's spec from a run config (this project's config.yaml, or upstream's yaml);
    `entry` the entry script's defaults: its feeder and criterion_args (e.g. its label set)."""
    from torchlight.checkpoint import upgraded_settings
    from torchlight.cli import CRITERION_ALIASES
    try:
        with open(path, encoding='utf-8') as f:
            config = yaml.safe_load(f)
    except OSError as e:
        raise UserError(f'--config: cannot read {path}: {e.strerror}') from None
    except yaml.YAMLError as e:
        raise UserError(f'--config: {path} is not valid YAML ({str(e).splitlines()[0]})') from None
    if not isinstance(config, dict) or 'model' not in config:
        raise UserError(f'--config: {path} names no model (expected a run config with model: and model_args:)')
    config = upgraded_settings(config, {'criterion_args': {}})
    aliases = {key: config[key] for key in CRITERION_ALIASES if config.get(key) is not None}
    return {
        'model_class': config['model'], 'model_args': config.get('model_args') or {},
        'feeder': config.get('feeder') or entry['feeder'],
        'test_feeder_args': config.get('test_feeder_args') or {},
        'criterion': config.get('criterion') or 'text.criterion.build',
        'criterion_args': {**(entry.get('criterion_args') or {}), **aliases, **(config.get('criterion_args') or {})},
        'class_names': None,
    }


def stream_modality(input_modality, model):
    """The stream a model is in an ensemble: its input's modality, made bone where the model
    computes bones from joints itself (its part lists are the bone ones: upstream's *_bone models)."""
    from feeders.modality import flags, from_flags
    bone, motion = flags(input_modality)
    return from_flags(bone or getattr(model, 'representation', 'joint') == 'bone', motion)


def fusion_weights(streams):
    """One weight per stream: the ensemble's for this set of modalities (ensemble.py)."""
    from ensemble import STREAMS, choose_weights
    first = streams[0]
    for other in streams[1:]:
        if (other.layout, other.names) != (first.layout, first.names):
            raise UserError(f'streams of different datasets cannot be fused: {first.describe()} and '
                            f'{other.describe()}')
    modalities = [s.modality for s in streams]
    if len(set(modalities)) != len(modalities):
        raise UserError(f'two --weights of one modality ({", ".join(modalities)}): fuse one stream per modality')
    order = sorted(range(len(streams)), key=lambda i: STREAMS.index(modalities[i]))
    weights = choose_weights([modalities[i] for i in order])
    fused = [0.0] * len(streams)
    for i, w in zip(order, weights):
        fused[i] = w
    return fused


# ------------------------------------------------------------------------------------- running

def predict(streams, clips, weights, device, precision=None, batch_size=64):
    """Yield (clip, probabilities (num_class,) float64) for every clip, in order."""
    dtype = autocast_dtype(precision, device)
    for start in range(0, len(clips), batch_size):
        chunk = clips[start:start + batch_size]
        fused = None
        for stream, w in zip(streams, weights):
            x = torch.from_numpy(np.stack([stream.view(c) for c in chunk])).to(device)
            with torch.inference_mode(), autocast(device, dtype):
                output = stream.model(x)
            logits = output[0] if isinstance(output, (tuple, list)) else output  # GAP: (logits, ...)
            scores = w * logits.double().cpu().numpy()
            fused = scores if fused is None else fused + scores
        fused -= fused.max(axis=1, keepdims=True)
        probs = np.exp(fused)
        probs /= probs.sum(axis=1, keepdims=True)
        yield from zip(chunk, probs)


def record(clip, probs, names, k=TOP_K):
    top = np.argsort(-probs, kind='stable')[:k]
    return {'input': clip.name, 'top1': int(top[0]),
            'classes': [[int(i), names[i], round(float(probs[i]), 6)] for i in top]}


def line(rec):
    return f'{rec["input"]}: ' + ', '.join(f'{name} {p:.3f}' for _, name, p in rec['classes'])


def main(argv, *, feeder, criterion_args=None, prog=None, out=sys.stdout):
    """Predict for the entry script's dataset (its feeder and criterion_args fill what a
    weights-only checkpoint's config leaves out). Returns 0; bad input raises UserError."""
    from feeders.clips import read_clips  # the skeleton side: readers by file suffix
    arg = get_parser(prog).parse_args(argv)
    if arg.test_batch_size < 1:
        raise UserError(f'--test-batch-size must be >= 1, got {arg.test_batch_size}')
    if arg.device is None:
        device = torch.device('cuda', 0) if torch.cuda.is_available() else torch.device('cpu')
    else:
        device, _ = resolve_device(arg.device, warn=lambda m: print(f'warning: {m}', file=sys.stderr))
    if device.type == 'cpu':
        keep_cpu_memory_in_heap()  # as the trainer: NTU batches of 64 ran 2.3x slower per clip without
    if arg.output:
        folder = os.path.dirname(os.path.abspath(arg.output))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise UserError(f'--output: cannot write {arg.output}: its folder is missing or read-only')
    entry = {'feeder': feeder, 'criterion_args': criterion_args or {}}
    streams = []
    for path in arg.weights:
        spec, weights = stream_spec(path, load_checkpoint(path), arg.config, entry)
        streams.append(Stream(path, spec, weights, device))
    weights = fusion_weights(streams)
    layout = streams[0].view.layout
    clips = [clip for path in arg.input for clip in read_clips(path, layout, arg.split)]
    if not clips:
        raise UserError(f'no clips in {", ".join(arg.input)}' + (f' (split {arg.split})' if arg.split else ''))
    records = []
    for clip, probs in predict(streams, clips, weights, device, arg.precision, arg.test_batch_size):
        records.append(record(clip, probs, streams[0].names))
        print(line(records[-1]), file=out, flush=True)
    if arg.output:
        io.save_json_lines(arg.output, records, sort_keys=False)  # input, top1, classes
    return 0
