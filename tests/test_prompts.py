"""The five text sets per class: exact strings, the fixed hand comma, the flat order."""
import pytest

from test_descriptions import write_texts
from text.label_set import LabelSet
from text.prompts import SET_NAMES, build_prompts, part_prompt


def bank(tmp_path):
    return build_prompts(LabelSet.open(write_texts(tmp_path)).descriptions())


def test_exact_prompts_of_two_classes(tmp_path):
    b = bank(tmp_path)
    assert SET_NAMES == ('global', 'head', 'hand', 'hip', 'foot')
    assert b.global_texts[0] == ['drink water', 'drinking', 'sip water', 'take a drink', 'have a sip']
    head, hand, hip, foot = (part[0] for part in b.part_texts)
    assert head == 'drink water, head tilts back slightly'
    assert hand == 'drink water, hand holds a cup at the lips, arm bends to raise the cup'
    assert hip == 'drink water, hip stays still'
    assert foot == 'drink water, leg stands relaxed, foot rests flat'
    assert b.part_texts[1][2] == ('brush teeth, hand moves a brush side to side, '
                                  'arm shakes quickly near the face')
    assert b.part_texts[3][1] == 'eat meal, leg bends under the table, foot rests on the floor'


def test_hand_prompt_keeps_the_comma_upstream_dropped():
    fields = ('head h', 'hand grips', 'arm lifts', 'hip h', 'leg l', 'foot f')
    assert part_prompt('throw', fields, 'hand') == 'throw, hand grips, arm lifts'
    assert 'throwhand' not in part_prompt('throw', fields, 'hand')


def test_all_texts_is_global_runs_then_part_sets(tmp_path):
    b = bank(tmp_path)
    texts = b.all_texts()
    n_global = sum(len(s) for s in b.global_texts)
    assert b.num_class == 3
    assert len(texts) == n_global + 4 * 3
    assert texts[:5] == b.global_texts[0]
    assert texts[n_global:n_global + 3] == b.part_texts[0]
    assert texts[-1] == b.part_texts[3][2]


def test_shipped_prompts_fit_clips_context_untruncated():
    pytest.importorskip('clip')
    from text.encoders import CLIP_CONTEXT, ClipTextEncoder
    for dataset in ('ntu', 'ucla'):
        texts = build_prompts(LabelSet.open(dataset).descriptions()).all_texts()
        tokens = ClipTextEncoder.tokenize(texts)
        assert tokens.shape[1] < CLIP_CONTEXT, f'{dataset}: a prompt would be cut at 77 tokens'
        assert (tokens.argmax(1) > 0).all()  # every prompt ends with its EOT token
