"""GAP's criterion: cross-entropy plus the text supervision's contrastive loss, for the trainer.

`build` is what `--criterion` names by default: it looks at the model and gives plain
cross-entropy to models without text heads and `GAPCriterion` to GAP's models. Its settings are
the run's criterion_args (`Settings`; upstream's flags --text-dir, --loss-alpha, ... fill them).
The model's output, the encoder name, the label set and the text targets are this module's
business, not the trainer's.
"""
import hashlib
import math
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F

from model.losses import gap_loss
from text.label_set import LabelSet
from torchlight.criterion import CrossEntropy
from torchlight.errors import UserError
from torchlight.importing import build as build_from


@dataclass(frozen=True)
class Settings:
    """The keys of criterion_args (another key is refused, naming the closest ones)."""
    text_dir: str = None  # the run's label set: 'ntu', 'ucla' or a folder (default: the entry script's)
    loss_alpha: float = None  # weight of the text loss; upstream's 0.8 NTU, 1.0 NW-UCLA (configs, entry scripts)
    te_lr_ratio: float = 0.0  # text-encoder lr = base-lr x ratio; 0 keeps it frozen, 1 is upstream's
    text_encoder_weights: str = None  # a local weights file, or 'random' (tests and benchmarks only)
    text_embeddings: str = None  # a table from text/export_embeddings.py: no text-encoder package needed

    def __post_init__(self):
        for key in ('loss_alpha', 'te_lr_ratio'):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value < 0):
                raise UserError(f'criterion_args {key}: expected a finite number >= 0, got {value!r}')


def text_heads(model):
    """Encoder names of a model's text-space heads ([] for a plain classifier)."""
    return list(getattr(model, 'head', None) or []) if hasattr(model, 'linear_head') else []


def build(model, args, seed, device, log, training=True):
    """The criterion for `model` from the run's criterion_args `args` (Settings).

    training=False (the test phase) builds no text table: only the classifier runs.
    """
    settings = build_from(f'{__name__}.Settings', dict(args), 'criterion_args')
    label_set = None if settings.text_dir is None else LabelSet.open(settings.text_dir)
    heads = text_heads(model)
    if not heads:
        return CrossEntropy(partial(class_names, label_set))
    if len(heads) != 1:
        raise UserError(f'model_args.head: expected one text encoder name, got {heads}')
    if label_set is None:
        raise UserError('a GAP model needs a label set: give --text-dir (ntu, ucla or a folder)')
    if settings.loss_alpha is None:
        raise UserError('a GAP model needs the text-loss weight: give --loss-alpha (upstream: 0.8 NTU, 1.0 NW-UCLA)')
    supervision = None
    if training:
        from text.supervision import TextSupervision
        supervision = TextSupervision.build(
            label_set, num_class=model.num_class, encoder_name=heads[0], weights=settings.text_encoder_weights,
            device=device, te_lr_ratio=settings.te_lr_ratio, seed=seed, log=log,
            text_embeddings=settings.text_embeddings, width=model.text_width)
    return GAPCriterion(supervision, heads[0], settings.loss_alpha, label_set=label_set)


def class_names(label_set, num_class):
    """The first `num_class` class names of the run's label set, for logs and pictures; None where
    it has none (no label set, too few or unreadable names): pictures then number the classes."""
    try:
        return None if label_set is None else label_set.class_names(num_class)
    except UserError:
        return None


def per_step_weights(weights, encoder):
    """Weights for re-encoding prompts every step in a benchmark: the configured ones; else
    MiniLM's packaged weights, CLIP's cached file, or random CLIP weights (the same cost)."""
    if weights:
        return weights
    from text.encoders import CLIP_TEXT_CONFIGS, weights_identity
    if encoder in CLIP_TEXT_CONFIGS and weights_identity(encoder) is None:
        return 'random'
    return None


