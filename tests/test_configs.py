"""Every shipped config loads safely, uses only real flags, builds its model and feeder arguments,
and the benchmark configs carry the values of upstream's configs."""
import importlib
import inspect
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO
from torchlight.cli import get_parser, parse_args
from torchlight.importing import import_class

CONFIG_DIR = REPO / 'config'
CONFIGS = sorted(CONFIG_DIR.rglob('*.yaml'))
BENCHMARKS = {  # folder: (data file, num_class, work-dir prefix)
    'nturgbd-cross-subject': ('data/ntu/NTU60_CS.npz', 60, 'ntu60/csub'),
    'nturgbd-cross-view': ('data/ntu/NTU60_CV.npz', 60, 'ntu60/cview'),
    'nturgbd120-cross-subject': ('data/ntu120/NTU120_CSub.npz', 120, 'ntu120/csub'),
    'nturgbd120-cross-set': ('data/ntu120/NTU120_CSet.npz', 120, 'ntu120/cset'),
}
STREAMS = ('lst_joint', 'lst_bone', 'lst_joint_vel', 'lst_bone_vel')
PAPER_CONFIGS = [(folder, name) for folder in [*BENCHMARKS, 'ucla'] for name in ('default', *STREAMS)]


def _load(path):
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f)


def _id(path):
    return str(Path(path).relative_to(CONFIG_DIR))


def test_every_benchmark_and_modality_has_a_config():
    missing = [f'{folder}/{name}.yaml' for folder, name in PAPER_CONFIGS
               if not (CONFIG_DIR / folder / f'{name}.yaml').is_file()]
    assert not missing


@pytest.mark.parametrize('script', ['main_multipart_ntu', 'main_multipart_ucla'])
def test_entry_scripts_default_configs_exist(script):
    source = (REPO / f'{script}.py').read_text()
    default = source.split("default_config='")[1].split("'")[0]
    assert (REPO / default).is_file(), f'{script}.py defaults to missing {default}'


@pytest.mark.parametrize('path', CONFIGS, ids=_id)
def test_config_keys_are_flags_and_parse(path):
    config = _load(path)
    assert isinstance(config, dict) and config
    flags = {action.dest for action in get_parser()._actions}
    unknown = sorted(set(config) - flags)
    assert not unknown, f'{_id(path)}: keys that are not flags: {unknown}'
    # Through the real parser: config values become the resolved arguments.
    arg = parse_args(['--config', str(path)])
    assert arg.model == config['model'] and arg.model_args == config['model_args']
    assert arg.train_feeder_args == config['train_feeder_args']


def _build(config):
    return import_class(config['model'])(**config['model_args'])


@pytest.mark.parametrize('path', CONFIGS, ids=_id)
def test_config_builds_its_model_and_feeder_arguments_fit(path):
    config = _load(path)
    custom = path.parent.name == 'custom'  # data file, split and layout come from the command line
    if custom:  # what the trainer takes from the test feeder (assemble.model_args_from_data)
        config['model_args'] = {'graph': 'nw-ucla', 'num_class': 10, 'num_person': 1, **config['model_args']}
    model = _build(config)
    assert model.fc.out_features == config['model_args']['num_class']
    # The feeder's signature takes every feeder argument (data files are not needed for this).
    signature = inspect.signature(import_class(config['feeder']))
    for key in ('train_feeder_args', 'test_feeder_args'):
        (signature.bind_partial if custom else signature.bind)(**config[key])


# One forward per model class (forwards are the slow part; the classes differ, not the benchmarks).
FORWARD_CONFIGS = [CONFIG_DIR / p for p in (
    'nturgbd-cross-subject/default.yaml', 'nturgbd-cross-subject/lst_joint.yaml',
    'nturgbd120-cross-set/lst_bone_vel.yaml', 'ucla/lst_joint.yaml', 'ucla/lst_bone.yaml')]


@pytest.mark.parametrize('path', FORWARD_CONFIGS, ids=_id)
def test_config_model_runs_forward(path):
    config = _load(path)
    args = config['model_args']
    model = _build(config).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 8, args['num_point'], args['num_person']))
    logits = out[0] if isinstance(out, tuple) else out
    assert logits.shape == (1, args['num_class'])
    if isinstance(out, tuple):   # GAP: one global feature per text head, four part features
        assert set(out[1]) == set(args['head']) and len(out[3]) == 4


