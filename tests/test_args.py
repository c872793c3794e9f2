"""Command-line parsing: str2bool, `k=v,...` dicts without eval, YAML configs, flag defaults."""
import argparse

import pytest

from torchlight.args import load_config, parse_kv_dict, str2bool
from torchlight.cli import get_parser, parse_args
from torchlight.errors import UserError
from torchlight.importing import import_class


@pytest.mark.parametrize('text,value', [('yes', True), ('True', True), ('t', True), ('1', True), ('Y', True),
                                        ('no', False), ('FALSE', False), ('f', False), ('0', False), ('n', False)])
def test_str2bool(text, value):
    assert str2bool(text) is value


def test_str2bool_rejects_other_words():
    with pytest.raises(argparse.ArgumentTypeError):
        str2bool('maybe')


def test_kv_dict_literals_with_commas_inside():
    got = parse_kv_dict("data_path='a,b.npz',p_interval=[0.5, 1],debug=True,window_size=64,x=None,t=(1,2)")
    assert got == {'data_path': 'a,b.npz', 'p_interval': [0.5, 1], 'debug': True, 'window_size': 64,
                   'x': None, 't': (1, 2)}
    assert parse_kv_dict('') == {}
    assert parse_kv_dict("graph_args={'labeling_mode': 'spatial'}") == {'graph_args': {'labeling_mode': 'spatial'}}


@pytest.mark.parametrize('text', ["data_path=x", "a=1,,b=2", "=1", "1", "a=1,b", "**d", "a=__import__('os').getcwd()",
                                  "a=open('f')", "a=1)", "a=[1,"])
def test_kv_dict_malformed_is_one_line_user_error(text):
    with pytest.raises(UserError) as e:
        parse_kv_dict(text, '--model-args')
    assert '--model-args' in str(e.value) and '\n' not in str(e.value)


def test_defaults_are_upstreams():
    a = parse_args([])
    assert (a.work_dir, a.model_saved_name, a.phase, a.save_score, a.seed) == ('./work_dir/temp', '', 'train', False, 1)
    assert (a.log_interval, a.save_interval, a.save_epoch, a.eval_interval, a.print_log) == (100, 1, 30, 5, True)
    assert (a.show_topk, a.feeder, a.num_worker, a.model, a.model_args) == ([1, 5], 'feeder.feeder', 32, None, {})
    assert (a.train_feeder_args, a.test_feeder_args, a.weights, a.ignore_weights) == ({}, {}, None, [])
    assert (a.base_lr, a.step, a.device, a.optimizer, a.nesterov) == (0.001, [20, 40, 60], [0], 'SGD', False)
    assert (a.batch_size, a.test_batch_size, a.start_epoch, a.num_epoch) == (256, 256, 0, 80)
    assert (a.weight_decay, a.lr_decay_rate, a.warm_up_epoch) == (0.01, 0.1, 0)
    assert a.loss_alpha is None  # the description set decides: 0.8 NTU, 1.0 NW-UCLA (text.criterion)
    assert (a.text_encoder_weights, a.resume, a.overwrite) == (None, False, False)
    assert a.te_lr_ratio == 0.0  # frozen text encoder by default (upstream: 1, fine-tuned)


def test_upstream_spellings_and_nargs():
    a = parse_args(['-model_saved_name', 'x', '--warm_up_epoch', '5', '--device', '0', '1', '--step', '90', '100',
                    '--ignore-weights', 'fc', 'linear_head', '--save-score', 'True', '--resume'])
    assert (a.model_saved_name, a.warm_up_epoch, a.device, a.step) == ('x', 5, [0, 1], [90, 100])
    assert a.ignore_weights == ['fc', 'linear_head'] and a.save_score is True and a.resume is True
    assert parse_args(['--device', 'cpu']).device == ['cpu']


def test_config_gives_defaults_and_command_line_wins(tmp_path):
    cfg = tmp_path / 'c.yaml'
    cfg.write_text("base_lr: 0.1\nnum_epoch: 110\ndevice: 0\n"
                   "train_feeder_args:\n  data_path: data/ntu/NTU60_CS.npz\n  p_interval: [0.5, 1]\n  window_size: 64\n"
                   "model_args: {num_class: 60, head: ['ViT-B/32']}\n")
    a = parse_args(['--config', str(cfg), '--base-lr', '0.05',
                    '--train-feeder-args', "data_path='x.npz',window_size=32", '--model-args', 'num_class=120'])
    assert a.base_lr == 0.05 and a.num_epoch == 110 and a.device == [0]
    assert a.train_feeder_args == {'data_path': 'x.npz', 'p_interval': [0.5, 1], 'window_size': 32}
    assert a.model_args == {'num_class': 120, 'head': ['ViT-B/32']}
    # the merge did not leak into the parser's defaults: a second parse sees the config's dict
    assert parse_args(['--config', str(cfg)]).train_feeder_args['window_size'] == 64


def test_entry_defaults_lose_to_config(tmp_path):
    cfg = tmp_path / 'c.yaml'
    cfg.write_text('loss_alpha: 0.5\n')
    assert parse_args([], defaults={'loss_alpha': 1.0}).loss_alpha == 1.0
    assert parse_args(['--config', str(cfg)], defaults={'loss_alpha': 1.0}).loss_alpha == 0.5


def test_unknown_config_key_names_it_and_close_flags(tmp_path):
    cfg = tmp_path / 'c.yaml'
    cfg.write_text('base_lr: 0.1\nbse_lr: 0.2\n')
    with pytest.raises(UserError) as e:
        parse_args(['--config', str(cfg)])
    msg = str(e.value)
    assert "'bse_lr'" in msg and 'base_lr' in msg and str(cfg) in msg and '\n' not in msg


@pytest.mark.parametrize('content,words', [('a: [1,\n', 'invalid YAML'), ('- 1\n- 2\n', 'mapping')])
def test_bad_config_files(tmp_path, content, words):
    cfg = tmp_path / 'c.yaml'
    cfg.write_text(content)
    with pytest.raises(UserError, match=words):
        load_config(str(cfg))
    with pytest.raises(UserError, match='not found'):
        load_config(str(tmp_path / 'missing.yaml'))


def test_yaml_is_read_safely(tmp_path):
    cfg = tmp_path / 'c.yaml'
    cfg.write_text("base_lr: !!python/object/apply:os.getcwd []\n")
    with pytest.raises(UserError):
        load_config(str(cfg))


def test_argparse_errors_are_user_errors():
    with pytest.raises(UserError, match='unrecognized'):
        parse_args(['--no-such-flag'])
    with pytest.raises(UserError, match='phase'):
        parse_args(['--phase', 'validate'])
    assert get_parser().parse_args(['--phase', 'test']).phase == 'test'


def test_import_class():
    assert import_class('torchlight.errors.UserError') is UserError
    for bad in ['model.no_such_module.Model', 'torchlight.errors.NoSuchClass', 'Model']:
        with pytest.raises(UserError, match='cannot import'):
            import_class(bad)
