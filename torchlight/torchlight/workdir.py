"""The work dir's policy: its file names, when training may write into it, what --overwrite removes."""
import glob
import json
import os
import re
import shlex
import shutil
import sys
import tempfile

import yaml

from torchlight import io
from torchlight.errors import UserError

LAST = 'last.pt'
METRICS = 'metrics.jsonl'
CONFIG = 'config.yaml'
CHECKPOINT_RE = re.compile(r'runs-(\d+)-(\d+)\.pt$')
# Flags about this invocation, not settings of the run: kept out of the saved config.yaml, so that
# `--config <work_dir>/config.yaml` (upstream's test recipe) never resumes or wipes by itself.
NOT_SAVED = ('resume', 'overwrite')
# The trainer's own outputs: all that --overwrite may remove (never the folder or other files).
OUTPUTS = ('runs-*.pt', 'runs-*_wrong.txt', 'runs-*_right.txt', 'epoch*_test_score.pkl',
           'epoch*_test_score.json', 'epoch*_test_each_class_acc.csv', 'epoch*_confusion.png',
           'learning_curves.png', 'provenance.json', LAST, METRICS, 'log.txt', CONFIG)


def plain(value):
    """Tuples -> lists, recursively, so yaml.safe_dump can write any parsed literal."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def settings(arg):
    """The run's settings as config.yaml and last.pt record them."""
    return {k: plain(v) for k, v in vars(arg).items() if k not in NOT_SAVED}


def step_of(checkpoint_path):
    """The global step in a runs-E-S.pt name, or None."""
    match = CHECKPOINT_RE.search(os.path.basename(str(checkpoint_path)))
    return int(match.group(2)) if match else None


class WorkDir:
    def __init__(self, path):
        self.path = path
        self.runs = os.path.join(path, 'runs')  # upstream's model_saved_name: checkpoint prefix, tensorboard
        self.last = os.path.join(path, LAST)
        self.metrics = os.path.join(path, METRICS)
        self.config = os.path.join(path, CONFIG)

    def file(self, name):
        return os.path.join(self.path, name)

    def checkpoint(self, epoch, step):
        return f'{self.runs}-{epoch}-{step}.pt'

    def checkpoints(self):
        names = glob.glob(os.path.join(glob.escape(self.path), 'runs-*.pt'))
        return sorted(n for n in names if CHECKPOINT_RE.search(os.path.basename(n)))

    def find_checkpoint(self, epoch):
        for path in self.checkpoints():
            if int(CHECKPOINT_RE.search(os.path.basename(path)).group(1)) == epoch:
                return path
        return None

    def opened_by(self, job):
        """Whether provenance.json says torchrun job `job` opened this work dir."""
        try:
            with open(self.file('provenance.json'), encoding='utf-8') as f:
                return (json.load(f).get('torchrun') or {}).get('run_id') == job
        except (OSError, ValueError, AttributeError):
            return False

    def check_train(self, resume, overwrite, job=None, log=print):
        """Refuse to train into a work dir holding checkpoints unless told what to do with them;
        returns (resume, overwrite). `job`: the torchrun job whose failed workers were restarted
        (--max-restarts); when that job's own first attempt opened this work dir, its last.pt is
        resumed, or, none written yet, its outputs are started over."""
        if job is not None and not resume and self.opened_by(job):
            if os.path.isfile(self.last):
                log(f'torchrun restarted the workers: resuming from {self.last}')
                return True, False
            log('torchrun restarted the workers before an epoch was done: starting over')
            return False, True
        if resume and overwrite:
            raise UserError('--resume and --overwrite exclude each other')
        if resume:
            if not os.path.isfile(self.last):
                raise UserError(f'--resume: no {LAST} in {self.path} to resume from')
            return resume, overwrite
        found = ([self.last] if os.path.isfile(self.last) else []) + self.checkpoints()
        if found and not overwrite:
            raise UserError(f'work dir {self.path} already holds checkpoints ({os.path.basename(found[0])}); '
                            f'add --resume to continue it or --overwrite to start over')
        return resume, overwrite

    def check_writable(self):
        """One line now, before any work, when the work dir cannot be written (read-only mount,
        immutable folder, a file in its place); creates nothing that stays."""
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise UserError(f'work dir {self.path} is a file, not a folder')
        folder = self.path
        while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
            folder = os.path.dirname(folder) or '.'
        try:
            tempfile.TemporaryDirectory(dir=folder, prefix='.gap-write-check-').cleanup()
        except OSError as e:
            raise UserError(f'work dir {self.path}: cannot write in {folder} ({e.strerror})') from None

    def remove_leftovers(self, log):
        """Temporary files of a write a killed process never finished (the target file is intact)."""
        leftovers = io.leftover_temporaries(self.path)
        for path in leftovers:
            os.remove(path)
        if leftovers:
            log(f'Removed {len(leftovers)} unfinished temporary file(s) of an interrupted write: '
                + ', '.join(os.path.basename(p) for p in leftovers))

    def ensure_checkpoint(self, epoch, step, state):
        """The runs-<epoch>-*.pt file, written now from state() when the save rules skipped it."""
        path = self.find_checkpoint(epoch)
        if path is None:
            path = self.checkpoint(epoch, step)
            io.save_torch(path, state())
        return path

    def open(self, arg, log, provenance, writers, metrics):
        """Make the work dir ready for a run's outputs: --overwrite's removal, config.yaml, log.txt,
        and for training provenance.json (from provenance()), the tensorboard writers and, resuming,
        the metrics of the epochs done. Returns (writers, metrics)."""
        if arg.phase == 'train' and arg.overwrite:
            removed = self.remove_outputs()
            if removed:
                log(f'--overwrite: removed {removed} previous outputs in {self.path}')
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError as e:
            raise io.WriteError(f'cannot create work dir {self.path}: {e.strerror}') from None
        self.write_config(arg, keep_existing=arg.phase != 'train')
        log.attach(self.path)
        if arg.phase == 'train':
            self.remove_leftovers(log)
        if arg.phase == 'train':
            io.save_text(self.file('provenance.json'), json.dumps(provenance(), indent=1) + '\n')
            from tensorboardX import SummaryWriter
            writers = {name: SummaryWriter(os.path.join(self.runs, name), name) for name in ('train', 'val')}
            if arg.resume:
                metrics = [m for m in io.read_json_lines(self.metrics) if m['epoch'] <= arg.start_epoch]
        return writers, metrics

    def remove_outputs(self):
        """--overwrite: remove this trainer's own outputs only; returns how many went."""
        removed = 0
        for pattern in OUTPUTS + ('.*' + io.TMP_SUFFIX,):
            for path in glob.glob(os.path.join(glob.escape(self.path), pattern)):
                os.remove(path)
                removed += 1
        if os.path.isdir(self.runs):
            shutil.rmtree(self.runs)
            removed += 1
        return removed

    def write_config(self, arg, keep_existing):
        """config.yaml with the command line on top; a test run beside a training run keeps that
        run's config.yaml (keep_existing; upstream overwrote it)."""
        if keep_existing and os.path.exists(self.config):
            return
        io.save_text(self.config, f'# command line: {shlex.join(sys.argv)}\n\n'
                     + yaml.safe_dump(settings(arg), sort_keys=False, default_flow_style=None))