class GAPCriterion:
    """Loss of a GAP model's output `(logits, {encoder: global}, logit_scale, parts)`.

    losses: {'loss': ce + alpha * text, 'ce', 'text'}. With a supervision, evaluation also scores
    each sample by the cosine of its global text-space feature with every class's label-name
    embedding ('text' scores: how well the contrastive loss aligned the two spaces, no classifier
    involved). Without one (test phase) only the logits are used.
    """

    def __init__(self, supervision, encoder, alpha, label_set=None, gather=None):
        self.supervision = supervision
        self.encoder = encoder
        self.alpha = float(alpha)
        self.label_set = label_set  # the run's: class names for pictures, file hashes for provenance
        self.gather = gather  # None: one process; else rows of every rank, with gradients (distribute)
        self._class_embeddings = None

    def class_names(self, num_class):
        return class_names(self.label_set, num_class)

    def distribute(self, gather, rank):
        """Under DDP: the text term compares every sample of the global batch with every other, as
        one process (or DataParallel) does: `gather` concatenates every rank's rows, with gradients;
        each rank draws its own synonyms (generator seed + rank).

        No rescaling is needed: every rank computes the same global loss L (cross-entropy and text
        term, from the gathered rows); the gather's backward sums over the ranks the gradient each
        rank's L gives this rank's rows, and DDP's average of those W equal contributions is L's
        1-process gradient.
        """
        self.gather = gather
        if self.supervision is not None and rank:
            generator = self.supervision.generator
            generator.manual_seed(generator.initial_seed() + rank)

    def generators(self):
        """The random generators this criterion draws from (per-rank RNG state in last.pt)."""
        return [self.supervision.generator] if self.supervision is not None else []

    def provenance(self):
        """The text side of a run: encoder and weights identity, description files, prompt hash."""
        out = {'kind': 'gap', 'encoder': self.encoder, 'loss_alpha': self.alpha}
        if self.label_set is not None:
            out.update(text_folder=str(self.label_set.folder), text_files=self.label_set.file_hashes())
        if self.supervision is not None:
            texts = self.supervision.texts
            out.update(encoder_weights=self.supervision.encoder_description, prompts=len(texts),
                       prompts_sha256=hashlib.sha256('\n'.join(texts).encode()).hexdigest(),
                       fine_tuned=not self.supervision.frozen)
        return out

    @property
    def description(self):
        if self.supervision is None:
            return f'{self.encoder} text heads unused (test phase: classifier only)'
        return f'{self.supervision!r}, loss = ce + {self.alpha:g} x text'

    @property
    def warning(self):
        if self.supervision is not None and self.supervision.random_weights:
            return (f'the text encoder had random weights ({self.supervision.encoder_description}): '
                    'its text supervision was meaningless')
        return None

    def __call__(self, output, labels):
        """GAP's loss (model/losses.py gap_loss) against this rank's text targets (its own synonym
        draws); under DDP over every rank's rows (distribute)."""
        logits, global_feats, logit_scale, parts = output
        g = self.gather or (lambda rows: rows)
        targets = self.supervision.targets(labels)
        total, ce, text = gap_loss(g(logits), g(labels), g(global_feats[self.encoder]), [g(p) for p in parts],
                                   [g(t) for t in targets], logit_scale, self.alpha)
        return {'loss': total, 'ce': ce, 'text': text}

    def logits(self, output):
        return output[0]

    def scores(self, output):
        if self.supervision is None:
            return {}
        if self._class_embeddings is None:
            labels = torch.arange(self.supervision.bank.num_class, device=self.supervision.device)
            with torch.no_grad():  # eval mode: the global set's label-name row of every class
                table = self.supervision.targets(labels)[0]
            self._class_embeddings = F.normalize(table.float(), dim=-1)
        feature = F.normalize(output[1][self.encoder].float(), dim=-1)
        return {'text': feature @ self._class_embeddings.to(feature.device).t()}

    def benchmark_variants(self, args):
        """The criteria `--phase benchmark` times, as changes to the run's criterion_args `args`
        ({}: this one): text targets from the frozen table, and upstream's way (the batch's prompts
        re-encoded with gradients every step)."""
        frozen = self.supervision is None or self.supervision.frozen
        per_step = dict(te_lr_ratio=args.get('te_lr_ratio') or 1.0, text_embeddings=None,
                        text_encoder_weights=per_step_weights(args.get('text_encoder_weights'), self.encoder))
        return {'gap_frozen': {} if frozen else {'te_lr_ratio': 0.0},
                'gap_text_per_step': per_step if frozen else {}}

    def param_groups(self):
        params = self.supervision.parameters() if self.supervision is not None else []
        return [{'params': params, 'lr_scale': self.supervision.te_lr_ratio}] if params else []

    def state_dict(self):
        if self.supervision is None:
            return {}
        return {'encoder': [p.detach().cpu() for p in self.supervision.parameters()],
                'generator': self.supervision.generator.get_state()}

    def load_state_dict(self, state):
        if self.supervision is None:
            return
        params = self.supervision.parameters()
        if len(state.get('encoder', [])) != len(params):
            raise ValueError(f'{len(state.get("encoder", []))} saved text-encoder tensors, '
                             f'the encoder has {len(params)}')
        with torch.no_grad():
            for p, saved in zip(params, state['encoder']):
                p.copy_(saved)
        self.supervision.generator.set_state(state['generator'].cpu())

    def train(self, mode=True):
        self._class_embeddings = None  # a fine-tuned encoder moves them: recompute per evaluation
        if self.supervision is not None:
            self.supervision.train(mode)
        return self

    def eval(self):
        return self.train(False)
