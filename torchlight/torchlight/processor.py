"""The one trainer behind main_multipart_ntu.py and main_multipart_ucla.py.

It knows nothing about skeletons or text: the model, the feeder and the criterion come in as class
paths (config or flags). The criterion turns the model's output into named losses; the loop
back-propagates 'loss' and sums, logs and checkpoints every name it gets. Files and their names
are the work dir's (workdir.py), the run state checkpoint.py's, scoring evaluation.py's and the
output files outputs.py's. Log lines follow upstream's (CTR-GCN/GAP) so their tools keep working.

Under torchrun (distributed.py) each process trains a DDP replica on its share of the global batch
and scores its part of the test set with rank 0's weights and BatchNorm statistics (the saved
model); rank 0 alone logs and writes files, and decides nothing the others do not: they all compute
the same numbers from the gathered scores. Rank 0's writes are made where all ranks stand together
(on_main), so a failed write (a full disk) ends every rank with its one line.

The run state (last.pt) is written after each epoch's training and again after its evaluation:
a run killed while evaluating resumes with that evaluation, without training the epoch again.
"""
import os
import sys
import time

import torch
import yaml
from tqdm import tqdm

from torchlight import assemble, distributed, io, outputs, provenance, rng
from torchlight.checkpoint import check_resume_settings, load_run_state, load_weights, resume_into, save_run_state
from torchlight.criterion import trained_parameters
from torchlight.device import autocast, autocast_dtype, configure_backends, keep_cpu_memory_in_heap, resolve_device
from torchlight.evaluation import evaluate, summarize
from torchlight.importing import build, import_class
from torchlight.logging import Logger
from torchlight.meter import Diverged, NullWriter, StepMeter, epoch_summary
from torchlight.schedule import apply_learning_rate, learning_rate
from torchlight.step import train_step
from torchlight.workdir import WorkDir, settings, step_of