def _expected(folder, name):
    """Upstream's values for one benchmark config, typed from its config files."""
    gap = name != 'default'
    if folder == 'ucla':
        values = dict(base_lr=0.2, weight_decay=0.0004, step=[90, 100], num_epoch=110,
                      batch_size=64, test_batch_size=64, warm_up_epoch=5) if gap else \
            dict(base_lr=0.1, weight_decay=0.0001, step=[50], num_epoch=65, batch_size=16, warm_up_epoch=5)
    else:
        values = dict(base_lr=0.1, weight_decay=0.0005, step=[90, 100], num_epoch=110,
                      batch_size=200, test_batch_size=200, warm_up_epoch=5) if gap else \
            dict(base_lr=0.1, weight_decay=0.0004, step=[35, 55], num_epoch=65,
                 batch_size=64, test_batch_size=64, warm_up_epoch=5)
    values.update(lr_decay_rate=0.1, nesterov=True, optimizer='SGD')
    return values


@pytest.mark.parametrize('folder, name', PAPER_CONFIGS, ids=lambda v: v)
def test_upstream_values(folder, name):
    config = _load(CONFIG_DIR / folder / f'{name}.yaml')
    for key, value in _expected(folder, name).items():
        assert config[key] == value, f'{folder}/{name}: {key}'
    args, train, test = config['model_args'], config['train_feeder_args'], config['test_feeder_args']
    assert args['graph_args'] == {'labeling_mode': 'spatial'}
    gap, bone = name != 'default', 'bone' in name
    if folder == 'ucla':
        suffix = '_bone_ucla' if bone else '_ucla'
        assert config['feeder'] == 'feeders.feeder_ucla.Feeder'
        assert (args['num_class'], args['num_point'], args['num_person']) == (10, 20, 1)
        assert args['graph'] == 'graph.ucla.Graph'
        joint_k = 6
        # Bones come from the model (k=1), so the data is joints (or joint motion) throughout.
        data = 'joint_motion' if name.endswith('_vel') else 'joint'
        assert train['modality'] == test['modality'] == data
        assert (train['label_path'], test['label_path']) == ('train', 'val')
        assert train['repeat'] == 5 and train['window_size'] == 52
    else:
        suffix = '_bone' if bone else ''
        data, num_class, prefix = BENCHMARKS[folder]
        assert config['feeder'] == 'feeders.feeder_ntu.Feeder'
        assert (args['num_class'], args['num_point'], args['num_person']) == (num_class, 25, 2)
        assert args['graph'] == 'graph.ntu_rgb_d.Graph'
        joint_k = 8
        assert train['data_path'] == test['data_path'] == data
        assert (train['split'], test['split']) == ('train', 'test')
        assert train['window_size'] == test['window_size'] == 64
        assert train['p_interval'] == [0.5, 1] and test['p_interval'] == [0.95]
        assert train['random_rot'] is True
        # bones are made by the model (k=1): the feeder gives joints or joint motion
        data = 'joint_motion' if name.endswith('_vel') else 'joint'
        assert train['modality'] == test['modality'] == data
        if gap:
            assert config['work_dir'] == f'./work_dir/{prefix}/{name}'
    assert config['eval_interval'] == 1  # upstream evaluates every epoch; the best one is reported
    fixed_graph = (folder, name) == ('nturgbd120-cross-subject', 'default')  # upstream's adaptive: False
    assert args.get('adaptive', True) is (not fixed_graph)
    if gap:
        assert config['loss_alpha'] == (1.0 if folder == 'ucla' else 0.8)
        assert config['model'] == f'model.ctrgcn.Model_lst_4part{suffix}'
        assert args['head'] == ['ViT-B/32']
        assert args['k'] == (1 if bone else joint_k)
    else:
        assert config['model'] == 'model.ctrgcn.Model'
        assert 'k' not in args and 'head' not in args and 'loss_alpha' not in config


# Feeder keys that upstream's configs carry but that change nothing (both feeders accept them).
NO_EFFECT = {'random_choose', 'random_shift', 'random_move', 'normalization', 'use_mmap', 'bone', 'vel'}


@pytest.mark.parametrize('path', CONFIGS, ids=_id)
def test_shipped_configs_carry_only_keys_that_take_effect(path):
    config = _load(path)
    for key in ('train_feeder_args', 'test_feeder_args'):
        assert not NO_EFFECT & set(config[key]), f'{_id(path)} {key}: {NO_EFFECT & set(config[key])}'
        assert config[key].get('debug', True) is not False, f'{_id(path)} {key}: debug: False is the default'
        assert 'modality' in config[key]
        if config['feeder'].endswith('feeder_ucla.Feeder'):
            assert 'data_path' not in config[key]  # the modality, said once as modality:
        else:
            assert 'label_path' not in config[key]  # NTU labels live in the data file
