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
    io.save_text(path[:-len('.pkl')] + '.json', json.dumps(record, indent=1, sort_keys=True) + '\n')
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
