"""Command-line parsing: str2bool, `k=v,...` dicts without eval, YAML configs, flag defaults."""
import argparse

import pytest

from torchlight.args import load_config, parse_kv_dict, str2bool
from torchlight.checkpoint import check_resume_settings
from torchlight.cli import get_parser, parse_args
from torchlight.errors import UserError
from torchlight.importing import import_class
from torchlight.workdir import settings

FEEDER = {'feeder': 'feeders.feeder_ntu.Feeder'}  # what an entry script gives


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
    a = parse_args([], defaults=FEEDER)
    assert (a.work_dir, a.model_saved_name, a.phase, a.save_score, a.seed) == ('./work_dir/temp', '', 'train', False, 1)
    assert (a.log_interval, a.save_interval, a.save_epoch, a.eval_interval, a.print_log) == (100, 1, 30, 5, True)
    assert (a.show_topk, a.num_worker, a.model, a.model_args) == ([1, 5], 32, None, {})
    assert (a.train_feeder_args, a.test_feeder_args, a.weights, a.ignore_weights) == ({}, {}, None, [])
    assert (a.base_lr, a.step, a.device, a.optimizer, a.nesterov) == (0.001, [20, 40, 60], [0], 'SGD', False)
    assert (a.batch_size, a.test_batch_size, a.start_epoch, a.num_epoch) == (256, 256, 0, 80)
    assert (a.weight_decay, a.lr_decay_rate, a.warm_up_epoch) == (0.01, 0.1, 0)
    assert (a.criterion, a.criterion_args, a.resume, a.overwrite) == ('text.criterion.build', {}, False, False)


def test_the_feeder_comes_from_the_entry_script_config_or_flag(tmp_path):
    assert get_parser().get_default('feeder') is None  # upstream's 'feeder.feeder' names no module
    with pytest.raises(UserError, match='no feeder: give --feeder or a feeder: line in the config'):
        parse_args([])
    cfg = tmp_path / 'c.yaml'
    cfg.write_text('feeder: feeders.feeder_ucla.Feeder\n')
    assert parse_args(['--config', str(cfg)], defaults=FEEDER).feeder == 'feeders.feeder_ucla.Feeder'
    assert parse_args(['--feeder', 'x.Y'], defaults=FEEDER).feeder == 'x.Y'


def test_upstream_spellings_and_nargs():
    a = parse_args(['-model_saved_name', 'x', '--warm_up_epoch', '5', '--device', '0', '1', '--step', '90', '100',
                    '--ignore-weights', 'fc', 'linear_head', '--save-score', 'True', '--resume'], defaults=FEEDER)
    assert (a.model_saved_name, a.warm_up_epoch, a.device, a.step) == ('x', 5, [0, 1], [90, 100])
    assert a.ignore_weights == ['fc', 'linear_head'] and a.save_score is True and a.resume is True
    assert parse_args(['--device', 'cpu'], defaults=FEEDER).device == ['cpu']


def test_config_gives_defaults_and_command_line_wins(tmp_path):
    cfg = tmp_path / 'c.yaml'
    cfg.write_text("base_lr: 0.1\nnum_epoch: 110\ndevice: 0\n"
                   "train_feeder_args:\n  data_path: data/ntu/NTU60_CS.npz\n  p_interval: [0.5, 1]\n  window_size: 64\n"
                   "model_args: {num_class: 60, head: ['ViT-B/32']}\n")
    a = parse_args(['--config', str(cfg), '--base-lr', '0.05',
                    '--train-feeder-args', "data_path='x.npz',window_size=32", '--model-args', 'num_class=120'],
                   defaults=FEEDER)
    assert a.base_lr == 0.05 and a.num_epoch == 110 and a.device == [0]
    assert a.train_feeder_args == {'data_path': 'x.npz', 'p_interval': [0.5, 1], 'window_size': 32}
    assert a.model_args == {'num_class': 120, 'head': ['ViT-B/32']}
    # the merge did not leak into the parser's defaults: a second parse sees the config's dict
    assert parse_args(['--config', str(cfg)], defaults=FEEDER).train_feeder_args['window_size'] == 64


def test_criterion_args_the_entry_scripts_under_the_configs_under_the_command_lines(tmp_path):
    entry = {**FEEDER, 'criterion_args': {'text_dir': 'ntu', 'loss_alpha': 0.8}}
    assert parse_args([], defaults=entry).criterion_args == {'text_dir': 'ntu', 'loss_alpha': 0.8}
    cfg = tmp_path / 'c.yaml'  # upstream's key and ours: aliases; the config's criterion_args win over them
    cfg.write_text('loss_alpha: 0.5\ntext_dir: ucla\ncriterion_args: {text_dir: mine, te_lr_ratio: 1.0}\n')
    a = parse_args(['--config', str(cfg)], defaults=entry)
    assert a.criterion_args == {'text_dir': 'mine', 'loss_alpha': 0.5, 'te_lr_ratio': 1.0}
    assert not {'loss_alpha', 'text_dir', 'te_lr_ratio'} & set(settings(a))  # recorded once, in criterion_args
    a = parse_args(['--config', str(cfg), '--loss-alpha', '2', '--criterion-args', "text_dir='x',te_lr_ratio=0"],
                   defaults=entry)
    assert a.criterion_args == {'text_dir': 'x', 'loss_alpha': 2.0, 'te_lr_ratio': 0}
    # on the command line the later of an alias and --criterion-args wins
    assert parse_args(['--criterion-args', 'loss_alpha=3', '--loss-alpha', '4'], defaults=FEEDER).criterion_args \
        == {'loss_alpha': 4.0}
    assert parse_args(['--loss-alpha', '4', '--criterion-args', 'loss_alpha=3'], defaults=FEEDER).criterion_args \
        == {'loss_alpha': 3}
    cfg.write_text('criterion_args: 0.5\n')
    with pytest.raises(UserError, match='criterion_args: expected a mapping'):
        parse_args(['--config', str(cfg)], defaults=FEEDER)


def test_resume_compares_criterion_args():
    run = settings(parse_args(['--text-dir', 'ntu', '--loss-alpha', '0.8'], defaults=FEEDER))
    check_resume_settings(run, settings(parse_args(['--criterion-args', "text_dir='ntu',loss_alpha=0.8"],
                                                   defaults=FEEDER)), 1)  # the same settings, spelled otherwise
    with pytest.raises(UserError, match=r"criterion_args: run \{'text_dir': 'ntu', 'loss_alpha': 0.8\}, now"):
        check_resume_settings(run, settings(parse_args(['--text-dir', 'ucla', '--loss-alpha', '0.8'],
                                                       defaults=FEEDER)), 1)


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
