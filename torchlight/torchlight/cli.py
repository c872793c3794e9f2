"""Upstream's command line (every flag, its default) and the entry point shared by both scripts."""
import argparse
import sys

from torchlight.args import ArgumentParser, DictAction, parse_with_config, str2bool
from torchlight.errors import UserError


class DefaultsFormatter(argparse.HelpFormatter):
    """--help shows every flag's default."""

    def _get_help_string(self, action):
        text = action.help or ''
        if action.default is not argparse.SUPPRESS and action.option_strings and '%(default)' not in text:
            text += ' (default: %(default)s)'
        return text


# Upstream's flags (and config keys) for settings of the criterion: each fills its key of
# criterion_args. Beyond this table the trainer knows none of them; the criterion checks them.
CRITERION_ALIASES = {
    'loss_alpha': (float, 'weight of the text loss (upstream: 0.8 NTU, 1.0 NW-UCLA)'),
    'te_lr_ratio': (float, 'text-encoder lr = base-lr x ratio; 0 (the default) keeps it frozen, 1 is upstream'),
    'text_dir': (str, "the run's label set: 'ntu', 'ucla' or a folder of description files (label_names, "
                      "synonyms, sentences, parts .txt, or the paper's files)"),
    'text_encoder_weights': (str, "local text-encoder weights file, or 'random' (tests/benchmarks only)"),
    'text_embeddings': (str, 'a table from text/export_embeddings.py: train without the text encoder package'),
}


class CriterionAlias(argparse.Action):
    """An alias flag on the command line sets its key of criterion_args, over the config's."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.criterion_args = {**(namespace.criterion_args or {}), self.dest: values}


def device_id(value):
    """A GPU index, or 'cpu' to ask for the CPU explicitly."""
    return 'cpu' if str(value).lower() == 'cpu' else int(value)


def get_parser(prog=None, description=None):
    p = ArgumentParser(prog=prog, description=description, formatter_class=DefaultsFormatter)
    p.add_argument('--work-dir', default='./work_dir/temp', help='the work folder for storing results')
    p.add_argument('-model_saved_name', default='', help='set internally to <work_dir>/runs')
    p.add_argument('--config', default=None, help='path to the YAML config (its values are defaults)')
    p.add_argument('--phase', default='train', choices=['train', 'test', 'benchmark', 'predict'],
                   help='train, test (a --weights checkpoint), benchmark (speed and memory, one JSON line) '
                        'or predict (classes of raw clips: --phase predict --help for its flags)')
    p.add_argument('--save-score', type=str2bool, default=False, help='write the classification scores')
    p.add_argument('--seed', type=int, default=1, help='random seed for python, numpy and torch')
    p.add_argument('--log-interval', type=int, default=100, help='log every N iterations')
    p.add_argument('--save-interval', type=int, default=1, help='save a checkpoint every N epochs')
    p.add_argument('--save-epoch', type=int, default=30, help='save checkpoints only after this epoch')
    p.add_argument('--eval-interval', type=int, default=5, help='evaluate every N epochs (and the last)')
    p.add_argument('--print-log', type=str2bool, default=True, help='also write <work_dir>/log.txt')
    p.add_argument('--show-topk', type=int, default=[1, 5], nargs='+', help='which Top-k accuracies to show')
    p.add_argument('--feeder', default=None, help='data loader class path')
    p.add_argument('--num-worker', type=int, default=32, help='DataLoader workers')
    p.add_argument('--train-feeder-args', action=DictAction, default={}, help="k=v,... merged into the config's")
    p.add_argument('--test-feeder-args', action=DictAction, default={}, help="k=v,... merged into the config's")
    p.add_argument('--model', default=None, help='model class path')
    p.add_argument('--model-args', action=DictAction, default={}, help="k=v,... merged into the config's")
    p.add_argument('--weights', default=None, help='checkpoint to initialise (train) or evaluate (test)')
    p.add_argument('--ignore-weights', type=str, default=[], nargs='+',
                   help='drop checkpoint keys containing these substrings')
    p.add_argument('--base-lr', type=float, default=0.001, help='initial learning rate')
    p.add_argument('--step', type=int, default=[20, 40, 60], nargs='+', help='epochs where lr decays')
    p.add_argument('--device', type=device_id, default=[0], nargs='+',
                   help='GPU indices (several: DataParallel); falls back to the CPU without CUDA')
    p.add_argument('--optimizer', default='SGD', help='SGD or Adam')
    p.add_argument('--nesterov', type=str2bool, default=False, help='use Nesterov momentum')
    p.add_argument('--batch-size', type=int, default=256,
                   help='training batch size; under torchrun the global batch, split evenly over the processes')
    p.add_argument('--test-batch-size', type=int, default=256, help='test batch size (under torchrun: global)')
    p.add_argument('--start-epoch', type=int, default=0, help='start training from which epoch')
    p.add_argument('--num-epoch', type=int, default=80, help='stop training at which epoch')
    p.add_argument('--weight-decay', type=float, default=0.01, help='weight decay')
    p.add_argument('--lr-decay-rate', type=float, default=0.1, help='lr multiplier at each step')
    p.add_argument('--warm_up_epoch', type=int, default=0, help='linear warm-up epochs')
    p.add_argument('--criterion', default='text.criterion.build',
                   help='factory of the loss (cross-entropy for plain models, text supervision for GAP)')
    p.add_argument('--criterion-args', action=DictAction, default={},
                   help="k=v,... merged into the config's; the criterion's settings (the flags below fill them)")
    for key, (kind, text) in CRITERION_ALIASES.items():
        p.add_argument('--' + key.replace('_', '-'), dest=key, type=kind, action=CriterionAlias,
                       default=argparse.SUPPRESS, help=f'{text}; sets criterion_args {key} (default: the '
                                                       "config's, else the entry script's)")
    p.add_argument('--precision', default=None, choices=['fp32', 'fp16', 'bf16'],
                   help='autocast precision; None: fp16 on CUDA (upstream AMP), fp32 on the CPU')
    p.add_argument('--deterministic', type=str2bool, default=False,
                   help='deterministic cuDNN kernels instead of autotuned ones')
    p.add_argument('--benchmark-steps', type=int, default=None,
                   help='--phase benchmark: timed steps per arm (None: 20 on CUDA, 10 on the CPU)')
    p.add_argument('--benchmark-warmup', type=int, default=None,
                   help='--phase benchmark: warm-up steps per arm (None: 10 on CUDA, 3 on the CPU)')
    p.add_argument('--compile', type=str2bool, default=False, help='torch.compile the skeleton model')
    p.add_argument('--sync-bn', type=str2bool, default=False,
                   help='under torchrun on GPUs: SyncBatchNorm, statistics over the global batch')
    p.add_argument('--resume', type=str2bool, nargs='?', const=True, default=False,
                   help='continue from <work_dir>/last.pt (model, optimizer, scaler, epoch, best, RNG)')
    p.add_argument('--overwrite', type=str2bool, nargs='?', const=True, default=False,
                   help="remove the work dir's previous outputs and start over")
    return p


def parse_args(argv=None, defaults=None, prog=None, description=None):
    """The run's arguments: the command line over the config over `defaults` (the entry script's;
    its 'criterion_args' are the lowest layer of criterion_args). An alias (CRITERION_ALIASES) in
    the config fills criterion_args where the config's criterion_args leave its key out."""
    parser = get_parser(prog, description)
    defaults = dict(defaults or {})
    entry_criterion_args = defaults.pop('criterion_args', None) or {}
    parser.set_defaults(**defaults)
    arg = parse_with_config(parser, argv)
    # a config may write `device: 0` or `show_topk: 1`; the trainer always sees lists
    for key in ('device', 'show_topk', 'step', 'ignore_weights'):
        value = getattr(arg, key)
        if value is not None and not isinstance(value, (list, tuple)):
            setattr(arg, key, [value])
    for key in ('train_feeder_args', 'test_feeder_args', 'model_args', 'criterion_args'):
        if getattr(arg, key) is None:
            setattr(arg, key, {})
        elif not isinstance(getattr(arg, key), dict):
            raise UserError(f'{key}: expected a mapping, got {getattr(arg, key)!r}')
    aliases = {key: vars(arg).pop(key) for key in CRITERION_ALIASES if key in vars(arg)}  # the config's
    arg.criterion_args = {**entry_criterion_args, **aliases, **arg.criterion_args}
    if not arg.feeder:
        raise UserError('no feeder: give --feeder or a feeder: line in the config')
    return arg


