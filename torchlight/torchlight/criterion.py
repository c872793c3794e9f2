"""What the trainer asks of a loss: the criterion interface, and plain cross-entropy.

`--criterion` names a factory, called as `factory(model=..., args=..., seed=..., device=...,
log=..., training=...)`: `args` is the run's criterion_args dict (the criterion's own settings,
which the factory checks: the trainer knows none of them), `training` False in the test phase.

A criterion turns a model's output and the labels into named losses. The trainer sums nothing
itself: it back-propagates `losses['loss']`, and logs, plots and checkpoints every name returned.

    criterion(output, labels) -> {'loss': total, <part name>: value, ...}  (0-dim tensors)
    criterion.logits(output)  -> (N, num_class) classifier scores (accuracy, score files)
    criterion.scores(output)  -> {name: (N, num_class)} further scores to report top-1 of ({})
    criterion.param_groups()  -> [{'params': [...], 'lr_scale': float}] trained besides the model
    criterion.state_dict() / load_state_dict(state)   its own resumable state ({} here)
    criterion.train() / criterion.eval()
    criterion.description     one line for the log
    criterion.warning         None, or a line the trainer repeats at the end of training
    criterion.class_names(num_class)  (optional) the run's class names for pictures, or None (numbers)
    criterion.provenance()    (optional) what a rerun needs to know of its inputs, for provenance.json
    criterion.distribute(gather, rank)  (optional) called under torchrun/DDP: `gather(t)` concatenates
                              t over the ranks with gradients, for terms that must see the global batch
                              (without it a criterion's loss is its rank's own, averaged by DDP)
    criterion.generators()    (optional) its own torch.Generators, kept per rank in last.pt
    criterion.benchmark_variants(args)  (optional) {arm name: changes to criterion_args `args`}: the
                              criteria `--phase benchmark` times beside the plain model ({}: this one)
"""
import torch.nn.functional as F


def trained_parameters(criterion):
    """The criterion's own trained parameters (all its param_groups), e.g. a fine-tuned text encoder."""
    return [p for group in criterion.param_groups() for p in group['params']]


def class_names_for(criterion, model, criterion_args, seed=1):
    """The class names the criterion at path `criterion` gives `model` (its label set's), or None;
    built for testing (training=False: no text table, no text encoder)."""
    import torch

    from torchlight.importing import import_class
    built = import_class(criterion)(model=model, args=dict(criterion_args or {}), seed=seed,
                                    device=torch.device('cpu'), log=lambda *a, **k: None, training=False)
    num_class = getattr(model, 'num_class', None)
    names = built.class_names(num_class) if num_class and hasattr(built, 'class_names') else None
    return list(names) if names else None


class CrossEntropy:
    """Plain classification (CTR-GCN): the model's output is its logits."""

    description = 'cross-entropy only, no text encoder'
    warning = None

    def __init__(self, class_names=None):
        self.names = class_names  # num_class -> names or None: whoever builds it knows the run's label set

    def class_names(self, num_class):
        return None if self.names is None else self.names(num_class)

    def __call__(self, output, labels):
        ce = F.cross_entropy(output.float(), labels)
        return {'loss': ce, 'ce': ce}

    def logits(self, output):
        return output

    def scores(self, output):
        return {}

    def param_groups(self):
        return []

    def provenance(self):
        return {'kind': 'cross-entropy'}

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        if state:
            raise ValueError(f'cross-entropy keeps no state, got {sorted(state)}')

    def train(self, mode=True):
        return self

    def eval(self):
        return self.train(False)
