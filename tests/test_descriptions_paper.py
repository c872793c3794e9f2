"""The paper's own description files (upstream's text/ names) read leniently with --text-dir;
our own files stay strict. Every file here is a tiny stand-in written for the test."""
import warnings

import pytest

from test_descriptions import replace_line, write_texts
from text.descriptions import main
from text.label_set import LabelSet, PaperFiles
from text.prompts import build_prompts
from torchlight.errors import UserError

PAPER_FILES = {'ntu': PaperFiles(''), 'ucla': PaperFiles('ucla_')}  # upstream's two sets


def load(folder, num_class=None):
    return LabelSet.open(folder).descriptions(num_class)

UCLA = ['lift with one hand', 'lift with two hands', 'drop litter', 'walk around', 'sit down',
        'stand up', 'put on a jacket', 'take off a jacket', 'throw', 'carry']


def ucla_lines():
    """10 classes in the paper's NW-UCLA line formats, with the paper's quirks in them."""
    synonyms = [f'{n},{n} slowly, {n} quickly, {n} again' for n in UCLA]
    synonyms[0] = 'lift with one hand,raise one-handed, scoop up, raise one-handed, grab'  # repeat
    parts = [f'{n};head: faces the {n} motion;hand: acts during {n};arm: moves for {n};'
             f'hip: steadies for {n};leg: supports {n};foot: stays down during {n}' for n in UCLA]
    parts[3] = 'walk around;head: none;hand: none;arm: swings;hip: sways;leg: steps;foot: none'
    parts[9] = parts[8]  # the very same line for two classes
    # the paper's NW-UCLA sentence file puts a semicolon after the name (its NTU one a comma)
    sentences = [f'{n};A person does {n} with the whole body, one step after another.' for n in UCLA]
    sentences[1] = 'lift with two hands;Both hands lift the box. Then the person stands.'  # no comma
    sentences[5] = 'stand up;' + sentences[4].partition(';')[2]  # same paragraph as class 4
    return {'synonyms': synonyms, 'sentences': sentences, 'parts': parts}


def write_paper(folder, dataset='ucla', lines=None, label_file=None, names=None):
    folder.mkdir(parents=True, exist_ok=True)
    lines = lines or ucla_lines()
    files = PAPER_FILES[dataset]
    for kind, kind_lines in lines.items():
        (folder / getattr(files, kind)).write_text('\n'.join(kind_lines) + '\n')
    if label_file:
        (folder / label_file).write_text('\n'.join(names) + '\n')
    return folder


NTU = ['drink water', 'eat a snack', 'brush teeth', 'comb hair']


def ntu_lines():
    return {'synonyms': [f'{n},{n} now, {n} at home, {n} now' for n in NTU],
            'sentences': [f'{n},The person does {n}, moving the hands near the face.' for n in NTU],
            'parts': [f'{n};head: tilts for {n};hand: near the face;arm: bends;hip: none;'
                      f'leg: none;foot: none' for n in NTU]}


def test_ucla_style_folder_loads_with_every_quirk_kept(tmp_path):
    folder = write_paper(tmp_path)
    assert LabelSet.open(folder).text_format == 'paper'
    with pytest.warns(UserWarning, match=r'ucla_pasta_openai_t01.txt:10: label name \'throw\' differs'):
        d = load(folder, 10)
    assert d.text_format == 'paper' and len(d) == 10
    assert d.names == UCLA  # no label-name file: the first field of the synonyms lines
    assert d.synonyms[0] == ['lift with one hand', 'raise one-handed', 'scoop up', 'raise one-handed', 'grab']
    assert d.parts[0][0] == 'head: faces the lift with one hand motion'
    assert d.parts[3] == ('head: none', 'hand: none', 'arm: swings', 'hip: sways', 'leg: steps', 'foot: none')
    assert d.parts[9] == d.parts[8] and d.sentences[5] == d.sentences[4]


