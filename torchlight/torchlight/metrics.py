"""Classification metrics shared by the feeders, the trainer and ensemble.py (NumPy only)."""
import numpy as np


def top_k_accuracy(score, label, k):
    """Fraction of samples whose label is among their k highest scores."""
    score = np.asarray(score)
    label = np.asarray(label)
    if score.shape[0] != len(label):
        raise ValueError(f'{score.shape[0]} score rows for {len(label)} labels')
    top = score.argsort()[:, -k:]
    return float((top == label[:, None]).any(1).mean())


def confusion_matrix(true, pred, num_class=None):
    """Rows true, columns predicted, over the labels that occur in either (as sklearn's), or over
    all of 0..num_class-1 when num_class is given (pictures: every class gets its row)."""
    if num_class is not None:
        flat = np.asarray(true, dtype=np.int64) * num_class + np.asarray(pred, dtype=np.int64)
        return np.bincount(flat, minlength=num_class * num_class).reshape(num_class, num_class)
    labels = np.unique(np.concatenate([true, pred]))
    lookup = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(true, pred):
        matrix[lookup[t], lookup[p]] += 1
    return matrix
