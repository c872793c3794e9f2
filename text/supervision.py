"""Per-step text targets for GAP's five text sets.

Frozen (default): every prompt of every class is encoded once at start (batches, no grad, or read
from the disk cache) into one table kept on the device; a step only indexes it. The global set is
a flat run of all synonyms with per-class offsets and counts; one synonym is drawn per sample with
the supervision's own torch.Generator (in eval mode the label name is used, for determinism).

Fine-tuning (te_lr_ratio > 0, upstream's way): the encoder's fp32 weights are trained; each step
encodes only the distinct prompts of the batch, in one call whose token context is cut to the
longest of them. `parameters()` gives the optimizer the encoder's weights; applying te_lr_ratio to
their learning rate is the trainer's job (upstream's schedule overwrote it).
"""
import time
import warnings

import torch

from text import cache as text_cache
from text.embedding_file import load_embedding_file
from text.encoders import build_encoder, weights_identity
from text.label_set import LabelSet
from text.prompts import SET_NAMES, build_prompts
from torchlight.errors import UserError

ENCODE_BATCH = 256


@torch.no_grad()
def encode_all(encoder, texts, batch_size=ENCODE_BATCH):
    """(len(texts), width) fp32 embeddings; each distinct text encoded once, similar lengths
    batched together so the per-batch token cut saves the most."""
    unique = sorted(set(texts), key=lambda t: (len(t), t))
    rows = []
    for start in range(0, len(unique), batch_size):
        rows.append(encoder.encode(unique[start:start + batch_size]).float())
    table = torch.cat(rows)
    index = {text: i for i, text in enumerate(unique)}
    return table[torch.tensor([index[t] for t in texts], device=table.device)]


def prompt_bank(label_set, num_class=None):
    """The five prompt sets of the first `num_class` classes of a label set (a LabelSet, or its name
    or folder), from its validated descriptions."""
    label_set = label_set if isinstance(label_set, LabelSet) else LabelSet.open(label_set)
    return build_prompts(label_set.descriptions(num_class))


