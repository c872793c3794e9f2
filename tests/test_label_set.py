"""A label set is a folder: its names resolve, its class names and descriptions are read in label
order, the first N of them for a run of N classes."""
import pytest

from test_descriptions import NAMES, write_texts
from text.label_set import TEXT_DIR, LabelSet, resolve
from torchlight.errors import UserError


def test_names_resolve_to_the_shipped_folders_anything_else_is_a_folder(tmp_path):
    assert resolve('ntu') == TEXT_DIR / 'ntu' and resolve('ucla') == TEXT_DIR / 'ucla'
    assert resolve(tmp_path) == tmp_path and resolve(str(tmp_path)) == tmp_path
    with pytest.raises(UserError) as info:
        resolve(tmp_path / 'missing')
    assert str(tmp_path / 'missing') in str(info.value) and '\n' not in str(info.value)


def test_the_shipped_sets():
    ntu, ucla = LabelSet.open('ntu'), LabelSet.open('ucla')
    assert (len(ntu), len(ucla)) == (120, 10) and ntu.folder == TEXT_DIR / 'ntu'
    assert ntu.class_names(60) == ntu.names[:60] and ntu.class_names() == ntu.names  # NTU60: the first 60
    assert len(ntu.descriptions(60)) == 60 and ucla.descriptions().names == ucla.names
    assert set(ucla.file_hashes()) == {'label_names.txt', 'synonyms.txt', 'sentences.txt', 'parts.txt'}


def test_a_folder_of_our_files(tmp_path):
    labels = LabelSet.open(write_texts(tmp_path))
    assert labels.names == NAMES and len(labels) == 3 and labels.text_format == 'ours'
    assert labels.class_names(2) == NAMES[:2] and labels.descriptions(2).names == NAMES[:2]
    with pytest.raises(UserError, match='3 class names, the run has 4 classes'):
        labels.class_names(4)
    before = labels.file_hashes()
    (tmp_path / 'parts.txt').write_text((tmp_path / 'parts.txt').read_text().replace('head', 'heads', 1))
    assert labels.file_hashes()['parts.txt'] != before['parts.txt']


def test_class_names_need_only_the_label_names(tmp_path):
    """Pictures of a plain model name their classes even where the descriptions are broken."""
    (tmp_path / 'label_names.txt').write_text('wave\nsquat\n')
    labels = LabelSet.open(tmp_path)
    assert labels.names == ['wave', 'squat']
    with pytest.raises(UserError, match=r'synonyms.txt:0: file not found'):
        labels.descriptions()
    (tmp_path / 'label_names.txt').write_text('wave\n\nsquat\n')
    with pytest.raises(UserError, match=r'label_names.txt:2: empty line'):
        labels.names
