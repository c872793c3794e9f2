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

    @property
    def predictions(self):
        return self.scores.argmax(1)


def evaluate(model, loader, criterion, device, autocast):
    """Run `model` over `loader` in eval mode; results stay on the device until the end."""
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
            losses.append(F.cross_entropy(logits, label))
            scores.append(logits)
            labels.append(label)
            indices.append(torch.as_tensor(index))
            for name, value in criterion.scores(output).items():
                extra.setdefault(name, []).append(value.float())
    cpu = lambda parts: torch.cat(parts).cpu().numpy()  # noqa: E731
    return Evaluation(scores=cpu(scores), labels=cpu(labels), indices=cpu(indices),
                      loss=float(torch.stack(losses).double().mean()), batches=len(losses),
                      seconds=time.perf_counter() - start,
                      extra={name: cpu(parts) for name, parts in extra.items()})


def summarize(evaluation, feeder, show_topk):
    """{'acc': top-1, 'loss', 'topk': {k: acc}, '<name>_top1' per extra score}, from the feeder's
    own top_k (its labels, its order)."""
    result = {'acc': float(feeder.top_k(evaluation.scores, 1)), 'loss': evaluation.loss,
              'topk': {k: float(feeder.top_k(evaluation.scores, k)) for k in show_topk}}
    for name, scores in evaluation.extra.items():
        result[f'{name}_top1'] = float(feeder.top_k(scores, 1))
    return result
