"""Description files: upstream line formats, validation problems named as file:line, shipped files."""
import pytest

from conftest import REFERENCE, need
from text.descriptions import check_our_files, main, parse_parts_line, parse_sentence_line
from text.label_set import TEXT_DIR, LabelSet
from torchlight.errors import UserError

NAMES = ['drink water', 'eat meal', 'brush teeth']
SYNONYMS = {
    'drink water': ['drinking', 'sip water', 'take a drink', 'have a sip'],
    'eat meal': ['eating', 'have a meal', 'dine', 'take food'],
    'brush teeth': ['teeth brushing', 'clean teeth', 'scrub teeth', 'tooth brushing'],
}
SENTENCES = {
    'drink water': 'A person lifts a cup to the mouth, tilts it, and swallows some water.',
    'eat meal': 'A person brings food to the mouth with a hand or a spoon and chews it.',
    'brush teeth': 'A person moves a toothbrush back and forth across the teeth.',
}
PARTS = {
    'drink water': ('head tilts back slightly', 'hand holds a cup at the lips', 'arm bends to raise the cup',
                    'hip stays still', 'leg stands relaxed', 'foot rests flat'),
    'eat meal': ('head leans toward the food', 'hand carries food to the mouth', 'arm lifts and lowers',
                 'hip is seated', 'leg bends under the table', 'foot rests on the floor'),
    'brush teeth': ('head faces forward with mouth open', 'hand moves a brush side to side',
                    'arm shakes quickly near the face', 'hip stays still', 'leg stands straight',
                    'foot stays planted'),
}


def write_texts(folder, names=NAMES):
    """A valid small dataset folder in upstream's formats; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / 'label_names.txt').write_text(''.join(f'{n}\n' for n in names))
    (folder / 'synonyms.txt').write_text(''.join(f'{n},{", ".join(SYNONYMS[n])}\n' for n in names))
    (folder / 'sentences.txt').write_text(''.join(f'{n},{SENTENCES[n]}\n' for n in names))
    (folder / 'parts.txt').write_text(''.join(f'{n};{";".join(PARTS[n])}\n' for n in names))
    return folder


def replace_line(path, number, text):
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text('\n'.join(lines) + '\n')


def test_valid_files_load_in_label_order(tmp_path):
    d = LabelSet.open(write_texts(tmp_path)).descriptions()
    assert d.names == NAMES
    assert d.synonyms[0] == ['drink water', 'drinking', 'sip water', 'take a drink', 'have a sip']
    assert d.sentences[2] == SENTENCES['brush teeth']
    assert d.parts[1] == PARTS['eat meal']


def test_first_num_class_classes_of_a_larger_dataset(tmp_path):
    d = LabelSet.open(write_texts(tmp_path)).descriptions(2)
    assert d.names == NAMES[:2] and len(d.parts) == 2


def test_sentence_splits_on_first_comma_only():
    name, paragraph = parse_sentence_line('drink water,A person lifts a cup, tilts it, and drinks.\n')
    assert name == 'drink water' and paragraph == 'A person lifts a cup, tilts it, and drinks.'


def test_parts_line_accepts_plural_part_words():
    _, fields = parse_parts_line('walk;head looks ahead;hands swing;arms swing;hips sway;legs step;feet lift')
    assert fields[-1] == 'feet lift'


@pytest.mark.parametrize('filename, line, text, message', [
    ('parts.txt', 2, 'eat meal;head down;hand to mouth;arm lifts;hip still;leg bent', '7'),
    ('parts.txt', 1, 'drink water;head back;hand cup;arm bends;hip still;leg relaxed;toe taps', "'foot'"),
    ('parts.txt', 3, 'brush teeth;head;hand brushes;arm shakes;hip still;leg straight;foot planted', 'empty head'),
    ('parts.txt', 2, 'eat meal;head TODO;hand to mouth;arm lifts;hip still;leg bent;foot flat', 'placeholder'),
    ('synonyms.txt', 2, 'eat meal,eating,,dine', 'empty synonym'),
    ('synonyms.txt', 1, 'drink water,drinking,sip,Drinking', 'repeats'),
    ('synonyms.txt', 3, 'brush hair,combing,styling', 'does not match'),
    ('sentences.txt', 2, 'eat meal', 'no comma'),
    ('sentences.txt', 1, 'drink water,...', 'placeholder'),
    ('sentences.txt', 2, '', 'empty line'),
])
def test_problem_named_with_file_and_line(tmp_path, filename, line, text, message):
    folder = write_texts(tmp_path)
    replace_line(folder / filename, line, text)
    with pytest.raises(UserError, match=message) as e:
        LabelSet.open(folder).descriptions()
    assert f'{folder / filename}:{line}:' in str(e.value)
    assert '\n' not in str(e.value)


def test_two_classes_with_the_same_part_set_are_refused(tmp_path):
    folder = write_texts(tmp_path)
    replace_line(folder / 'parts.txt', 3, 'brush teeth;' + ';'.join(PARTS['drink water']))
    with pytest.raises(UserError, match=r'parts.txt:3: same part descriptions as line 1'):
        LabelSet.open(folder).descriptions()


def test_class_count_must_match(tmp_path):
    folder = write_texts(tmp_path)
    (folder / 'synonyms.txt').write_text((folder / 'synonyms.txt').read_text().splitlines()[0] + '\n')
    _, problems = check_our_files(folder)
    assert any('1 classes, expected 3' in p.message for p in problems)
    with pytest.raises(UserError, match='label names, the dataset has 4 classes'):
        LabelSet.open(folder).descriptions(4)


def test_missing_file_and_min_synonyms(tmp_path):
    folder = write_texts(tmp_path)
    assert 'need at least 8' in LabelSet.open(folder).check(min_synonyms=8)[1][0].message
    (folder / 'parts.txt').unlink()
    with pytest.raises(UserError, match=r'parts.txt:0: file not found'):
        LabelSet.open(folder).descriptions()


def test_cli_lists_every_problem(tmp_path, capsys):
    folder = write_texts(tmp_path)
    assert main([str(folder), '--min-synonyms', '4']) == 0
    replace_line(folder / 'sentences.txt', 1, 'drink water,TBD')
    replace_line(folder / 'parts.txt', 2, 'eat meal;head')
    assert main([str(folder)]) == 1
    out = capsys.readouterr().out
    assert 'sentences.txt:1:' in out and 'parts.txt:2:' in out and 'synonyms.txt:1:' in out


def test_an_unknown_label_set_is_one_line(tmp_path):
    with pytest.raises(UserError, match=r"label set 'kinetics': no such folder \(give one of ntu, ucla or a folder"):
        LabelSet.open('kinetics')
    with pytest.raises(UserError, match='no such folder'):
        main([str(tmp_path / 'missing')])


@pytest.mark.parametrize('name, classes', [('ntu', 120), ('ucla', 10)])
def test_shipped_files_are_complete_and_valid(name, classes):
    """All 130 shipped classes: every file present, >= 8 synonyms, no problem of any kind."""
    descriptions, problems = LabelSet.open(name).check(min_synonyms=8)
    assert not problems, '\n'.join(map(str, problems[:20]))
    assert len(descriptions) == len(LabelSet.open(name)) == classes


def test_shipped_ntu_label_names_are_the_reference_names():
    reference = need(REFERENCE / 'ntu120_label_names.txt').read_text().split('\n')
    assert (TEXT_DIR / 'ntu' / 'label_names.txt').read_text().split('\n') == reference