class Processor:
    """Train (`--phase train`) or evaluate a checkpoint (`--phase test`), upstream style."""

    def __init__(self, arg, log=None):
        self.arg = arg
        self.log = log or Logger(arg.print_log)
        self.work = WorkDir(arg.work_dir)
        arg.model_saved_name = self.work.runs
        self.writers = {'train': NullWriter(), 'val': NullWriter()}  # rank 0's are tensorboard's
        self.global_step = 0
        self.best_acc, self.best_epoch, self.best_step, self.best_state = 0.0, None, 0, None
        self.last_acc, self.last_epoch = None, None
        self.metrics = []
        self.resume_state = None
        self.pending = None  # resuming: the training record of an epoch whose evaluation did not run

    # ------------------------------------------------------------------ set-up (writes nothing)
    def prepare(self):
        """Under torchrun the ranks compare outcomes after each stage, so an error on one ends all;
        rank 0 builds the criterion first (it writes the text-embedding cache the others read)."""
        distributed.check_all(self.prepare_run)
        self.criterion = distributed.main_first(self.build_criterion)
        distributed.check_all(self.prepare_training)
        self.model, self.eval_model = assemble.wrap_model(self.model_core, self.arg, self.device, self.gpus,
                                                          training=self.arg.phase != 'test')
        distributed.broadcast_tensors(self.criterion_params)  # e.g. a fine-tuned text encoder: rank 0's

    def prepare_run(self):
        arg = self.arg
        assemble.check_args(arg)
        if arg.phase in ('train', 'test') and distributed.is_main():
            self.work.check_writable()
        if arg.phase == 'train':  # workers torchrun restarted (--max-restarts) resume from last.pt
            job = distributed.run_id() if distributed.restarted() else None
            arg.resume, arg.overwrite = self.work.check_train(arg.resume, arg.overwrite, job, self.log)
            if arg.resume:  # refuse changed settings before anything is built
                self.resume_state = load_run_state(self.work.last)
                saved = (self.resume_state.get('args') or {}).get('model_args') or {}
                arg.model_args = {**{key: saved[key] for key, _ in assemble.FROM_DATA
                                     if arg.model_args.get(key) is None and key in saved}, **arg.model_args}
                check_resume_settings(self.resume_state.get('args') or {}, settings(arg), self.resume_state['epoch'])
        rng.seed_everything(arg.seed + distributed.rank())  # augmentation differs per rank
        self.device, self.gpus = resolve_device(arg.device, warn=self.log.warning)  # under torchrun: its own
        if self.device.type == 'cpu':
            keep_cpu_memory_in_heap()
        configure_backends(self.device, arg.deterministic)
        self.amp_dtype = autocast_dtype(arg.precision, self.device)
        self.loaders = assemble.data_loaders(arg, self.device, self.log)
        self.load_model()

    def build_criterion(self):
        arg = self.arg
        criterion = import_class(arg.criterion)(
            model=self.model_core, args=dict(arg.criterion_args), seed=arg.seed, device=self.device,
            log=self.log, training=arg.phase != 'test')  # a benchmark times training steps
        if distributed.launched() and hasattr(criterion, 'distribute'):
            criterion.distribute(distributed.gather, distributed.rank())
        return criterion

    def prepare_training(self):
        arg = self.arg
        self.log(f'Criterion: {self.criterion.description}')
        self.criterion_params = trained_parameters(self.criterion)
        if arg.phase != 'test':
            self.optimizer = assemble.optimizer(arg, self.model_core, self.criterion)
            # fp16 gradients need loss scaling; bf16 has fp32's range and needs none
            self.scaler = torch.amp.GradScaler('cuda', enabled=self.amp_dtype == torch.float16)
            if arg.resume and arg.phase == 'train':
                self.load_resume_state()

    def load_model(self):
        arg = self.arg
        # written back: config.yaml, last.pt and exports hold the model as built
        arg.model_args = assemble.model_args_from_data(arg.model, arg.model_args, self.loaders['test'].dataset,
                                                       self.log)
        model = build(arg.model, dict(arg.model_args), 'model_args')
        assemble.check_model_fits(model, self.loaders['test'].dataset)
        self.num_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        if arg.weights:
            load_weights(model, arg.weights, ignore_weights=arg.ignore_weights or (), log=self.log)
            self.log(f'Load weights from {arg.weights}.')
            if arg.phase == 'train' and step_of(arg.weights) is not None:
                self.global_step = step_of(arg.weights)  # upstream continues the step count of runs-E-S.pt
        # never wrapped (assemble.wrap_model wraps it): its keys carry no `module.` prefix
        self.model_core = assemble.sync_batch_norm(model, arg, self.device, self.log).to(self.device)

    def load_resume_state(self):  # every rank reads last.pt
        state = resume_into(self.work.last, self.model_core, self.optimizer, self.criterion, self.scaler,
                            state=self.resume_state)
        self.arg.start_epoch = state['epoch']
        self.pending = state.get('pending')
        self.global_step = state['global_step']
        self.best_acc, self.best_epoch = state['best_acc'], state['best_epoch']
        self.best_step, self.best_state = state['best_step'], state['best_model']
        self.last_acc, self.last_epoch = state['last_acc'], state['last_epoch']
        self.resume_state = state  # RNG states are restored right before the first resumed epoch
        self.log(f'Resume from {self.work.last}: {state["epoch"]} epochs done, best accuracy {self.best_acc:.4f}.')
        if self.pending is not None:
            self.log(f'The previous process stopped while evaluating epoch {state["epoch"]}: '
                     'evaluating it now, without training it again.')
        elif state['epoch'] < self.arg.num_epoch:
            self.log(f'The previous process stopped during epoch {state["epoch"] + 1}: training it again from its start.')

    # ------------------------------------------------------------------ outputs
    def open_work_dir(self):
        """Rank 0's: log.txt, config.yaml, provenance.json, tensorboard (the others write nothing)."""
        if distributed.is_main():
            record = lambda: provenance.record(self.arg, self.criterion, self.device,  # noqa: E731
                                               os.path.dirname(os.path.abspath(sys.argv[0])))
            self.writers, self.metrics = self.work.open(self.arg, self.log, record, self.writers, self.metrics)
            if self.pending is not None:  # its line, if a kill came after it was written, is written again
                self.metrics = [m for m in self.metrics if m['epoch'] < self.pending['epoch']]

    def cpu_state(self):
        return {k: v.detach().cpu().clone() for k, v in self.model_core.state_dict().items()}

    @staticmethod
    def on_main(write):
        """write() on rank 0 while every rank waits: its failure (disk full, ...) ends them all."""
        return distributed.check_all(lambda: write() if distributed.is_main() else None)

    def save_last(self, epoch, pending=None):
        ranks = distributed.all_gather_object(rng.rank_state(getattr(self.criterion, 'generators', list)()))
        self.on_main(lambda: save_run_state(self.work.last, {'pending': pending,
            'args': settings(self.arg), 'epoch': epoch, 'global_step': self.global_step,
            'model': self.cpu_state(), 'optimizer': self.optimizer.state_dict(),
            'scaler': self.scaler.state_dict(), 'criterion': self.criterion.state_dict(),
            'best_acc': self.best_acc, 'best_epoch': self.best_epoch, 'best_step': self.best_step,
            'best_model': self.best_state, 'last_acc': self.last_acc, 'last_epoch': self.last_epoch,
            'rng': rng.rng_state(), **({'rank_rng': ranks} if distributed.launched() else {})}))  # each rank's own RNG

    # ------------------------------------------------------------------ training
    def train_epoch(self, epoch):
        arg = self.arg
        self.model.train()
        self.criterion.train()
        lr = apply_learning_rate(self.optimizer, learning_rate(epoch, arg.base_lr, arg.step, arg.lr_decay_rate,
                                                               arg.warm_up_epoch))
        self.log(f'Training epoch: {epoch + 1}')
        rng.reseed_epoch()
        if hasattr(self.loaders['train'].sampler, 'set_epoch'):
            self.loaders['train'].sampler.set_epoch(epoch)  # DDP: a new permutation, the same on every rank
        meter = StepMeter(self.writers['train'], reduce=distributed.mean,  # logged values: all ranks' mean
                          epoch=epoch + 1, skip_nonfinite=self.scaler.is_enabled())
        batches = samples = 0
        data_time = net_time = 0.0
        start = tick = time.perf_counter()
        bar = tqdm(self.loaders['train'], desc=f'train {epoch + 1}', ncols=90, leave=False, file=sys.stderr,
                   disable=not distributed.is_main())
        for data, label, _ in bar:
            self.global_step += 1
            data = data.float().to(self.device, non_blocking=True)
            label = label.long().to(self.device, non_blocking=True)
            data_time += time.perf_counter() - tick
            tick = time.perf_counter()
            output, losses = train_step(self.model, self.criterion, self.optimizer, self.scaler, self.device,
                                        self.amp_dtype, data, label, self.criterion_params)
            values = {k: v.detach().float() for k, v in losses.items()}
            values['acc'] = (self.criterion.logits(output).detach().argmax(1) == label).float().mean()
            meter.add(self.global_step, values)
            net_time += time.perf_counter() - tick
            batches += 1
            samples += label.numel() * distributed.world_size()
            if arg.log_interval and self.global_step % arg.log_interval == 0:
                meter.flush(lr)
                bar.set_postfix(loss=f'{meter.last["loss"]:.3f}', acc=f'{meter.last["acc"]:.2f}')
                self.log(f'\tStep {self.global_step}: loss {meter.last["loss"]:.4f}, lr {lr:.6f}')
            tick = time.perf_counter()
        meter.flush(lr)
        mean = meter.means()
        seconds = time.perf_counter() - start
        for line in epoch_summary(mean, data_time, net_time, samples, seconds):
            self.log(line)
        if meter.skipped:
            self.log(f'\tThe fp16 gradient scaler skipped {meter.skipped} of {batches} steps (non-finite loss).')
        return {'lr': lr, **{f'train_{k}': v for k, v in mean.items()},
                'train_samples_per_s': samples / max(seconds, 1e-9)}

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, epoch, save_score=False, wrong_stem=None, checkpoint=None, picture=False):
        """Upstream's eval: loss and Top-k lines, per-class csv, optional score pickle (with its
        record) and wrong/right files. `epoch` is 0-based as upstream's (file names say epoch + 1).
        Every rank gets the gathered scores and result; rank 0 logs and writes. Under torchrun every
        rank first takes rank 0's buffers (BatchNorm statistics drift apart in the last training
        step): the ranks then score the very model rank 0 saves. No RNG moves (exact resume)."""
        feeder = self.loaders['test'].dataset
        distributed.broadcast_tensors(list(self.model_core.buffers()))
        with rng.preserved():
            ev = evaluate(self.eval_model, self.loaders['test'], self.criterion, self.device,
                          autocast(self.device, self.amp_dtype), gather=distributed.all_gather_object,
                          batch_size=self.arg.test_batch_size)
        result = summarize(ev, feeder, self.arg.show_topk)
        result['evaluation'] = ev
        def report():
            names = outputs.class_names(self.criterion, feeder, ev.scores.shape[1]) if picture else None
            return outputs.report_evaluation(self.log, self.work.path, epoch + 1, feeder, ev, result,
                                             save_score=save_score, checkpoint=checkpoint, wrong_stem=wrong_stem,
                                             picture=picture, names=names)
        result['confusion'] = self.on_main(report)  # None on the other ranks
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
        if distributed.launched():
            self.log(assemble.describe_ranks(arg, self.loaders))
        if self.resume_state is not None:
            rng.restore_rank_state(self.resume_state, distributed.rank(), distributed.world_size(),
                                   getattr(self.criterion, 'generators', list)())
            self.resume_state = None
        epoch = arg.start_epoch
        try:
            if self.pending is not None:  # the evaluation a kill interrupted, then on as usual
                self.finish_epoch(epoch - 1, dict(self.pending), self.saves_model(epoch - 1), True)
                self.pending = None
            for epoch in range(arg.start_epoch, arg.num_epoch):
                self.train_and_evaluate(epoch)
        except KeyboardInterrupt:
            self.log(f'Interrupted during epoch {epoch + 1} (step {self.global_step}); --resume continues '
                     'from the last completed part of an epoch (last.pt).')
            raise
        finally:
            for writer in self.writers.values():
                writer.close()
        if distributed.is_main():
            outputs.write_learning_curves(self.log, self.work.path, self.metrics)
        self.retest_best()

    def saves_model(self, epoch):
        arg = self.arg
        return ((epoch + 1) % arg.save_interval == 0 or epoch + 1 == arg.num_epoch) and epoch + 1 > arg.save_epoch

    def evaluates(self, epoch):
        arg = self.arg
        return epoch + 1 == arg.num_epoch or (arg.eval_interval > 0 and (epoch + 1) % arg.eval_interval == 0)

    def train_and_evaluate(self, epoch):
        record = {'epoch': epoch + 1, 'global_step': None}
        try:
            record.update(self.train_epoch(epoch))
        except Diverged as e:  # nothing of this epoch is kept
            self.log(f'{e}. Stopped: last.pt and the checkpoints hold epoch {epoch} and before; '
                     'start again with a lower --base-lr (or --precision fp32).')
            raise
        save_model, evaluate_now = self.saves_model(epoch), self.evaluates(epoch)
        if save_model:
            self.on_main(lambda: io.save_torch(self.work.checkpoint(epoch + 1, self.global_step), self.cpu_state()))
        if evaluate_now:  # the training is kept before the evaluation starts
            self.save_last(epoch + 1, pending=record)
        self.finish_epoch(epoch, record, save_model, evaluate_now)

    def finish_epoch(self, epoch, record, save_model, evaluate_now):
        """The epoch's evaluation (when due), its metrics line and the run state."""
        arg, main = self.arg, distributed.is_main()
        if evaluate_now:
            self.log(f'Eval epoch: {epoch + 1}')
            result = self.evaluate(epoch, save_score=arg.save_score)
            self.writers['val'].add_scalar('loss', result['loss'], self.global_step)
            self.writers['val'].add_scalar('acc', result['acc'], self.global_step)
            self.last_acc, self.last_epoch = result['acc'], epoch + 1
            if result['acc'] > self.best_acc:
                self.best_acc, self.best_epoch, self.best_step = result['acc'], epoch + 1, self.global_step
                self.best_state = None if save_model or not main else self.cpu_state()
            record.update(test_loss=result['loss'], **{f'test_top{k}': v for k, v in result['topk'].items()},
                          **{f'test_{k}': v for k, v in result.items() if k.endswith('_top1')})
        record['global_step'] = self.global_step
        self.metrics.append(record)
        self.on_main(lambda: io.save_json_lines(self.work.metrics, self.metrics))
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
        def checkpoint():  # written now when the save-interval/save-epoch rules skipped it
            path = self.work.ensure_checkpoint(epoch, step, lambda: state if state is not None else self.cpu_state())
            return path, torch.load(path, map_location='cpu', weights_only=True)
        path, weights = distributed.broadcast_object(self.on_main(checkpoint))  # rank 0's file, on every rank
        self.model_core.load_state_dict(weights)
        self.log(f'Re-testing the best model: {path}')
        self.evaluate(0, save_score=True, wrong_stem=path[:-len('.pt')], checkpoint=path, picture=True)
        for line in outputs.summary_lines(arg, self.best_acc, self.best_epoch, self.last_epoch, self.last_acc,
                                          self.work.path, self.num_params):
            self.log(line)
        if self.criterion.warning:
            self.log.warning(self.criterion.warning)

    def test(self):
        """Every output goes into --work-dir (upstream wrote the _wrong/_right lists beside the
        checkpoint: a read-only folder crashed, another stream's test overwrote a run's lists)."""
        arg, weights = self.arg, self.arg.weights
        self.log(f'Model:   {arg.model}.')
        self.log(f'Weights: {weights}.')
        name = os.path.basename(weights)
        stem = os.path.join(self.work.path, name[:-len('.pt')] if name.endswith('.pt') else name)
        self.evaluate(0, save_score=arg.save_score, checkpoint=os.path.abspath(weights), picture=True,
                      wrong_stem=stem)
        self.log('Done.\n')
