"""Score a test set: the model's classifier scores, the criterion's further scores, the metrics."""
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class Evaluation:
    scores: np.ndarray            # (N, num_class) classifier scores (logits), dataset order
    labels: np.ndarray            # (N,)
    indices: np.ndarray           # (N,) the feeder's item indices
    loss: float                   # mean over batches of the batch's mean cross-entropy
    batches: int
    seconds: float
    extra: dict = field(default_factory=dict)  # name -> (N, num_class), e.g. text-space scores
    sample_loss: np.ndarray = None  # (N,) each sample's cross-entropy

    @property
    def predictions(self):
        return self.scores.argmax(1)


def batch_mean(sample_loss, batch_size):
    """(mean over batches of each batch's mean, number of batches): the loss of an evaluation in
    batches of `batch_size`, whichever ranks scored which samples."""
    batch_size = max(1, int(batch_size))
    means = [sample_loss[i:i + batch_size].mean(dtype=np.float32) for i in range(0, len(sample_loss), batch_size)]
    return (float(np.mean(np.asarray(means, np.float64))) if means else float('nan')), len(means)


def evaluate(model, loader, criterion, device, autocast, gather=None, batch_size=None):
    """Run `model` over `loader` in eval mode; results stay on the device until the end.

    Under DDP each rank scores its part: `gather` (all_gather_object) joins the parts in rank
    order, i.e. dataset order, on every rank, and the loss is that of `batch_size` batches (the
    global test batch), so it is the number a 1-process run reports.
    """
    model.eval()
    criterion.eval()
    scores, labels, indices, losses, extra = [], [], [], [], {}
    start = time.perf_counter()
    with torch.inference_mode(), autocast:
        for data, label, index in loader:
            data = data.float().to(device, non_blocking=True)
            label = label.long().to(device, non_blocking=True)
            output = model(data)
            logits = criterion.logits(output).float()
            losses.append(F.cross_entropy(logits, label, reduction='none'))
            scores.append(logits)
            labels.append(label)
            indices.append(torch.as_tensor(index))
            for name, value in criterion.scores(output).items():
                extra.setdefault(name, []).append(value.float())
    cpu = lambda parts: torch.cat(parts).cpu().numpy() if parts else None  # noqa: E731
    part = dict(scores=cpu(scores), labels=cpu(labels), indices=cpu(indices), sample_loss=cpu(losses),
                extra={name: cpu(values) for name, values in extra.items()}, seconds=time.perf_counter() - start)
    parts = [p for p in (gather or (lambda x: [x]))(part) if p['scores'] is not None]
    join = lambda key: np.concatenate([p[key] for p in parts])  # noqa: E731
    sample_loss = join('sample_loss')
    loss, batches = batch_mean(sample_loss, batch_size or loader.batch_size)
    return Evaluation(scores=join('scores'), labels=join('labels'), indices=join('indices'), loss=loss,
                      batches=batches, seconds=max(p['seconds'] for p in parts), sample_loss=sample_loss,
                      extra={name: np.concatenate([p['extra'][name] for p in parts]) for name in parts[0]['extra']})


def summarize(evaluation, feeder, show_topk):
    """{'acc': top-1, 'loss', 'topk': {k: acc}, '<name>_top1' per extra score}, from the feeder's
    own top_k (its labels, its order)."""
    result = {'acc': float(feeder.top_k(evaluation.scores, 1)), 'loss': evaluation.loss,
              'topk': {k: float(feeder.top_k(evaluation.scores, k)) for k in show_topk}}
    for name, scores in evaluation.extra.items():
        result[f'{name}_top1'] = float(feeder.top_k(scores, 1))
    return result
