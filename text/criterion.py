"""GAP's criterion: cross-entropy plus the text supervision's contrastive loss, for the trainer.

`build` is what `--criterion` names by default: it looks at the model and gives plain
cross-entropy to models without text heads and `GAPCriterion` to GAP's models. The model's
output, the encoder name and the text targets are this module's business, not the trainer's.
"""
import hashlib
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from model.losses import text_loss
from torchlight.criterion import CrossEntropy
from torchlight.errors import UserError

TEXT_DIR = Path(__file__).resolve().parent
# Upstream's weight of the text loss per description set (its two entry scripts' defaults).
DEFAULT_LOSS_ALPHA = {'ntu': 0.8, 'ucla': 1.0}


def text_heads(model):
    """Encoder names of a model's text-space heads ([] for a plain classifier)."""
    return list(getattr(model, 'head', None) or []) if hasattr(model, 'linear_head') else []


def build(model, dataset, arg, device, log, training=True):
    """The criterion for `model`; `dataset` is the feeder, whose `text_set` names its descriptions.

    training=False (the test phase) builds no text table: only the classifier runs.
    """
    heads = text_heads(model)
    if not heads:
        return CrossEntropy()
    if len(heads) != 1:
        raise UserError(f'model_args.head: expected one text encoder name, got {heads}')
    text_set = getattr(dataset, 'text_set', None)
    if text_set not in DEFAULT_LOSS_ALPHA:
        raise UserError(f'feeder {type(dataset).__name__} names no description set (text_set: '
                        f'{text_set!r}; known: {", ".join(DEFAULT_LOSS_ALPHA)})')
    alpha = DEFAULT_LOSS_ALPHA[text_set] if arg.loss_alpha is None else arg.loss_alpha
    supervision = None
    if training:
        from text.supervision import TextSupervision
        supervision = TextSupervision.build(
            text_set, num_class=model.num_class, encoder_name=heads[0],
            weights=arg.text_encoder_weights, device=device, te_lr_ratio=arg.te_lr_ratio,
            seed=arg.seed, text_dir=arg.text_dir, log=log, text_embeddings=arg.text_embeddings,
            width=model.text_width)
    folder = Path(arg.text_dir) if arg.text_dir else TEXT_DIR / text_set
    return GAPCriterion(supervision, heads[0], alpha, text_folder=folder, text_set=text_set,
                        text_dir=arg.text_dir)


def per_step_weights(weights, encoder):
    """Weights for re-encoding prompts every step in a benchmark: the configured ones; else
    MiniLM's packaged weights, CLIP's cached file, or random CLIP weights (the same cost)."""
    if weights:
        return weights
    from text.encoders import CLIP_TEXT_CONFIGS, weights_identity
    if encoder in CLIP_TEXT_CONFIGS and weights_identity(encoder) is None:
        return 'random'
    return None


def file_hashes(folder):
    """sha256 of every .txt file in a descriptions folder (what a rerun must find unchanged)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).glob('*.txt'))}


class GAPCriterion:
    """Loss of a GAP model's output `(logits, {encoder: global}, logit_scale, parts)`.

    losses: {'loss': ce + alpha * text, 'ce', 'text'}. With a supervision, evaluation also scores
    each sample by the cosine of its global text-space feature with every class's label-name
    embedding ('text' scores: how well the contrastive loss aligned the two spaces, no classifier
    involved). Without one (test phase) only the logits are used.
    """

    def __init__(self, supervision, encoder, alpha, text_folder=None, gather=None, text_set=None, text_dir=None):
        self.supervision = supervision
        self.encoder = encoder
        self.alpha = float(alpha)
        self.text_folder = text_folder
        self.text_set, self.text_dir = text_set, text_dir  # where class_names() reads the run's names
        self.gather = gather  # None: one process; else rows of every rank, with gradients (distribute)
        self._class_embeddings = None

    def class_names(self, num_class):
        """The first `num_class` label names of the run's own descriptions (--text-dir or the
        dataset's), for logs and pictures; None when they cannot be read."""
        from text.descriptions import load_descriptions
        try:
            with warnings.catch_warnings():  # notes on the paper's files were shown when training
                warnings.simplefilter('ignore')
                return list(load_descriptions(self.text_set, num_class, self.text_dir).names)
        except UserError:
            return None

    def distribute(self, gather, rank):
        """Under DDP: the text term compares every sample of the global batch with every other, as
        one process (or DataParallel) does: `gather` concatenates every rank's rows, with gradients;
        each rank draws its own synonyms (generator seed + rank).

        No rescaling is needed: every rank computes the same global text term T; the gather's
        backward sums over the ranks the gradient each rank's T gives this rank's rows, and DDP's
        average of those W equal contributions is T's 1-process gradient. Cross-entropy stays the
        rank's own mean, whose average over equal per-rank batches is the global mean.
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
        if self.text_folder is not None:
            out.update(text_folder=str(self.text_folder), text_files=file_hashes(self.text_folder))
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
        logits, global_feats, logit_scale, parts = output
        if self.gather is None:
            total, ce, text = self.supervision.loss(logits, labels, global_feats[self.encoder], parts,
                                                    logit_scale, self.alpha)
            return {'loss': total, 'ce': ce, 'text': text}
        g = self.gather  # this rank's targets (its own synonym draws), then every rank's rows
        targets = self.supervision.targets(labels)
        text = text_loss(g(labels), g(global_feats[self.encoder]), [g(p) for p in parts], [g(t) for t in targets],
                         logit_scale)
        ce = F.cross_entropy(logits.float(), labels)
        return {'loss': ce + self.alpha * text, 'ce': ce, 'text': text}

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

    def benchmark_variants(self, arg):
        """The criteria `--phase benchmark` times, as changes to the run's args ({}: this one):
        text targets from the frozen table, and upstream's way (the batch's prompts re-encoded
        with gradients every step)."""
        frozen = self.supervision is None or self.supervision.frozen
        per_step = dict(te_lr_ratio=arg.te_lr_ratio or 1.0, text_embeddings=None,
                        text_encoder_weights=per_step_weights(arg.text_encoder_weights, self.encoder))
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