class TextSupervision:
    def __init__(self, bank, device, encoder=None, table=None, te_lr_ratio=0.0, seed=0,
                 encoder_description='', random_weights=False):
        self.bank = bank
        self.texts = bank.all_texts()
        self.device = torch.device(device)
        self.encoder = encoder
        self.table = table
        self.te_lr_ratio = float(te_lr_ratio)
        self.encoder_description = encoder_description
        self.random_weights = random_weights  # tests and benchmarks only: the targets mean nothing
        self.training = True
        counts = [len(synonyms) for synonyms in bank.global_texts]
        self.global_counts = torch.tensor(counts, device=self.device)
        self.global_offsets = torch.cumsum(self.global_counts, 0) - self.global_counts
        C, n_global = bank.num_class, sum(counts)
        # part_rows[s, c]: row of part set s+1 of class c in self.texts / self.table
        self.part_rows = n_global + torch.arange(4 * C, device=self.device).view(4, C)
        # a CPU generator whatever the device: its state then resumes on any machine (a CUDA
        # generator's does not load into a CPU one), and the draws do not depend on the GPU type
        self.generator = torch.Generator()
        self.generator.manual_seed(seed)
        self.width = table.shape[1] if table is not None else encoder.width

    @classmethod
    def build(cls, label_set, num_class, encoder_name, weights=None, device='cpu', cache_dir=None,
              te_lr_ratio=0.0, seed=0, log=print, download_root=None, text_embeddings=None, width=None):
        """Load and validate the label set's descriptions, build the prompts, and the table or the encoder."""
        device = torch.device(device)
        bank = prompt_bank(label_set, num_class)
        texts = bank.all_texts()
        if text_embeddings is not None:  # a table exported ahead: no encoder package needed here
            if te_lr_ratio > 0:
                raise UserError('--text-embeddings is a frozen table: it cannot be fine-tuned (--te-lr-ratio > 0)')
            table, description = load_embedding_file(text_embeddings, texts, width=width, encoder_name=encoder_name)
            log(f'text: {len(texts)} prompt embeddings of {description}')
            return cls(bank, device, table=table.to(device), seed=seed, encoder_description=description,
                       random_weights='RANDOM WEIGHTS' in description)
        random_note = ' RANDOM WEIGHTS (tests/benchmarks only)' if weights == 'random' else ''
        if te_lr_ratio > 0:
            encoder = build_encoder(encoder_name, weights, device, seed, download_root).float()
            encoder.requires_grad_(True).train()
            log(f'text: fine-tuning {encoder.description} at lr ratio {te_lr_ratio}; '
                f'{len(texts)} prompts for {bank.num_class} classes')
            return cls(bank, device, encoder=encoder, te_lr_ratio=te_lr_ratio, seed=seed,
                       encoder_description=encoder.description, random_weights=weights == 'random')

        cache_dir = text_cache.default_cache_dir() if cache_dir is None else cache_dir
        identity, table = weights_identity(encoder_name, weights, seed, download_root), None
        if identity is not None:  # weights on disk: a table may already exist for them
            key = text_cache.cache_key(encoder_name, identity, texts)
            table = text_cache.load_table(cache_dir, encoder_name, key, len(texts))
        if table is not None:
            log(f'text: {len(texts)} prompt embeddings of {encoder_name}{random_note} read from '
                f'{text_cache.cache_path(cache_dir, encoder_name, key)}')
            description = f'{encoder_name} ({"RANDOM WEIGHTS" if weights == "random" else identity})'
            if weights == 'random':
                warnings.warn(f'text encoder {encoder_name} has RANDOM WEIGHTS: its text supervision '
                              'is meaningless (use this only for tests and benchmarks)')
        else:
            start = time.perf_counter()
            encoder = build_encoder(encoder_name, weights, device, seed, download_root).float()
            encoder.requires_grad_(False)
            table = encode_all(encoder, texts)
            description = encoder.description
            key = text_cache.cache_key(encoder_name, encoder.identity, texts)
            try:
                where = f'cached at {text_cache.save_table(cache_dir, encoder_name, key, table)}'
            except OSError as e:  # the cache only saves time; a read-only disk must not stop training
                where = f'not cached: {e}'
            log(f'text: encoded {len(texts)} prompts for {bank.num_class} classes with {description} '
                f'in {time.perf_counter() - start:.1f} s (frozen; {where})')
            del encoder  # frozen: the table is all a step needs
        return cls(bank, device, table=table.to(device), seed=seed, encoder_description=description,
                   random_weights=weights == 'random')

    @property
    def frozen(self):
        return self.encoder is None

    def parameters(self):
        return [] if self.frozen else list(self.encoder.parameters())

    def train(self, mode=True):
        self.training = mode
        if not self.frozen:
            self.encoder.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def rows(self, labels):
        """(5, N) rows into self.texts: a drawn synonym (label name in eval), then the four part sets."""
        labels = labels.to(self.device).long()
        first = self.global_offsets[labels]
        if self.training:
            draw = torch.rand(labels.shape[0], generator=self.generator)
            if self.device.type == 'cuda':  # pinned + non_blocking: no wait for the GPU's queue
                draw = draw.pin_memory()
            draw = draw.to(self.device, non_blocking=True)
            counts = self.global_counts[labels]
            first = first + torch.minimum((draw * counts).long(), counts - 1)
        return torch.cat([first[None], self.part_rows[:, labels]])

    def targets(self, labels):
        """List of 5 (N, width) text embeddings for a batch of labels, in SET_NAMES order."""
        rows = self.rows(labels)
        if self.frozen:
            return list(self.table[rows].unbind(0))
        unique, inverse = torch.unique(rows, return_inverse=True)
        embeddings = self.encoder.encode([self.texts[i] for i in unique.tolist()])
        return list(embeddings[inverse].unbind(0))

    def __repr__(self):
        mode = 'frozen table' if self.frozen else f'fine-tuned (lr ratio {self.te_lr_ratio})'
        return (f'TextSupervision({self.bank.num_class} classes, sets {", ".join(SET_NAMES)}, '
                f'{self.encoder_description}, {mode})')