def asked_phase(argv):
    """The --phase on the command line (None when not given)."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument('--phase', default=None)
    return pre.parse_known_args(argv)[0].phase


def main(argv=None, *, feeder, default_config, criterion_args=None, prog=None, description=None):
    """Run the trainer for one dataset (its feeder class path, default config and criterion_args,
    e.g. its label set); a UserError prints `error: <one line>` on stderr and returns 2. Under
    torchrun every process joins the process group first; an error on any rank ends them all
    (rank 0 prints it)."""
    from torchlight import distributed
    from torchlight.processor import Processor
    argv = sys.argv[1:] if argv is None else list(argv)
    if asked_phase(argv) == 'predict':  # its own flags: no config, no data, no work dir
        from torchlight import predict
        try:
            return predict.main(argv, feeder=feeder, criterion_args=criterion_args, prog=prog)
        except UserError as e:
            print(f'error: {e}', file=sys.stderr)
            return 2
    try:
        with distributed.session():
            try:
                defaults = {'feeder': feeder, 'config': default_config, 'criterion_args': criterion_args}
                arg = distributed.check_all(parse_args, argv, defaults,
                                            prog, description)
                Processor(arg).run()
            except distributed.SharedError as e:  # every rank has it: rank 0 says it, then all end
                if distributed.is_main():
                    print(f'error: {e}', file=sys.stderr, flush=True)
                distributed.barrier(timeout=10, quiet=True)
                return 2
    except UserError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('error: interrupted', file=sys.stderr)
        return 130
    return 0
