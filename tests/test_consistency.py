"""A run's pieces must agree: true/false are booleans, train and test feeders give one kind of item,
the model has a class for every label, and class names come from the run's own descriptions."""
import shutil
from types import SimpleNamespace

import pytest

from conftest import REPO
from text.criterion import GAPCriterion
from text.criterion import build as build_criterion
from text.label_set import LabelSet
from torchlight import assemble, outputs
from torchlight.args import parse_kv_dict
from torchlight.criterion import CrossEntropy
from torchlight.errors import UserError
from torchlight.importing import build


class Options:
    def __init__(self, debug=False, repeat=1, name=None):
        self.debug, self.repeat, self.name = debug, repeat, name


@pytest.mark.parametrize('text, value', [("debug='false'", False), ('debug=false', False), ("debug='True'", True),
                                         ('debug=TRUE', True), ('debug=False', False), ('debug=0', 0)])
def test_true_and_false_are_booleans_quoted_or_not(text, value):
    parsed = parse_kv_dict(text)['debug']
    assert parsed == value and type(parsed) is type(value)


def test_a_boolean_option_refuses_other_strings_and_takes_0_1():
    with pytest.raises(UserError, match="test_feeder_args: debug is a boolean option .*got 'yes'"):
        build('test_consistency.Options', {'debug': 'yes'}, 'test_feeder_args')
    assert build('test_consistency.Options', {'debug': 1}, 'x').debug is True
    assert build('test_consistency.Options', {'name': 'false', 'repeat': 2}, 'x').name == 'false'  # not a bool option


def test_a_quoted_false_really_turns_debug_off_for_the_ucla_feeder():
    """`--test-feeder-args debug='false'` kept 100 of the 464 NW-UCLA val samples (a true string)."""
    args = parse_kv_dict("label_path='val',debug='false'")
    assert args['debug'] is False


def feeder(**kw):
    return SimpleNamespace(**{'modality': 'joint', 'num_class': 10, 'layout': 'nw-ucla', **kw})


@pytest.mark.parametrize('key, train, test', [('modality', 'bone', 'joint'), ('num_class', 60, 120),
                                              ('layout', 'ntu', 'nw-ucla')])
def test_train_and_test_feeders_must_agree(key, train, test):
    with pytest.raises(UserError) as info:
        assemble.check_feeders_agree(feeder(**{key: train}), feeder(**{key: test}), 'f.Feeder')
    message = str(info.value)
    assert f'train_feeder_args give {key} {train!r} but test_feeder_args give {test!r}' in message
    assemble.check_feeders_agree(feeder(), feeder(), 'f.Feeder')  # the same kind: no error


def test_the_model_needs_a_class_for_every_label():
    model = SimpleNamespace(num_class=3)
    with pytest.raises(UserError, match='num_class 3 does not fit the data: its labels go up to 5'):
        assemble.check_model_fits(model, SimpleNamespace(label=[0, 5, 1]))
    assemble.check_model_fits(model, SimpleNamespace(label=[0, 2, 1]))


def test_class_names_come_from_the_runs_label_set(tmp_path):
    """--text-dir with other names: pictures and outputs show them, not the dataset's defaults;
    plain cross-entropy gets them from its factory too."""
    folder = tmp_path / 'mine'
    shutil.copytree(REPO / 'text' / 'ucla', folder)
    for name in ('label_names.txt', 'synonyms.txt', 'sentences.txt', 'parts.txt'):
        path = folder / name
        path.write_text(path.read_text().replace('pick up with one hand', 'grab one-handed', 1))
    criterion = GAPCriterion(None, 'all-MiniLM-L6-v2', 1.0, label_set=LabelSet.open(folder))
    ucla = SimpleNamespace(class_names=lambda n: ['from the feeder'] * n)
    names = outputs.class_names(criterion, ucla, 10)
    assert names[0] == 'grab one-handed' and names[1] == 'pick up with two hands' and len(names) == 10
    plain = build_criterion(SimpleNamespace(), {'text_dir': str(folder)}, 0, 'cpu', print)
    assert isinstance(plain, CrossEntropy) and outputs.class_names(plain, object(), 10) == names
    # too few or unreadable names: the feeder's, then numbers
    assert outputs.class_names(criterion, ucla, 11) == ['from the feeder'] * 11
    (folder / 'label_names.txt').unlink()
    assert outputs.class_names(criterion, ucla, 2) == ['from the feeder'] * 2
    assert outputs.class_names(plain, object(), 2) == outputs.class_names(CrossEntropy(), object(), 2) == ['0', '1']
