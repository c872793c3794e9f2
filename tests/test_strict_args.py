"""Config strictness below the top level (model_args, feeder args), --help defaults, run-state format."""
import pytest
import torch

from torchlight.checkpoint import load_run_state
from torchlight.cli import get_parser
from torchlight.errors import UserError
from torchlight.importing import build


def test_a_wrong_model_key_names_the_closest_valid_ones():
    with pytest.raises(UserError, match=r"model_args: model.ctrgcn.Model takes no argument 'num_clas' "
                                        r"\(did you mean: num_class, "):
        build('model.ctrgcn.Model', {'num_clas': 60}, 'model_args')  # closest first


def test_a_wrong_feeder_key_and_a_missing_one():
    with pytest.raises(UserError, match=r"test_feeder_args: feeders.feeder_ntu.Feeder takes no argument "
                                        r"'windw_size' \(did you mean: window_size\?\)"):
        build('feeders.feeder_ntu.Feeder', {'data_path': 'x.npz', 'windw_size': 64}, 'test_feeder_args')
    with pytest.raises(UserError, match='train_feeder_args: feeders.feeder_ntu.Feeder needs data_path'):
        build('feeders.feeder_ntu.Feeder', {}, 'train_feeder_args')


def test_a_far_off_key_lists_the_valid_names():
    with pytest.raises(UserError, match=r"takes no argument 'zzz' \(valid: num_class, num_point"):
        build('model.ctrgcn.Model', {'zzz': 1}, 'model_args')


@pytest.mark.parametrize('extra', [{'head': ['ViT-B/32']}, {'k': 8}])
def test_plain_ctrgcn_refuses_text_only_arguments(extra):
    with pytest.raises(UserError, match='plain CTR-GCN without text heads'):
        build('model.ctrgcn.Model', dict(extra), 'model_args')


def test_help_shows_every_default():
    parser = get_parser()
    text = ' '.join(parser.format_help().split())
    for action in parser._actions:
        if action.option_strings and action.dest != 'help':
            assert f'{action.option_strings[-1]}' in text
    assert '(default: 0.001)' in text and '(default: [20, 40, 60])' in text
    assert '(default: text.criterion.build)' in text and '(default: 32)' in text


def test_a_last_pt_of_the_first_format_is_refused_in_one_line(tmp_path):
    old = tmp_path / 'last.pt'
    torch.save({'epoch': 1, 'model': {}, 'text_encoder': [], 'text_rng': None}, old)
    with pytest.raises(UserError) as info:
        load_run_state(str(old))
    message = str(info.value)
    assert '\n' not in message and 'format 1' in message and '--overwrite' in message
    (tmp_path / 'junk.pt').write_bytes(b'not a torch file')
    with pytest.raises(UserError, match='cannot read'):
        load_run_state(str(tmp_path / 'junk.pt'))
