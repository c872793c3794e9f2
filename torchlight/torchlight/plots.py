"""Training plots as PNG files: learning curves from metrics.jsonl records, and a confusion matrix.

Pure functions: they read their arguments, write one file atomically (a temporary file beside the
target, then os.replace, as torchlight.io does) and return its path. Drawing uses matplotlib's Agg
canvas on a private Figure (no pyplot, no global backend switch, no display), and matplotlib is
imported only when a function is called, so importing this module has no side effects.

    python -m torchlight.plots WORK_DIR [WORK_DIR ...]   # redraw each learning_curves.png
"""
import argparse
import math
import os
import sys

import numpy as np

from .errors import UserError, run_cli
from .io import atomic_open

# words of train_* keys that are not losses (train_acc, train_samples_per_s, ...); every other
# train_* key (train_loss, train_ce, train_text, ...) is drawn in the loss panel
_NOT_LOSS = {'acc', 'accuracy', 'samples', 'per', 's', 'seconds', 'time', 'lr', 'step', 'epoch'}
_FEW_POINTS = 30  # lines with at most this many points get markers


def _canvas_figure(**kwargs):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig, path, dpi):
    """Render `fig` to PNG at `path` atomically; nothing (old file kept) if anything fails."""
    with atomic_open(path, 'wb') as f:
        fig.savefig(f, format='png', dpi=dpi)
    return path


def _number(value):
    return (isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
            and math.isfinite(value))


def _series(metrics, key, scale=1.0):
    """(epochs, values) of the records that hold a finite number under `key`."""
    xs, ys = [], []
    for i, record in enumerate(metrics):
        value = record.get(key)
        if _number(value):
            epoch = record.get('epoch')
            xs.append(epoch if _number(epoch) else i + 1)
            ys.append(float(value) * scale)
    return xs, ys


def loss_keys(metrics):
    """train_loss first, then every other train_<name> loss key in order of first appearance."""
    keys = []
    for record in metrics:
        for key, value in record.items():
            if key.startswith('train_') and key not in keys and _number(value):
                words = key[len('train_'):].split('_')
                if 'loss' in words or not any(w in _NOT_LOSS or w.startswith('top') for w in words):
                    keys.append(key)
    return sorted(keys, key=lambda k: k != 'train_loss')


def _line(ax, xs, ys, label, **style):
    if not xs:
        return None
    if len(xs) <= _FEW_POINTS or style.pop('always_marker', False):
        style.setdefault('marker', 'o')
        style.setdefault('markersize', 3)
    style.pop('always_marker', None)
    return ax.plot(xs, ys, label=label, **style)[0]


def plot_learning_curves(metrics, path, title=None):
    """Three panels (losses, accuracy in %, learning rate) over the epochs of `metrics`.

    metrics: per-epoch dicts as in metrics.jsonl (epoch, lr, train_loss, train_<loss name>...,
    train_acc, and on evaluated epochs test_top1, test_loss, optionally test_text_top1; the
    accuracies as fractions). Missing or non-finite values are skipped line by line.
    Returns `path`.
    """
    metrics = [m for m in metrics if isinstance(m, dict)]
    if not metrics:
        raise ValueError('plot_learning_curves: no epoch records to plot')
    fig = _canvas_figure(figsize=(15, 4.4), layout='constrained')
    ax_loss, ax_acc, ax_lr = fig.subplots(1, 3)

    # losses: the total solid, its parts dashed, the test loss with markers (evaluated epochs)
    for key in loss_keys(metrics):
        name = key[len('train_'):]
        style = {'linewidth': 2} if key == 'train_loss' else {'linestyle': '--', 'linewidth': 1.2}
        _line(ax_loss, *_series(metrics, key), 'train' if key == 'train_loss' else f'train {name}',
              **style)
    _line(ax_loss, *_series(metrics, 'test_loss'), 'test', color='black', linewidth=1.5,
          always_marker=True)
    ax_loss.set_title('loss')

    # accuracy in %
    _line(ax_acc, *_series(metrics, 'train_acc', 100), 'train', linewidth=2)
    test = _series(metrics, 'test_top1', 100)
    _line(ax_acc, *test, 'test top-1', color='black', linewidth=1.5, always_marker=True)
    _line(ax_acc, *_series(metrics, 'test_text_top1', 100), 'test top-1 (text space)',
          color='tab:green', linewidth=1.2, linestyle='--', always_marker=True)
    if test[0]:
        best = int(np.argmax(test[1]))
        ax_acc.plot([test[0][best]], [test[1][best]], marker='*', markersize=13, color='gold',
                    markeredgecolor='black', linestyle='', zorder=5,
                    label=f'best {test[1][best]:.2f}% (epoch {test[0][best]})')
    ax_acc.set_title('accuracy (%)')

    # learning rate, log scale when it spans more than a decade
    lr = _series(metrics, 'lr')
    _line(ax_lr, *lr, 'lr', color='tab:purple', drawstyle='steps-post')
    positive = [v for v in lr[1] if v > 0]
    if positive and len(positive) == len(lr[1]) and max(positive) > 10 * min(positive):
        ax_lr.set_yscale('log')
    ax_lr.set_title('learning rate')

    for ax in (ax_loss, ax_acc, ax_lr):
        ax.set_xlabel('epoch')
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, 'no values', transform=ax.transAxes, ha='center', va='center',
                    color='gray')
    last = metrics[-1].get('epoch')
    last = last if _number(last) else len(metrics)
    fig.suptitle(f'{title + " - " if title else ""}{len(metrics)} epochs (last: {last})')
    return _save_png(fig, path, dpi=100)


