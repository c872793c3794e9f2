"""The one trainer behind main_multipart_ntu.py and main_multipart_ucla.py.

It knows nothing about skeletons or text: the model class, the feeder class and a factory for the
text supervision come in as arguments (class paths from the config, the factory from the entry
script). Output names and log lines follow upstream's (CTR-GCN/GAP) so their tools keep working.
"""
import contextlib
import glob
import os
import re
import shlex
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch.utils.data import DataLoader
from tqdm import tqdm

from torchlight import io, rng
from torchlight.device import keep_cpu_memory_in_heap, resolve_device
from torchlight.errors import UserError
from torchlight.importing import import_class
from torchlight.logging import Logger
from torchlight.metrics import confusion_matrix
from torchlight.schedule import apply_learning_rate, learning_rate

LAST = 'last.pt'
METRICS = 'metrics.jsonl'
CHECKPOINT_RE = re.compile(r'runs-(\d+)-(\d+)\.pt$')
# Flags about this invocation, not settings of the run: kept out of the saved config.yaml, so that
# `--config <work_dir>/config.yaml` (upstream's test recipe) never resumes or wipes by itself.
NOT_SAVED = ('resume', 'overwrite')


def plain(value):
    """Tuples -> lists, recursively, so yaml.safe_dump can write any parsed literal."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def _build(cls_path, kwargs, what):
    cls = import_class(cls_path)
    try:
        return cls(**kwargs)
    except TypeError as e:
        if 'argument' in str(e):  # a wrong keyword in the config, not a bug inside the class
            raise UserError(f'{what} {cls_path}: {e}') from None
        raise


class Processor:
    """Train (`--phase train`) or evaluate a checkpoint (`--phase test`), upstream style.

    text_supervision: callable(num_class=, encoder_name=, weights=, device=, te_lr_ratio=, seed=,
    text_dir=, log=) -> object with .loss(logits, labels, global_feat, part_feats, logit_scale, alpha) ->
    (total, ce, text), .parameters(), .train(), .eval(); used by GAP models.
    score_keys: 'name' keys score pickles by the feeder's sample_name, 'index' by 0..N-1 (NW-UCLA).
    """

    def __init__(self, arg, text_supervision=None, score_keys='name', log=None):
        self.arg = arg
        self.text_supervision_factory = text_supervision
        self.score_keys = score_keys
        self.log = log or Logger(arg.print_log)
        self.work_dir = arg.work_dir
        arg.model_saved_name = os.path.join(arg.work_dir, 'runs')
        self.supervision = None
        self.writers = {}
        self.global_step = 0
        self.best_acc, self.best_epoch, self.best_step, self.best_state = 0.0, None, 0, None
        self.last_acc, self.last_epoch = None, None
        self.metrics = []
        self.resume_state = None

    # ------------------------------------------------------------------ set-up (writes nothing)
    def prepare(self):
        arg = self.arg
        if arg.phase == 'test' and not arg.weights:
            raise UserError('--phase test needs --weights <checkpoint.pt>')
        if arg.weights and not os.path.isfile(arg.weights):
            raise UserError(f'--weights: file not found: {arg.weights}')
        if not arg.model:
            raise UserError('no model: give --model or a model: line in the config')
        if arg.optimizer not in ('SGD', 'Adam'):
            raise UserError(f'--optimizer: expected SGD or Adam, got {arg.optimizer!r}')
        if arg.phase == 'train':
            self.check_work_dir()
        rng.seed_everything(arg.seed)
        self.device, self.gpus = resolve_device(arg.device, warn=self.log.warning)
        if self.device.type == 'cpu':
            keep_cpu_memory_in_heap()
        self.amp = self.device.type == 'cuda'
        self.load_data()
        self.load_model()
        if arg.phase == 'train':
            self.load_supervision()
            self.load_optimizer()
            if arg.resume:
                self.load_resume_state()

    def check_work_dir(self):
        """Refuse to train into a work dir holding checkpoints unless told what to do with them."""
        arg = self.arg
        if arg.resume and arg.overwrite:
            raise UserError('--resume and --overwrite exclude each other')
        last = os.path.join(self.work_dir, LAST)
        if arg.resume:
            if not os.path.isfile(last):
                raise UserError(f'--resume: no {LAST} in {self.work_dir} to resume from')
            return
        found = self.existing_checkpoints()
        if found and not arg.overwrite:
            raise UserError(f'work dir {self.work_dir} already holds checkpoints ({os.path.basename(found[0])}); '
                            f'add --resume to continue it or --overwrite to start over')

    def existing_checkpoints(self):
        names = glob.glob(os.path.join(glob.escape(self.work_dir), 'runs-*.pt'))
        names = [n for n in names if CHECKPOINT_RE.search(os.path.basename(n))]
        last = os.path.join(self.work_dir, LAST)
        return ([last] if os.path.isfile(last) else []) + sorted(names)

    def load_data(self):
        arg = self.arg
        workers = min(arg.num_worker, os.cpu_count() or 1)
        if workers < arg.num_worker:
            self.log(f'num_worker {arg.num_worker} > {workers} CPUs: using {workers} DataLoader workers')
        common = dict(num_workers=workers, worker_init_fn=rng.worker_init_fn, pin_memory=self.device.type == 'cuda')
        self.loaders = {}
        if arg.phase == 'train':
            train = _build(arg.feeder, dict(arg.train_feeder_args), 'train feeder')
            if len(train) == 0:
                raise UserError(f'train feeder {arg.feeder}: no samples ({arg.train_feeder_args})')
            # upstream drops the last partial batch; with fewer samples than a batch keep the one batch
            drop_last = len(train) >= arg.batch_size
            self.loaders['train'] = DataLoader(train, batch_size=arg.batch_size, shuffle=True,
                                               drop_last=drop_last, **common)
        test = _build(arg.feeder, dict(arg.test_feeder_args), 'test feeder')
        if len(test) == 0:
            raise UserError(f'test feeder {arg.feeder}: no samples ({arg.test_feeder_args})')
        self.loaders['test'] = DataLoader(test, batch_size=arg.test_batch_size, shuffle=False,
                                          drop_last=False, **common)

    def load_model(self):
        arg = self.arg
        model = _build(arg.model, dict(arg.model_args), 'model')
        self.num_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        self.is_gap = hasattr(model, 'text_width')
        self.num_class = model.fc.out_features if hasattr(model, 'fc') else arg.model_args.get('num_class')
        if arg.weights:
            from torchlight.checkpoint import load_weights
            load_weights(model, arg.weights, ignore_weights=arg.ignore_weights or (), log=self.log)
            self.log(f'Load weights from {arg.weights}.')
            match = CHECKPOINT_RE.search(os.path.basename(arg.weights))
            if match and arg.phase == 'train':  # upstream continues the step count of runs-E-S.pt
                self.global_step = int(match.group(2))
        self.model_core = model.to(self.device)
        self.model = model
        if len(self.gpus) > 1:
            self.model = torch.nn.DataParallel(model, device_ids=self.gpus, output_device=self.gpus[0])

    def load_supervision(self):
        arg = self.arg
        if not self.is_gap:
            self.log('Model without text heads: cross-entropy only, no text encoder.')
            return
        heads = list(getattr(self.model_core, 'head', None) or arg.model_args.get('head') or ['ViT-B/32'])
        if len(heads) != 1:
            raise UserError(f'model_args.head: expected one text encoder name, got {heads}')
        self.encoder_name = heads[0]
        if self.text_supervision_factory is None:
            raise UserError(f'{arg.model} needs text supervision, which this entry script does not provide')
        self.supervision = self.text_supervision_factory(
            num_class=self.num_class, encoder_name=self.encoder_name,
            weights=arg.text_encoder_weights, device=self.device, te_lr_ratio=arg.te_lr_ratio,
            seed=arg.seed, text_dir=arg.text_dir, log=self.log)
        self.log(f'Text encoder: {self.supervision.encoder_description}')

    def load_optimizer(self):
        arg = self.arg
        groups = [{'params': list(self.model_core.parameters()), 'lr_scale': 1.0}]
        text_params = list(self.supervision.parameters()) if self.supervision is not None else []
        if text_params:
            groups.append({'params': text_params, 'lr_scale': arg.te_lr_ratio})
        for group in groups:
            group['lr'] = arg.base_lr * group['lr_scale']
        if arg.optimizer == 'SGD':
            self.optimizer = torch.optim.SGD(groups, lr=arg.base_lr, momentum=0.9, nesterov=arg.nesterov,
                                             weight_decay=arg.weight_decay)
        else:
            self.optimizer = torch.optim.Adam(groups, lr=arg.base_lr, weight_decay=arg.weight_decay)
        self.scaler = torch.amp.GradScaler('cuda', enabled=self.amp)

    def load_resume_state(self):
        path = os.path.join(self.work_dir, LAST)
        try:
            state = torch.load(path, map_location='cpu', weights_only=True)
            self.model_core.load_state_dict(state['model'])
            self.optimizer.load_state_dict(state['optimizer'])
        except (RuntimeError, KeyError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f'--resume: {path} does not fit this model/optimizer ({first})') from None
        if state.get('scaler'):
            self.scaler.load_state_dict(state['scaler'])
        if state.get('text_encoder'):
            with torch.no_grad():
                for p, saved in zip(self.supervision.parameters(), state['text_encoder']):
                    p.copy_(saved)
        if state.get('text_rng') is not None and self.text_generator() is not None:
            self.text_generator().set_state(state['text_rng'])
        self.arg.start_epoch = state['epoch']
        self.global_step = state['global_step']
        self.best_acc, self.best_epoch = state['best_acc'], state['best_epoch']
        self.best_step, self.best_state = state['best_step'], state.get('best_model')
        self.last_acc, self.last_epoch = state.get('last_acc'), state.get('last_epoch')
        self.resume_state = state  # RNG states are restored right before the first resumed epoch
        self.log(f'Resume from {path}: {state["epoch"]} epochs done, best accuracy {self.best_acc:.4f}.')

    # ------------------------------------------------------------------ outputs
    def open_work_dir(self):
        arg = self.arg
        if arg.phase == 'train' and arg.overwrite:
            self.remove_outputs()
        os.makedirs(self.work_dir, exist_ok=True)
        config_path = os.path.join(self.work_dir, 'config.yaml')
        # a test run beside a training run keeps that run's config.yaml (upstream overwrote it)
        if arg.phase == 'train' or not os.path.exists(config_path):
            settings = {k: plain(v) for k, v in vars(arg).items() if k not in NOT_SAVED}
            io.save_text(config_path, f'# command line: {shlex.join(sys.argv)}\n\n'
                         + yaml.safe_dump(settings, sort_keys=False, default_flow_style=None))
        self.log.attach(self.work_dir)
        if arg.phase == 'train':
            from tensorboardX import SummaryWriter
            self.writers = {name: SummaryWriter(os.path.join(arg.model_saved_name, name), name)
                            for name in ('train', 'val')}
            if arg.resume:
                self.metrics = [m for m in io.read_json_lines(os.path.join(self.work_dir, METRICS))
                                if m['epoch'] <= arg.start_epoch]

    def remove_outputs(self):
        """--overwrite: remove this trainer's own outputs only (never the whole folder)."""
        patterns = ['runs-*.pt', 'runs-*_wrong.txt', 'runs-*_right.txt', 'epoch*_test_score.pkl',
                    'epoch*_test_each_class_acc.csv', LAST, METRICS, 'log.txt', 'config.yaml']
        removed = 0
        for pattern in patterns:
            for path in glob.glob(os.path.join(glob.escape(self.work_dir), pattern)):
                os.remove(path)
                removed += 1
        if os.path.isdir(self.arg.model_saved_name):
            shutil.rmtree(self.arg.model_saved_name)
            removed += 1
        if removed:
            self.log(f'--overwrite: removed {removed} previous outputs in {self.work_dir}')

    def save_checkpoint(self, epoch):
        path = f'{self.arg.model_saved_name}-{epoch}-{self.global_step}.pt'
        io.save_torch(path, self.cpu_state())
        return path

    def text_generator(self):
        """The supervision's own synonym-draw generator, if it keeps one (saved for exact resume)."""
        return getattr(self.supervision, 'generator', None)

    def cpu_state(self):
        # model_core is never wrapped, so keys carry no `module.` prefix
        return {k: v.detach().cpu().clone() for k, v in self.model_core.state_dict().items()}

    def save_last(self, epoch):
        state = {
            'epoch': epoch, 'global_step': self.global_step,
            'model': self.cpu_state(), 'optimizer': self.optimizer.state_dict(),
            'scaler': self.scaler.state_dict(),
            'best_acc': self.best_acc, 'best_epoch': self.best_epoch, 'best_step': self.best_step,
            'best_model': self.best_state, 'last_acc': self.last_acc, 'last_epoch': self.last_epoch,
            'text_encoder': [p.detach().cpu() for p in self.supervision.parameters()] if self.supervision else [],
            'rng': rng.rng_state(),
            'text_rng': self.text_generator().get_state() if self.text_generator() is not None else None,
        }
        io.save_torch(os.path.join(self.work_dir, LAST), state)

    # ------------------------------------------------------------------ training
    def forward_loss(self, data, label):
        out = self.model(data)
        if not isinstance(out, tuple):
            loss = F.cross_entropy(out, label)
            return out, loss, loss, loss.new_zeros(())
        logits, global_feats, logit_scale, parts = out
        total, ce, text = self.supervision.loss(logits, label, global_feats[self.encoder_name], parts,
                                                logit_scale, self.arg.loss_alpha)
        return logits, total, ce, text

    def train_epoch(self, epoch):
        arg = self.arg
        self.model.train()
        if self.supervision is not None:
            self.supervision.train()
        lr = apply_learning_rate(self.optimizer, learning_rate(epoch, arg.base_lr, arg.step, arg.lr_decay_rate,
                                                               arg.warm_up_epoch))
        self.log(f'Training epoch: {epoch + 1}')
        rng.reseed_epoch()
        autocast = torch.amp.autocast('cuda') if self.amp else contextlib.nullcontext()
        sums = {'loss': 0.0, 'ce': 0.0, 'text': 0.0, 'acc': 0.0}
        batches = samples = 0
        data_time = net_time = 0.0
        start = tick = time.perf_counter()
        bar = tqdm(self.loaders['train'], desc=f'train {epoch + 1}', ncols=90, leave=False, file=sys.stderr)
        for data, label, _ in bar:
            self.global_step += 1
            data = data.float().to(self.device, non_blocking=True)
            label = label.long().to(self.device, non_blocking=True)
            data_time += time.perf_counter() - tick
            tick = time.perf_counter()
            with autocast:
                logits, loss, ce, text = self.forward_loss(data, label)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            acc = (logits.detach().argmax(1) == label).float().mean().item()
            loss_v = loss.item()
            net_time += time.perf_counter() - tick
            for key, value in (('loss', loss_v), ('ce', ce.item()), ('text', text.item()), ('acc', acc)):
                sums[key] += value
            batches += 1
            samples += label.numel()
            writer = self.writers['train']
            writer.add_scalar('acc', acc, self.global_step)
            writer.add_scalar('loss', loss_v, self.global_step)
            writer.add_scalar('lr', lr, self.global_step)
            bar.set_postfix(loss=f'{loss_v:.3f}', acc=f'{acc:.2f}')
            if arg.log_interval and self.global_step % arg.log_interval == 0:
                self.log(f'\tStep {self.global_step}: loss {loss_v:.4f}, lr {lr:.6f}')
            tick = time.perf_counter()
        seconds = time.perf_counter() - start
        mean = {k: v / max(batches, 1) for k, v in sums.items()}
        self.log(f'\tMean training loss: {mean["loss"]:.4f} (ce {mean["ce"]:.4f}, text {mean["text"]:.4f}).  '
                 f'Mean training acc: {100 * mean["acc"]:.2f}%.')
        self.log(f'\tTime consumption: [Data]{100 * data_time / max(seconds, 1e-9):.0f}%, '
                 f'[Network]{100 * net_time / max(seconds, 1e-9):.0f}%; {samples} samples in {seconds:.1f}s '
                 f'({samples / max(seconds, 1e-9):.1f} samples/s)')
        return {'lr': lr, 'train_loss': mean['loss'], 'train_ce': mean['ce'], 'train_text': mean['text'],
                'train_acc': mean['acc'], 'train_samples_per_s': samples / max(seconds, 1e-9)}

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, epoch, save_score=False, wrong_file=None, right_file=None):
        """Upstream's eval: loss, Top-k lines, per-class csv, optional score pickle and wrong/right files.

        `epoch` is 0-based as upstream's (file names say epoch + 1).
        """
        self.model.eval()
        feeder = self.loaders['test'].dataset
        scores, labels, preds, indices, losses = [], [], [], [], []
        start = time.perf_counter()
        bar = tqdm(self.loaders['test'], desc=f'eval {epoch + 1}', ncols=90, leave=False, file=sys.stderr)
        for data, label, index in bar:
            data = data.float().to(self.device, non_blocking=True)
            label = label.long().to(self.device, non_blocking=True)
            out = self.model(data)
            logits = (out[0] if isinstance(out, tuple) else out).float()
            losses.append(F.cross_entropy(logits, label).item())
            scores.append(logits.cpu().numpy())
            labels.append(label.cpu().numpy())
            preds.append(logits.argmax(1).cpu().numpy())
            indices.append(np.asarray(index))
        seconds = time.perf_counter() - start
        score = np.concatenate(scores)
        true, pred, index = np.concatenate(labels), np.concatenate(preds), np.concatenate(indices)
        loss = float(np.mean(losses))
        topk = {k: float(feeder.top_k(score, k)) for k in self.arg.show_topk}
        accuracy = float(feeder.top_k(score, 1))
        self.log(f'\tMean test loss of {len(losses)} batches: {loss:.4f}; '
                 f'{len(score)} samples in {seconds:.1f}s ({len(score) / max(seconds, 1e-9):.1f} samples/s).')
        for k, value in topk.items():
            self.log(f'\tTop{k}: {100 * value:.2f}%')
        work = self.work_dir
        if save_score:
            names = range(len(score)) if self.score_keys == 'index' else feeder.sample_name
            io.save_pickle(f'{work}/epoch{epoch + 1}_test_score.pkl', dict(zip(names, score)))
        confusion = confusion_matrix(true, pred)
        with np.errstate(divide='ignore', invalid='ignore'):
            each_acc = np.diag(confusion) / confusion.sum(axis=1)
        io.save_csv(f'{work}/epoch{epoch + 1}_test_each_class_acc.csv', [list(each_acc)] + confusion.tolist())
        if wrong_file:
            io.save_text(wrong_file, ''.join(f'{i},{p},{t}\n' for i, p, t in zip(index, pred, true) if p != t))
        if right_file:
            io.save_text(right_file, ''.join(f'{p},{t}\n' for p, t in zip(pred, true)))
        return {'acc': accuracy, 'loss': loss, 'topk': topk}

    # ------------------------------------------------------------------ phases
    def run(self):
        self.prepare()
        self.open_work_dir()
        if self.arg.phase == 'train':
            self.train()
        else:
            self.test()

    def train(self):
        arg = self.arg
        self.log(f'Parameters:\n{yaml.safe_dump(plain(vars(arg)), sort_keys=False, default_flow_style=None)}',
                 print_time=False)
        self.log(f'# Parameters: {self.num_params}; device: {self.device}'
                 + (f' (DataParallel over GPUs {self.gpus})' if len(self.gpus) > 1 else '')
                 + (', AMP on' if self.amp else ''))
        if self.resume_state is not None:
            rng.restore_rng_state(self.resume_state['rng'])
            self.resume_state = None
        try:
            for epoch in range(arg.start_epoch, arg.num_epoch):
                last = epoch + 1 == arg.num_epoch
                save_model = ((epoch + 1) % arg.save_interval == 0 or last) and epoch + 1 > arg.save_epoch
                record = {'epoch': epoch + 1, 'global_step': None}
                record.update(self.train_epoch(epoch))
                if save_model:
                    self.save_checkpoint(epoch + 1)
                if last or (arg.eval_interval > 0 and (epoch + 1) % arg.eval_interval == 0):
                    self.log(f'Eval epoch: {epoch + 1}')
                    result = self.evaluate(epoch, save_score=arg.save_score)
                    self.writers['val'].add_scalar('loss', result['loss'], self.global_step)
                    self.writers['val'].add_scalar('acc', result['acc'], self.global_step)
                    self.last_acc, self.last_epoch = result['acc'], epoch + 1
                    if result['acc'] > self.best_acc:
                        self.best_acc, self.best_epoch, self.best_step = result['acc'], epoch + 1, self.global_step
                        self.best_state = None if save_model else self.cpu_state()
                    record.update(test_loss=result['loss'], **{f'test_top{k}': v for k, v in result['topk'].items()})
                record['global_step'] = self.global_step
                self.metrics.append(record)
                io.save_json_lines(os.path.join(self.work_dir, METRICS), self.metrics)
                self.save_last(epoch + 1)
        finally:
            for writer in self.writers.values():
                writer.close()
        self.retest_best()

    def retest_best(self):
        """Re-evaluate the best epoch's checkpoint: epoch1_test_score.pkl (ensemble.py's input) and
        the _wrong/_right files. With no epoch above 0% (upstream crashed here) the last one is used."""
        arg = self.arg
        epoch, step, state = self.best_epoch, self.best_step, self.best_state
        if epoch is None:
            if self.last_epoch is None:
                self.log('No epoch was trained or evaluated: nothing to re-test.')
                return
            self.log(f'No epoch beat 0% accuracy: re-testing the last epoch ({self.last_epoch}).')
            epoch, step, state = self.last_epoch, self.global_step, None
        path = self.find_checkpoint(epoch)
        if path is None:  # not saved under the save-interval/save-epoch rules: write it now
            if state is None:
                state = self.cpu_state()
            path = f'{arg.model_saved_name}-{epoch}-{step}.pt'
            io.save_torch(path, state)
        self.model_core.load_state_dict(torch.load(path, map_location=self.device, weights_only=True))
        stem = path[:-len('.pt')]
        self.log(f'Re-testing the best model: {path}')
        self.evaluate(0, save_score=True, wrong_file=stem + '_wrong.txt', right_file=stem + '_right.txt')
        self.log(f'Best accuracy: {self.best_acc}')
        self.log(f'Epoch number: {self.best_epoch}')
        if self.last_epoch is not None:
            self.log(f'Last evaluated epoch: {self.last_epoch}, accuracy: {self.last_acc}')
        self.log(f'Model name: {self.work_dir}')
        self.log(f'Model total number of params: {self.num_params}')
        self.log(f'Weight decay: {arg.weight_decay}')
        self.log(f'Base LR: {arg.base_lr}')
        self.log(f'Batch Size: {arg.batch_size}')
        self.log(f'Test Batch Size: {arg.test_batch_size}')
        self.log(f'seed: {arg.seed}')
        if self.supervision is not None and 'RANDOM' in str(self.supervision.encoder_description):
            self.log.warning(f'the text encoder had RANDOM weights ({self.supervision.encoder_description})')

    def find_checkpoint(self, epoch):
        for path in glob.glob(os.path.join(glob.escape(self.work_dir), f'runs-{epoch}-*.pt')):
            match = CHECKPOINT_RE.search(os.path.basename(path))
            if match and int(match.group(1)) == epoch:
                return path
        return None

    def test(self):
        arg = self.arg
        weights = arg.weights
        stem = weights[:-len('.pt')] if weights.endswith('.pt') else weights
        self.log(f'Model:   {arg.model}.')
        self.log(f'Weights: {weights}.')
        self.evaluate(0, save_score=arg.save_score, wrong_file=stem + '_wrong.txt', right_file=stem + '_right.txt')
        self.log('Done.\n')
