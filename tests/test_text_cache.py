"""Embedding cache: keys, atomic files, and hit / miss / invalidation through TextSupervision.build."""
import zlib

import pytest
import torch
from torch import nn

import text.supervision as supervision
from test_descriptions import replace_line, write_texts
from text import cache


class FakeEncoder(nn.Module):
    """Deterministic stand-in for a text encoder that records what it was asked to encode."""

    def __init__(self, name='ViT-B/32', width=8, identity='random:seed=0'):
        super().__init__()
        self.name, self.width, self.identity = name, width, identity
        self.description = f'{name} (fake)'
        self.scale = nn.Parameter(torch.ones(width))
        self.calls = []

    def encode(self, texts):
        self.calls.append(list(texts))
        rows = [[zlib.crc32(f'{t}|{k}'.encode()) % 1000 / 1000 for k in range(self.width)] for t in texts]
        return torch.tensor(rows) * self.scale


@pytest.fixture
def fake_builds(monkeypatch):
    """Replace the real encoder factory; returns the list of encoders built."""
    built = []

    def build(name, weights=None, device='cpu', seed=0, download_root=None):
        built.append(FakeEncoder(name, identity=f'random:seed={seed}'))
        return built[-1]

    monkeypatch.setattr(supervision, 'build_encoder', build)
    return built


def build(text_dir, cache_dir, seed=0, **kwargs):
    return supervision.TextSupervision.build(text_dir, None, 'ViT-B/32', weights='random',
                                             cache_dir=cache_dir, seed=seed, log=lambda *_: None, **kwargs)


def test_key_depends_on_name_weights_and_exact_texts():
    key = cache.cache_key('ViT-B/32', 'random:seed=0', ['a', 'b'])
    assert key == cache.cache_key('ViT-B/32', 'random:seed=0', ['a', 'b'])
    for other in [cache.cache_key('ViT-B/16', 'random:seed=0', ['a', 'b']),
                  cache.cache_key('ViT-B/32', 'random:seed=1', ['a', 'b']),
                  cache.cache_key('ViT-B/32', 'random:seed=0', ['b', 'a']),
                  cache.cache_key('ViT-B/32', 'random:seed=0', ['a', 'b '])]:
        assert other != key


def test_save_load_roundtrip_and_damaged_entry(tmp_path):
    table = torch.randn(4, 3)
    key = cache.cache_key('ViT-B/32', 'x', list('abcd'))
    path = cache.save_table(tmp_path, 'ViT-B/32', key, table)
    assert path.parent == tmp_path and path.name.startswith('ViT-B_32-')
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind
    assert torch.equal(cache.load_table(tmp_path, 'ViT-B/32', key, 4), table)
    with pytest.warns(UserWarning, match='damaged'):  # not the table this key promised
        assert cache.load_table(tmp_path, 'ViT-B/32', key, 5) is None
    assert cache.load_table(tmp_path, 'ViT-B/32', cache.cache_key('ViT-B/32', 'y', list('abcd')), 4) is None
    path.write_bytes(b'not a torch file')
    with pytest.warns(UserWarning, match='damaged'):
        assert cache.load_table(tmp_path, 'ViT-B/32', key, 4) is None


def test_default_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv('GAP_CACHE_DIR', str(tmp_path))
    assert cache.default_cache_dir() == tmp_path
    monkeypatch.delenv('GAP_CACHE_DIR')
    assert cache.default_cache_dir().parts[-3:] == ('.cache', 'gap', 'text_embeddings')


def test_miss_then_hit_then_invalidation(tmp_path, fake_builds):
    texts_dir, cache_dir = write_texts(tmp_path / 'texts'), tmp_path / 'cache'
    first = build(texts_dir, cache_dir)  # miss: encoder built, every prompt encoded once
    assert len(fake_builds) == 1 and len(list(cache_dir.iterdir())) == 1
    assert sorted(t for call in fake_builds[0].calls for t in call) == sorted(set(first.texts))

    with pytest.warns(UserWarning, match='RANDOM WEIGHTS'):  # the hit still says so
        second = build(texts_dir, cache_dir)  # hit: no encoder at all
    assert len(fake_builds) == 1 and 'RANDOM WEIGHTS' in second.encoder_description
    assert torch.equal(second.table, first.table)

    replace_line(texts_dir / 'parts.txt', 2,
                 'eat meal;head bows over the plate;hand carries food to the mouth;arm lifts and lowers;'
                 'hip is seated;leg bends under the table;foot rests on the floor')
    third = build(texts_dir, cache_dir)  # a changed description: miss, re-encoded
    assert len(fake_builds) == 2 and len(list(cache_dir.iterdir())) == 2
    changed = third.texts.index('eat meal, head bows over the plate')
    assert not torch.equal(third.table[changed], first.table[changed])

    build(texts_dir, cache_dir, seed=1)  # other random weights: miss
    assert len(fake_builds) == 3