def _short(name, width=40):
    name = str(name)
    return name if len(name) <= width else name[:width - 1] + '\u2026'


def plot_confusion(confusion, class_names, path, title=None):
    """Heat map of a confusion matrix (rows: true class, columns: predicted; counts).

    Colours are each row's share (so classes of different sizes compare), with a square-root
    colour scale so that small confusions stay visible; counts are written in the cells up to
    20 classes; each row's accuracy (diagonal / row sum) is on the right; the overall accuracy is
    in the title. Font sizes and figure size follow the class count (10 to 120+). Returns `path`.
    """
    from matplotlib.colors import PowerNorm

    counts = np.asarray(confusion, dtype=np.float64)
    n = len(counts)
    if counts.ndim != 2 or counts.shape != (n, n) or n == 0:
        raise ValueError(f'plot_confusion: expected a square matrix, got shape {counts.shape}')
    if not np.all(np.isfinite(counts)) or counts.min() < 0:
        raise ValueError('plot_confusion: counts must be finite and non-negative')
    names = [_short(c) for c in class_names]
    if len(names) != n:
        raise ValueError(f'plot_confusion: {n} classes in the matrix but {len(names)} class names')

    rows = counts.sum(axis=1)
    diag = np.diag(counts)
    with np.errstate(divide='ignore', invalid='ignore'):
        share = np.where(rows[:, None] > 0, counts / rows[:, None], 0.0)
        per_class = np.where(rows > 0, 100 * diag / rows, np.nan)
    total = counts.sum()
    overall = 100 * diag.sum() / total if total > 0 else float('nan')

    font = 9 if n <= 20 else max(3.5, min(8.0, 260.0 / n))  # 120 classes: ~4.5 pt
    cell = 0.55 if n <= 20 else max(0.085, font / 60.0)  # inches per class
    label_w = 0.08 * font * max(len(s) for s in names) / 8 + 0.6  # inches for the longest name
    side = cell * n
    fig = _canvas_figure(figsize=(side + 2 * label_w + 2.2, side + label_w + 1.2),
                         layout='constrained')
    ax = fig.subplots()
    image = ax.imshow(share * 100, cmap='Blues', norm=PowerNorm(0.5, vmin=0, vmax=100),
                      interpolation='nearest', aspect='equal')
    ticks = np.arange(n)
    ax.set_xticks(ticks, names, rotation=90 if n > 10 else 45,
                  ha='center' if n > 10 else 'right', fontsize=font)
    ax.set_yticks(ticks, names, fontsize=font)
    ax.set_xlabel('predicted class', fontsize=max(font, 8))
    ax.set_ylabel('true class', fontsize=max(font, 8))
    ax.tick_params(length=2 if n > 20 else 3.5, width=0.5)

    # per-class accuracy beside each row, on a twin axis sharing the rows
    right = ax.secondary_yaxis('right')
    right.set_ticks(ticks, labels=['n/a' if np.isnan(a) else f'{a:.0f}%' if n > 20 else f'{a:.1f}%'
                             for a in per_class], fontsize=font)
    right.tick_params(length=0)
    right.set_ylabel('per-class accuracy', fontsize=max(font, 8))

    if n <= 20:
        whole = np.all(counts == np.round(counts))
        for i in range(n):
            for j in range(n):
                value = counts[i, j]
                text = f'{int(value)}' if whole else f'{value:.2g}'
                color = 'white' if share[i, j] > 0.45 else ('black' if value else '0.75')
                ax.text(j, i, text, ha='center', va='center', fontsize=font - 1, color=color)
    else:  # fine lines every 10 classes help to find a row and its column
        for k in range(10, n, 10):
            ax.axhline(k - 0.5, color='0.85', linewidth=0.3)
            ax.axvline(k - 0.5, color='0.85', linewidth=0.3)

    bar = fig.colorbar(image, ax=ax, shrink=0.6 if n > 20 else 0.8, pad=0.02)
    bar.set_label("share of the true class's samples (%)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    head = f'{title} - ' if title else ''
    fig.suptitle(f'{head}overall accuracy {overall:.2f}% ({int(diag.sum())}/{int(total)}), '
                 f'{n} classes', fontsize=11)
    return _save_png(fig, path, dpi=100 if n <= 20 else 150)


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m torchlight.plots',
                                     description="Redraw a work dir's learning_curves.png from its metrics.jsonl.")
    parser.add_argument('work_dirs', nargs='+', help='work dirs with a metrics.jsonl')
    args = parser.parse_args(argv)  # none given: usage and exit status 2
    from .summary import Unfinished, read_metrics
    for work_dir in args.work_dirs:
        try:
            metrics = read_metrics(os.path.join(work_dir, 'metrics.jsonl'))
        except Unfinished as e:
            raise UserError(f'{work_dir}: {e}') from None
        if not metrics:
            raise UserError(f'{work_dir}: metrics.jsonl holds no epoch')
        print(plot_learning_curves(metrics, os.path.join(work_dir, 'learning_curves.png')))
    return 0


if __name__ == '__main__':
    run_cli(main, sys.argv[1:])