def test_paper_prompts_weigh_a_repeated_synonym_and_keep_fields_verbatim(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        bank = build_prompts(load(write_paper(tmp_path), 10))
    assert bank.global_texts[0].count('raise one-handed') == 2  # drawn twice as often, as upstream
    assert bank.part_texts[0][3] == 'walk around, head: none'
    assert bank.part_texts[3][0] == ('lift with one hand, leg: supports lift with one hand, '
                                     'foot: stays down during lift with one hand')


@pytest.mark.parametrize('label_file', ['ntu120_label_map.txt', 'label_names.txt', None])
def test_ntu_style_folder_first_classes_of_a_larger_file(tmp_path, label_file):
    folder = write_paper(tmp_path, 'ntu', ntu_lines(), label_file, NTU)
    d = load(folder, 3)  # an NTU60-style run on 120-line files
    assert d.names == NTU[:3] and len(d.synonyms) == len(d.parts) == len(d.sentences) == 3
    assert d.synonyms[1] == ['eat a snack', 'eat a snack now', 'eat a snack at home', 'eat a snack now']
    assert d.parts[2][3:] == ('hip: none', 'leg: none', 'foot: none')
    assert d.sentences[0] == 'The person does drink water, moving the hands near the face.'


def test_label_map_names_are_used_and_differences_are_a_note(tmp_path):
    names = ['drink water.', 'Eat a snack', 'brush teeth', 'comb the hair']
    folder = write_paper(tmp_path, 'ntu', ntu_lines(), 'ntu120_label_map.txt', names)
    with pytest.warns(UserWarning) as record:
        d = load(folder, 4)
    assert d.names == names  # case and a final period are not a difference
    assert len(record) == 3 and all(':4: label name \'comb hair\'' in str(w.message) for w in record)


def test_sentence_lines_split_at_the_comma_or_semicolon_after_the_name(tmp_path):
    ucla = ucla_lines()
    ucla['sentences'][2] = 'drop litter;He looks around, then lets go; the bag falls, softly.'
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter('always')
        d = load(write_paper(tmp_path / 'ucla', 'ucla', ucla), 10)
    # a name cut at a comma inside the paragraph would differ from the label name: a note
    assert not [w for w in record if PAPER_FILES['ucla'].sentences in str(w.message)]
    assert d.sentences[1] == 'Both hands lift the box. Then the person stands.'
    assert d.sentences[2] == 'He looks around, then lets go; the bag falls, softly.'
    ntu = ntu_lines()
    ntu['sentences'][1] = 'eat a snack,He chews; then, slowly, he swallows.'
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        d = load(write_paper(tmp_path / 'ntu', 'ntu', ntu), 4)
    assert d.sentences[1] == 'He chews; then, slowly, he swallows.'
    assert d.sentences[0] == 'The person does drink water, moving the hands near the face.'


def test_label_map_with_crlf_and_leading_spaces_like_the_papers(tmp_path):
    folder = write_paper(tmp_path, 'ntu', ntu_lines())
    (folder / 'ntu120_label_map.txt').write_bytes(
        '\r\n'.join(f' {n}' for n in NTU).encode())  # no final newline either
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        d = load(folder, 4)
    assert d.names == NTU


def test_sentence_file_is_optional_and_odd_separators_are_tolerated(tmp_path):
    lines = ntu_lines()
    del lines['sentences']
    lines['synonyms'][0] = 'drink water,sip,, gulp,'
    lines['parts'][1] = 'eat a snack;head: down;hand: to mouth;arm: lifts;hip: none;leg: none;foot: flat;'
    lines['parts'][2] = 'brush teeth;head: still;hand: brushes;arm: shakes;hip: none;leg: none;foot: flat; heels up'
    d = load(write_paper(tmp_path, 'ntu', lines), 4)
    assert d.sentences == [''] * 4
    assert d.synonyms[0] == ['drink water', 'sip', 'gulp']
    assert d.parts[1][5] == 'foot: flat'
    assert d.parts[2][5] == 'foot: flat, heels up'  # upstream's foot prompt takes every later field


def test_one_folder_holding_both_sets_like_upstreams(tmp_path, capsys):
    """A run reads the smallest set holding its class count: NW-UCLA's for 10 classes, NTU's for
    NTU60 and NTU120 (here 4 NTU classes stand for 120)."""
    folder = write_paper(tmp_path, 'ntu', ntu_lines(), 'ntu120_label_map.txt', NTU)
    write_paper(folder, 'ucla')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        assert load(folder, 10).names == UCLA
        assert load(folder, 4).names == NTU and load(folder, 3).names == NTU[:3]
    assert LabelSet.open(folder).class_names(10) == UCLA
    with pytest.raises(UserError, match=r"holds the paper's files of 2 label sets \(synonym_openai_t01.txt: 4 "
                                        r"classes, ucla_synonym_openai_t01.txt: 10 classes\)"):
        LabelSet.open(folder).names
    with pytest.raises(UserError, match='2 label sets'):
        main([str(folder)])
    assert main([str(folder), '--num-class', '10']) == 0
    out = capsys.readouterr().out
    assert "ok: " in out and "10 classes (the paper's files" in out and 'note: ' in out


def test_a_run_of_more_classes_than_the_folder_holds(tmp_path):
    folder = write_paper(tmp_path, 'ucla')
    with pytest.raises(UserError, match='ucla_synonym_openai_t01.txt:10: 10 label names, the dataset has 60 classes'):
        load(folder, 60)


@pytest.mark.parametrize('kind, line, text, message', [
    ('parts', 3, 'drop litter;head: down;hand: lets go;arm: lowers;hip: still', '5 semicolon-separated fields'),
    ('parts', 7, '', 'empty line'),
    ('sentences', 2, 'lift with two hands A person bends and lifts.', 'no comma'),
    ('synonyms', 4, ',walking, strolling', 'empty label name'),
])
def test_structural_errors_name_file_and_line(tmp_path, kind, line, text, message):
    folder = write_paper(tmp_path)
    path = folder / getattr(PAPER_FILES['ucla'], kind)
    replace_line(path, line, text)
    with pytest.raises(UserError, match=message) as e:
        load(folder, 10)
    assert f'{path}:{line}:' in str(e.value) and '\n' not in str(e.value)


def test_wrong_line_count_and_empty_file(tmp_path):
    folder = write_paper(tmp_path)
    parts = folder / PAPER_FILES['ucla'].parts
    parts.write_text('\n'.join(parts.read_text().splitlines()[:9]) + '\n')
    with pytest.raises(UserError, match=rf'{parts}:9: 9 classes, expected 10'):
        load(folder, 10)
    parts.write_text('\n\n')
    with pytest.raises(UserError, match=rf'{parts}:0: empty file'):
        load(folder, 10)
    with pytest.raises(UserError, match=r'ucla_synonym_openai_t01.txt:10: 10 label names, the dataset has 12'):
        load(write_paper(tmp_path / 'fresh'), 12)


@pytest.mark.parametrize('quirk', ['repeated synonym', 'none field', 'identical lines', 'no label names'])
def test_strict_mode_still_rejects_the_quirks_in_our_format(tmp_path, quirk):
    folder = write_texts(tmp_path)
    if quirk == 'repeated synonym':
        replace_line(folder / 'synonyms.txt', 1, 'drink water,drinking, sip water, drinking')
        message = r'synonyms.txt:1: synonym .drinking. repeats'
    elif quirk == 'none field':
        replace_line(folder / 'parts.txt', 2, 'eat meal;head: none;hand: to mouth;arm: lifts;hip: still;'
                                              'leg: bent;foot: flat')
        message = r'parts.txt:2: placeholder head description'
    elif quirk == 'identical lines':
        first = (folder / 'sentences.txt').read_text().splitlines()[0]
        replace_line(folder / 'sentences.txt', 3, 'brush teeth,' + first.partition(',')[2])
        message = r'sentences.txt:3: same paragraph as line 1'
    else:
        (folder / 'label_names.txt').unlink()
        message = r'label_names.txt:0: file not found'
    with pytest.raises(UserError, match=message):
        load(folder)


def test_format_can_be_forced(tmp_path):
    ours, paper = write_texts(tmp_path / 'ours'), write_paper(tmp_path / 'paper')
    assert LabelSet.open(ours).check(text_format='ours')[0].text_format == 'ours'
    assert 'none of the paper' in LabelSet.open(ours).check(text_format='paper')[1][0].message
    assert 'label_names.txt:0: file not found' in str(LabelSet.open(paper).check(10, text_format='ours')[1][0])
    assert main([str(paper), '--format', 'ours']) == 1


def test_part_prompts_open_with_the_parts_lines_own_name_as_the_papers_code(tmp_path):
    names = ['drink water', 'eat a snack', 'brush teeth', 'comb the hair']  # label map differs on 4
    folder = write_paper(tmp_path, 'ntu', ntu_lines(), 'ntu120_label_map.txt', names)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        bank = build_prompts(load(folder, 4))
    assert bank.part_texts[0][3] == 'comb hair, head: tilts for comb hair'  # the parts line's name
    assert bank.global_texts[3][0] == 'comb hair'  # the synonyms line's own first entry
