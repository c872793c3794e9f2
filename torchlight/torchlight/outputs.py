"""Upstream's output files of an evaluation, written atomically, with a record beside each score file.

epoch<N>_test_score.pkl        {score key: (num_class,) scores}; keys: the feeder's score_keys()
epoch<N>_test_score.json       which checkpoint, epoch and accuracy produced that pickle
epoch<N>_test_each_class_acc.csv  per-class accuracy, then the confusion matrix
<checkpoint>_wrong.txt         `index,pred,true` per wrong sample; <checkpoint>_right.txt: `pred,true`
"""
import json
import os
import time

import numpy as np

from torchlight import io
from torchlight.metrics import confusion_matrix


def score_keys(feeder, n):
    """How the feeder keys its scores (sample names for NTU, positions for NW-UCLA)."""
    keys = feeder.score_keys() if hasattr(feeder, 'score_keys') else range(n)
    return list(keys)


def score_path(work_dir, epoch):
    return os.path.join(work_dir, f'epoch{epoch}_test_score.pkl')


def write_scores(work_dir, epoch, feeder, evaluation, record):
    """The score pickle and its record (checkpoint, epoch, accuracy, ...)."""
    keys = score_keys(feeder, len(evaluation.scores))
    path = score_path(work_dir, epoch)
    io.save_pickle(path, dict(zip(keys, evaluation.scores)))
    record = dict(record, samples=len(keys), written=time.strftime('%Y-%m-%dT%H:%M:%S'))
    io.save_text(path[:-len('.pkl')] + '.json', json.dumps(io.finite_or_none(record), indent=1, sort_keys=True) + '\n')
    return path


def write_class_accuracy(work_dir, epoch, evaluation):
    """Per-class accuracy csv; returns the confusion matrix it holds."""
    confusion = confusion_matrix(evaluation.labels, evaluation.predictions)
    with np.errstate(divide='ignore', invalid='ignore'):
        each_acc = np.diag(confusion) / confusion.sum(axis=1)
    io.save_csv(os.path.join(work_dir, f'epoch{epoch}_test_each_class_acc.csv'),
                [list(each_acc)] + confusion.tolist())
    return confusion


def write_wrong_right(stem, evaluation):
    pred, true = evaluation.predictions, evaluation.labels
    io.save_text(stem + '_wrong.txt', ''.join(f'{i},{p},{t}\n' for i, p, t in
                                              zip(evaluation.indices, pred, true) if p != t))
    io.save_text(stem + '_right.txt', ''.join(f'{p},{t}\n' for p, t in zip(pred, true)))


def full_confusion(evaluation):
    """(num_class, num_class) counts over every class the scores cover, for pictures."""
    return confusion_matrix(evaluation.labels, evaluation.predictions, evaluation.scores.shape[1])


def picture(log, path, draw, *args, **kwargs):
    """Draw the picture at `path`; a plotting failure is a warning, never the end of a run."""
    try:
        return draw(*args, path, **kwargs)
    except Exception as e:  # noqa: BLE001  (matplotlib missing, a font problem, a full disk, ...)
        log.warning(f'could not draw {os.path.basename(path)}: {type(e).__name__}: {e}')
        return None


def class_names(criterion, feeder, n):
    """The names of the run's `n` classes: its descriptions' (the criterion's, e.g. from --text-dir),
    else the feeder's, else numbers."""
    for source in (criterion, feeder):
        names = source.class_names(n) if hasattr(source, 'class_names') else None
        if names:
            return list(names)
    return [str(i) for i in range(n)]


def write_confusion_picture(log, work_dir, epoch, names, evaluation, title):
    from torchlight.plots import plot_confusion
    return picture(log, os.path.join(work_dir, f'epoch{epoch}_confusion.png'), plot_confusion,
                   full_confusion(evaluation), names, title=title)


def write_learning_curves(log, work_dir, metrics):
    from torchlight.plots import plot_learning_curves
    return picture(log, os.path.join(work_dir, 'learning_curves.png'), plot_learning_curves, metrics)


def report_evaluation(log, work_dir, epoch, feeder, evaluation, result, save_score=False, checkpoint=None,
                      wrong_stem=None, picture=False, names=None):
    """An evaluation's log lines (upstream's: loss, Top-k) and files: the per-class csv, the score
    pickle with its record (save_score), the wrong/right files (wrong_stem), the confusion picture
    (its axes labelled with `names`).
    `epoch` is the one file names say (1-based). Returns the confusion matrix of the csv."""
    ev, n = evaluation, len(evaluation.scores)
    log(f'\tMean test loss of {ev.batches} batches: {ev.loss:.4f}; '
        f'{n} samples in {ev.seconds:.1f}s ({n / max(ev.seconds, 1e-9):.1f} samples/s).')
    for k, value in result['topk'].items():
        log(f'\tTop{k}: {100 * value:.2f}%')
    for name in ev.extra:
        log(f'\tTop1 by nearest class {name} embedding: {100 * result[f"{name}_top1"]:.2f}%')
    if save_score:
        write_scores(work_dir, epoch, feeder, ev, {
            'checkpoint': checkpoint, 'epoch': epoch if checkpoint is None else None,
            'accuracy': result['acc'], 'topk': result['topk'], 'work_dir': work_dir})
    confusion = write_class_accuracy(work_dir, epoch, ev)
    if wrong_stem:
        write_wrong_right(wrong_stem, ev)
    if picture:
        names = names or [str(i) for i in range(ev.scores.shape[1])]
        write_confusion_picture(log, work_dir, epoch, names, ev, os.path.basename(checkpoint or work_dir))
    return confusion


def summary_lines(arg, best_acc, best_epoch, last_epoch, last_acc, work_dir, num_params):
    """The lines that end a training log (upstream's, plus the last evaluated epoch)."""
    summary = [f'Best accuracy: {best_acc}', f'Epoch number: {best_epoch}']
    if last_epoch is not None:
        summary.append(f'Last evaluated epoch: {last_epoch}, accuracy: {last_acc}')
    return summary + [f'Model name: {work_dir}', f'Model total number of params: {num_params}',
                      f'Weight decay: {arg.weight_decay}', f'Base LR: {arg.base_lr}', f'Batch Size: {arg.batch_size}',
                      f'Test Batch Size: {arg.test_batch_size}', f'seed: {arg.seed}']
