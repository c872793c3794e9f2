"""GAP's criterion from the run's criterion_args: strict keys, the label set, one loss path."""
import dataclasses

import pytest
import torch

from model.losses import gap_loss
from test_processor import NUM_CLASS, TinyGAP, TinyModel, TinySupervision
from text.criterion import GAPCriterion, Settings, build
from torchlight.criterion import CrossEntropy
from torchlight.errors import UserError

GAP_ARGS = {'text_dir': 'ucla', 'loss_alpha': 1.0}


def criterion(model, args, training=False):
    return build(model, args, seed=0, device='cpu', log=print, training=training)


@pytest.mark.parametrize('args, message', [
    ({'loss_alph': 0.8}, r"criterion_args: text.criterion.Settings takes no argument 'loss_alph' "
                         r"\(did you mean: loss_alpha\?\)"),
    ({'loss_alpha': 'high'}, "criterion_args loss_alpha: expected a finite number >= 0, got 'high'"),
    ({'te_lr_ratio': -1}, 'criterion_args te_lr_ratio: expected a finite number >= 0'),
    ({'text_dir': '/no/such/labels'}, "label set '/no/such/labels': no such folder"),
])
def test_criterion_args_are_checked_in_one_line(args, message):
    for model in (TinyModel(), TinyGAP()):
        with pytest.raises(UserError, match=message) as info:
            criterion(model, args)
        assert '\n' not in str(info.value)


def test_a_gap_model_needs_a_label_set_and_a_text_loss_weight():
    with pytest.raises(UserError, match='needs a label set: give --text-dir'):
        criterion(TinyGAP(), {'loss_alpha': 1.0})
    with pytest.raises(UserError, match='needs the text-loss weight: give --loss-alpha'):
        criterion(TinyGAP(), {'text_dir': 'ucla'})
    gap = criterion(TinyGAP(), GAP_ARGS)  # the test phase: no text table
    assert gap.supervision is None and gap.alpha == 1.0 and gap.class_names(2) == ['pick up with one hand',
                                                                                   'pick up with two hands']
    assert gap.provenance()['text_folder'].endswith('ucla') and 'parts.txt' in gap.provenance()['text_files']


def test_a_plain_model_gets_cross_entropy_with_the_label_sets_names():
    plain = criterion(TinyModel(), GAP_ARGS)
    assert isinstance(plain, CrossEntropy) and plain.class_names(10)[-1] == 'carry'
    assert plain.class_names(11) is None and criterion(TinyModel(), {}).class_names(3) is None


def test_benchmark_variants_are_changes_to_criterion_args():
    fields = {f.name for f in dataclasses.fields(Settings)}
    gap = GAPCriterion(TinySupervision(NUM_CLASS, 0.0, 0), 'tiny-encoder', 0.8)
    variants = gap.benchmark_variants({'te_lr_ratio': 0.0, 'text_encoder_weights': 'w.pt', 'text_embeddings': 't.pt'})
    assert variants == {'gap_frozen': {}, 'gap_text_per_step': {'te_lr_ratio': 1.0, 'text_embeddings': None,
                                                                'text_encoder_weights': 'w.pt'}}
    tuned = GAPCriterion(TinySupervision(NUM_CLASS, 0.5, 0), 'tiny-encoder', 0.8)
    assert tuned.benchmark_variants({'te_lr_ratio': 0.5}) == {'gap_frozen': {'te_lr_ratio': 0.0}, 'gap_text_per_step': {}}
    assert all(set(changes) <= fields for changes in variants.values())


def test_one_loss_path_with_and_without_the_gather():
    """The criterion's loss is gap_loss of the batch; with a gather, gap_loss of every rank's rows
    (here two ranks holding the same batch: the same numbers)."""
    torch.manual_seed(0)
    model, labels = TinyGAP(), torch.tensor([0, 1, 2, 1])
    output = model(torch.randn(4, 6))
    gap = GAPCriterion(TinySupervision(NUM_CLASS, 0.0, 0), 'tiny-encoder', 0.8)
    gap.eval()  # no random draw: the same targets every call
    logits, feats, scale, parts = output
    expected = gap_loss(logits, labels, feats['tiny-encoder'], parts, gap.supervision.targets(labels), scale, 0.8)
    losses = gap(output, labels)
    assert [losses[k] for k in ('loss', 'ce', 'text')] == list(expected)
    gap.gather = lambda rows: torch.cat([rows, rows])
    twice = gap(output, labels)
    for key in ('loss', 'ce', 'text'):
        torch.testing.assert_close(twice[key], losses[key])
