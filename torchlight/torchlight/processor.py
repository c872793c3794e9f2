"""The one trainer behind main_multipart_ntu.py and main_multipart_ucla.py.

It knows nothing about skeletons or text: the model, the feeder and the criterion come in as class
paths (config or flags). The criterion turns the model's output into named losses; the loop
back-propagates 'loss' and sums, logs and checkpoints every name it gets. Files and their names
are the work dir's (workdir.py), the run state checkpoint.py's, scoring evaluation.py's and the
output files outputs.py's. Log lines follow upstream's (CTR-GCN/GAP) so their tools keep working.
"""
import json
import os
import sys
import time

import torch
import yaml
from tqdm import tqdm

from torchlight import assemble, io, outputs, provenance, rng
from torchlight.checkpoint import load_run_state, load_weights, save_run_state
from torchlight.device import autocast, autocast_dtype, configure_backends, keep_cpu_memory_in_heap, resolve_device
from torchlight.errors import UserError
from torchlight.evaluation import evaluate, summarize
from torchlight.importing import build, import_class
from torchlight.meter import StepMeter
from torchlight.logging import Logger
from torchlight.schedule import apply_learning_rate, learning_rate
from torchlight.workdir import WorkDir, settings, step_of


class Processor:
    """Train (`--phase train`) or evaluate a checkpoint (`--phase test`), upstream style."""

    def __init__(self, arg, log=None):
        self.arg = arg
        self.log = log or Logger(arg.print_log)
        self.work = WorkDir(arg.work_dir)
        arg.model_saved_name = self.work.runs
        self.writers = {}
        self.global_step = 0
        self.best_acc, self.best_epoch, self.best_step, self.best_state = 0.0, None, 0, None
        self.last_acc, self.last_epoch = None, None
        self.metrics = []
        self.resume_state = None

    # ------------------------------------------------------------------ set-up (writes nothing)
    def prepare(self):
        arg = self.arg
        training = arg.phase in ('train', 'benchmark')  # a benchmark times training steps
        if arg.phase == 'test' and not arg.weights:
            raise UserError('--phase test needs --weights <checkpoint.pt>')
        if arg.weights and not os.path.isfile(arg.weights):
            raise UserError(f'--weights: file not found: {arg.weights}')
        if not arg.model:
            raise UserError('no model: give --model or a model: line in the config')
        if arg.optimizer not in ('SGD', 'Adam'):
            raise UserError(f'--optimizer: expected SGD or Adam, got {arg.optimizer!r}')
        if arg.phase == 'train':
            self.work.check_train(arg.resume, arg.overwrite)
        rng.seed_everything(arg.seed)
        self.device, self.gpus = resolve_device(arg.device, warn=self.log.warning)
        if self.device.type == 'cpu':
            keep_cpu_memory_in_heap()
        configure_backends(self.device, arg.deterministic)
        self.amp_dtype = autocast_dtype(arg.precision, self.device)
        self.loaders = assemble.data_loaders(arg, self.device, self.log)
        self.load_model()
        self.criterion = import_class(arg.criterion)(
            model=self.model_core, dataset=self.loaders['test'].dataset, arg=arg, device=self.device,
            log=self.log, training=training)
        self.log(f'Criterion: {self.criterion.description}')
        if training:
            self.optimizer = assemble.optimizer(arg, self.model_core, self.criterion)
            # fp16 gradients need loss scaling; bf16 has fp32's range and needs none
            self.scaler = torch.amp.GradScaler('cuda', enabled=self.amp_dtype == torch.float16)
            if arg.resume and arg.phase == 'train':
                self.load_resume_state()

    def load_model(self):
        arg = self.arg
        model = build(arg.model, dict(arg.model_args), 'model_args')
        self.num_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        if arg.weights:
            load_weights(model, arg.weights, ignore_weights=arg.ignore_weights or (), log=self.log)
            self.log(f'Load weights from {arg.weights}.')
            if arg.phase == 'train' and step_of(arg.weights) is not None:
                self.global_step = step_of(arg.weights)  # upstream continues the step count of runs-E-S.pt
        self.model_core = model.to(self.device)  # never wrapped: its keys carry no `module.` prefix
        self.model = model
        if len(self.gpus) > 1:
            self.model = torch.nn.DataParallel(model, device_ids=self.gpus, output_device=self.gpus[0])
        if arg.compile:  # the compiled wrapper runs the steps; model_core keeps the plain state-dict names
            self.model = torch.compile(self.model)

    def load_resume_state(self):
        state = load_run_state(self.work.last)
        try:
            self.model_core.load_state_dict(state['model'])
            self.optimizer.load_state_dict(state['optimizer'])
            self.criterion.load_state_dict(state['criterion'])
        except (RuntimeError, KeyError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f'--resume: {self.work.last} does not fit this model/optimizer/criterion ({first})') from None
        if state.get('scaler'):
            self.scaler.load_state_dict(state['scaler'])
        self.arg.start_epoch = state['epoch']
        self.global_step = state['global_step']
        self.best_acc, self.best_epoch = state['best_acc'], state['best_epoch']
        self.best_step, self.best_state = state['best_step'], state['best_model']
        self.last_acc, self.last_epoch = state['last_acc'], state['last_epoch']
        self.resume_state = state  # RNG states are restored right before the first resumed epoch
        self.log(f'Resume from {self.work.last}: {state["epoch"]} epochs done, best accuracy {self.best_acc:.4f}.')

    # ------------------------------------------------------------------ outputs
    def open_work_dir(self):
        arg = self.arg
        if arg.phase == 'train' and arg.overwrite:
            removed = self.work.remove_outputs()
            if removed:
                self.log(f'--overwrite: removed {removed} previous outputs in {self.work.path}')
        os.makedirs(self.work.path, exist_ok=True)
        self.work.write_config(arg, keep_existing=arg.phase != 'train')
        self.log.attach(self.work.path)
        if arg.phase == 'train':
            io.save_text(self.work.file('provenance.json'), json.dumps(provenance.record(
                arg, self.criterion, self.device, os.path.dirname(os.path.abspath(sys.argv[0]))), indent=1) + '\n')
            from tensorboardX import SummaryWriter
            self.writers = {name: SummaryWriter(os.path.join(self.work.runs, name), name)
                            for name in ('train', 'val')}
            if arg.resume:
                self.metrics = [m for m in io.read_json_lines(self.work.metrics) if m['epoch'] <= arg.start_epoch]

    def cpu_state(self):
        return {k: v.detach().cpu().clone() for k, v in self.model_core.state_dict().items()}

    def save_last(self, epoch):
        save_run_state(self.work.last, {
            'args': settings(self.arg), 'epoch': epoch, 'global_step': self.global_step,
            'model': self.cpu_state(), 'optimizer': self.optimizer.state_dict(),
            'scaler': self.scaler.state_dict(), 'criterion': self.criterion.state_dict(),
            'best_acc': self.best_acc, 'best_epoch': self.best_epoch, 'best_step': self.best_step,
            'best_model': self.best_state, 'last_acc': self.last_acc, 'last_epoch': self.last_epoch,
            'rng': rng.rng_state()})

    # ------------------------------------------------------------------ training
    def train_epoch(self, epoch):
        arg = self.arg
        self.model.train()
        self.criterion.train()
        lr = apply_learning_rate(self.optimizer, learning_rate(epoch, arg.base_lr, arg.step, arg.lr_decay_rate,
                                                               arg.warm_up_epoch))
        self.log(f'Training epoch: {epoch + 1}')
        rng.reseed_epoch()
        meter = StepMeter(self.writers['train'])
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
            with autocast(self.device, self.amp_dtype):
                output = self.model(data)
                losses = self.criterion(output, label)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(losses['loss']).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            values = {k: v.detach().float() for k, v in losses.items()}
            values['acc'] = (self.criterion.logits(output).detach().argmax(1) == label).float().mean()
            meter.add(self.global_step, values)
            net_time += time.perf_counter() - tick
            batches += 1
            samples += label.numel()
            if arg.log_interval and self.global_step % arg.log_interval == 0:
                meter.flush(lr)
                bar.set_postfix(loss=f'{meter.last["loss"]:.3f}', acc=f'{meter.last["acc"]:.2f}')
                self.log(f'\tStep {self.global_step}: loss {meter.last["loss"]:.4f}, lr {lr:.6f}')
            tick = time.perf_counter()
        meter.flush(lr)
        seconds = time.perf_counter() - start
        mean = meter.means(batches)
        parts = ', '.join(f'{k} {v:.4f}' for k, v in mean.items() if k not in ('loss', 'acc'))
        self.log(f'\tMean training loss: {mean.get("loss", 0.0):.4f}' + (f' ({parts})' if parts else '')
                 + f'.  Mean training acc: {100 * mean.get("acc", 0.0):.2f}%.')
        self.log(f'\tTime consumption: [Data]{100 * data_time / max(seconds, 1e-9):.0f}%, '
                 f'[Network]{100 * net_time / max(seconds, 1e-9):.0f}%; {samples} samples in {seconds:.1f}s '
                 f'({samples / max(seconds, 1e-9):.1f} samples/s)')
        return {'lr': lr, **{f'train_{k}': v for k, v in mean.items()},
                'train_samples_per_s': samples / max(seconds, 1e-9)}

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, epoch, save_score=False, wrong_stem=None, checkpoint=None, picture=False):
        """Upstream's eval: loss and Top-k lines, per-class csv, optional score pickle (with its
        record) and wrong/right files. `epoch` is 0-based as upstream's (file names say epoch + 1)."""
        feeder = self.loaders['test'].dataset
        ev = evaluate(self.model, self.loaders['test'], self.criterion, self.device,
                      autocast(self.device, self.amp_dtype))
        result = summarize(ev, feeder, self.arg.show_topk)
        n = len(ev.scores)
        self.log(f'\tMean test loss of {ev.batches} batches: {ev.loss:.4f}; '
                 f'{n} samples in {ev.seconds:.1f}s ({n / max(ev.seconds, 1e-9):.1f} samples/s).')
        for k, value in result['topk'].items():
            self.log(f'\tTop{k}: {100 * value:.2f}%')
        for name in ev.extra:
            self.log(f'\tTop1 by nearest class {name} embedding: {100 * result[f"{name}_top1"]:.2f}%')
        if save_score:
            outputs.write_scores(self.work.path, epoch + 1, feeder, ev, {
                'checkpoint': checkpoint, 'epoch': epoch + 1 if checkpoint is None else None,
                'accuracy': result['acc'], 'topk': result['topk'], 'work_dir': self.work.path})
        result['confusion'] = outputs.write_class_accuracy(self.work.path, epoch + 1, ev)
        result['evaluation'] = ev
        if wrong_stem:
            outputs.write_wrong_right(wrong_stem, ev)
        if picture:
            outputs.write_confusion_picture(self.log, self.work.path, epoch + 1, feeder, ev,
                                            os.path.basename(checkpoint or self.work.path))
        return result

    # ------------------------------------------------------------------ phases
    def run(self):
        self.prepare()
        if self.arg.phase == 'benchmark':  # measures, writes nothing into the work dir
            from torchlight.benchmark import run_benchmark
            return run_benchmark(self)
        self.open_work_dir()
        if self.arg.phase == 'train':
            self.train()
        else:
            self.test()

    def train(self):
        arg = self.arg
        self.log(f'Parameters:\n{yaml.safe_dump(settings(arg), sort_keys=False, default_flow_style=None)}',
                 print_time=False)
        self.log(f'# Parameters: {self.num_params}; device: {self.device}'
                 + (f' (DataParallel over GPUs {self.gpus})' if len(self.gpus) > 1 else '')
                 + (f', autocast {self.amp_dtype}' if self.amp_dtype is not None else ''))
        if self.resume_state is not None:
            rng.restore_rng_state(self.resume_state['rng'])
            self.resume_state = None
        try:
            for epoch in range(arg.start_epoch, arg.num_epoch):
                self.train_and_evaluate(epoch)
        finally:
            for writer in self.writers.values():
                writer.close()
        outputs.write_learning_curves(self.log, self.work.path, self.metrics)
        self.retest_best()

    def train_and_evaluate(self, epoch):
        arg = self.arg
        last = epoch + 1 == arg.num_epoch
        save_model = ((epoch + 1) % arg.save_interval == 0 or last) and epoch + 1 > arg.save_epoch
        record = {'epoch': epoch + 1, 'global_step': None}
        record.update(self.train_epoch(epoch))
        if save_model:
            io.save_torch(self.work.checkpoint(epoch + 1, self.global_step), self.cpu_state())
        if last or (arg.eval_interval > 0 and (epoch + 1) % arg.eval_interval == 0):
            self.log(f'Eval epoch: {epoch + 1}')
            result = self.evaluate(epoch, save_score=arg.save_score)
            self.writers['val'].add_scalar('loss', result['loss'], self.global_step)
            self.writers['val'].add_scalar('acc', result['acc'], self.global_step)
            self.last_acc, self.last_epoch = result['acc'], epoch + 1
            if result['acc'] > self.best_acc:
                self.best_acc, self.best_epoch, self.best_step = result['acc'], epoch + 1, self.global_step
                self.best_state = None if save_model else self.cpu_state()
            record.update(test_loss=result['loss'], **{f'test_top{k}': v for k, v in result['topk'].items()},
                          **{f'test_{k}': v for k, v in result.items() if k.endswith('_top1')})
        record['global_step'] = self.global_step
        self.metrics.append(record)
        io.save_json_lines(self.work.metrics, self.metrics)
        self.save_last(epoch + 1)

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
        path = self.work.find_checkpoint(epoch)
        if path is None:  # not saved under the save-interval/save-epoch rules: write it now
            path = self.work.checkpoint(epoch, step)
            io.save_torch(path, state if state is not None else self.cpu_state())
        self.model_core.load_state_dict(torch.load(path, map_location=self.device, weights_only=True))
        self.log(f'Re-testing the best model: {path}')
        self.evaluate(0, save_score=True, wrong_stem=path[:-len('.pt')], checkpoint=path, picture=True)
        summary = [f'Best accuracy: {self.best_acc}', f'Epoch number: {self.best_epoch}']
        if self.last_epoch is not None:
            summary.append(f'Last evaluated epoch: {self.last_epoch}, accuracy: {self.last_acc}')
        summary += [f'Model name: {self.work.path}', f'Model total number of params: {self.num_params}',
                    f'Weight decay: {arg.weight_decay}', f'Base LR: {arg.base_lr}', f'Batch Size: {arg.batch_size}',
                    f'Test Batch Size: {arg.test_batch_size}', f'seed: {arg.seed}']
        for line in summary:
            self.log(line)
        if self.criterion.warning:
            self.log.warning(self.criterion.warning)

    def test(self):
        arg = self.arg
        weights = arg.weights
        self.log(f'Model:   {arg.model}.')
        self.log(f'Weights: {weights}.')
        self.evaluate(0, save_score=arg.save_score, checkpoint=os.path.abspath(weights), picture=True,
                      wrong_stem=weights[:-len('.pt')] if weights.endswith('.pt') else weights)
        self.log('Done.\n')
