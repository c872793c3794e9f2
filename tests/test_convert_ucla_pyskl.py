"""data/convert_ucla_pyskl.py on three real NW-UCLA clips (copied into a temporary folder, with a
split list of their own): the 3D pickle holds the json's values, the 2D one a hand-checked
projection; both load with the restricted unpickler; errors are one line. Then the configs that
train on such a pickle (config/custom/) resolve the documented command as intended."""
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, UCLA_ALL_SQE, need
from data import convert_ucla_pyskl as convert
from graph.layouts import load_layout
from torchlight import unpickle
from torchlight.cli import parse_args
from torchlight.errors import UserError

# (file, label 1..10, split): a frontal clip, one with untracked joints (frame 35), a view-3 clip
CLIPS = [('a01_s01_e00_v01', 1, 'train'), ('a04_s01_e01_v01', 4, 'train'), ('a02_s01_e00_v03', 2, 'val')]
SCRIPT = REPO / 'data' / 'convert_ucla_pyskl.py'


@pytest.fixture
def ucla(tmp_path):
    """(all_sqe folder with the three clips, their split file)."""
    source = need(UCLA_ALL_SQE)
    root = tmp_path / 'all_sqe'
    root.mkdir()
    for name, _, _ in CLIPS:
        shutil.copy(source / f'{name}.json', root / f'{name}.json')
    split = {s: [{'file_name': n, 'length': 0, 'label': label} for n, label, s2 in CLIPS if s2 == s]
             for s in ('train', 'val')}
    split_file = tmp_path / 'split.json'
    split_file.write_text(json.dumps(split))
    return root, split_file


def skeletons(root, name):
    return json.loads((root / f'{name}.json').read_text())['skeletons']


def run_script(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_3d_pickle_holds_the_json_values(ucla, tmp_path):
    root, split_file = ucla
    out = tmp_path / 'ucla.pkl'
    result = run_script('--out', out, '--root', root, '--split-file', split_file)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f'wrote {out}: 3 sequences (train 2, val 1), layout nw-ucla, 3D'
    data = unpickle.load(out)  # nothing but dicts, lists, numbers, strings and arrays
    assert data['split'] == {'train': ['a01_s01_e00_v01', 'a04_s01_e01_v01'], 'val': ['a02_s01_e00_v03']}
    assert [a['frame_dir'] for a in data['annotations']] == [name for name, _, _ in CLIPS]
    assert [a['label'] for a in data['annotations']] == [0, 3, 1]
    for entry in data['annotations']:
        assert set(entry) == {'frame_dir', 'label', 'total_frames', 'keypoint'}
        seq = skeletons(root, entry['frame_dir'])
        assert entry['keypoint'].dtype == np.float32
        assert entry['keypoint'].shape == (1, len(seq), 20, 3) == (1, entry['total_frames'], 20, 3)
        assert np.array_equal(entry['keypoint'][0], np.array(seq, dtype=np.float32))
    assert data['annotations'][0]['keypoint'][0, 0, 4].tolist() == pytest.approx([-0.806215, 0.568519, 3.09422])
    assert not list(tmp_path.glob('.*.tmp'))  # the atomic write left no temporary file


def test_2d_pickle_is_a_hand_checked_projection_to_coco(ucla, tmp_path):
    root, split_file = ucla
    out = tmp_path / 'ucla2d.pkl'
    assert convert.main(['--out', str(out), '--root', str(root), '--split-file', str(split_file), '--2d']) == 0
    data = unpickle.load(out)
    first, untracked, _ = data['annotations']
    T = len(skeletons(root, 'a01_s01_e00_v01'))
    assert set(first) == {'frame_dir', 'label', 'total_frames', 'keypoint', 'keypoint_score', 'img_shape',
                          'original_shape'}
    assert first['keypoint'].shape == (1, T, 17, 2) and first['keypoint'].dtype == np.float32
    assert first['keypoint_score'].shape == (1, T, 17) and first['keypoint_score'].dtype == np.float32
    assert first['img_shape'] == first['original_shape'] == (1080, 1920) and first['total_frames'] == T
    # Frame 1's left shoulder (Kinect joint 5, from 1) at x, y, z = -0.806215, 0.568519, 3.09422 m:
    # u = 959.5 + 1081.37 * 0.806215 / 3.09422 = 1241.2565, v = 539.5 - 1081.37 * 0.568519 / 3.09422 = 340.8136
    assert first['keypoint'][0, 0, 5].tolist() == pytest.approx([1241.2565, 340.8136], abs=1e-3)
    # the head (Kinect joint 4) at -0.66144, 0.867156, 2.99039: above and left of that shoulder
    assert first['keypoint'][0, 0, 0].tolist() == pytest.approx([1198.6867, 225.9233], abs=1e-3)
    # nose, eyes and ears are the head joint; every joint tracked in this clip
    assert (first['keypoint'][0, :, :5] == first['keypoint'][0, :, :1]).all()
    assert (first['keypoint_score'] == 1).all()
    # a01_s01_e00_v01 faces the sensor: its left shoulder on the image's right of the right one
    assert first['keypoint'][0, 0, 5, 0] > first['keypoint'][0, 0, 6, 0]
    # a04_s01_e01_v01 frame 35: Kinect lost joints 1, 2, 3, 5, 13, 17 (from 1), i.e. COCO's left
    # shoulder (5) and both hips (11, 12); score 0 and keypoint (0, 0) there, nowhere else
    lost = np.argwhere(untracked['keypoint_score'][0] == 0).tolist()
    assert lost == [[34, 5], [34, 11], [34, 12]]
    assert (untracked['keypoint'][0, 34, [5, 11, 12]] == 0).all()


def test_projection_of_untracked_and_behind_camera_joints():
    uv, score = convert.project(np.array([[0.0, 0.0, 0.0], [0.1, 0.2, -1.0], [0.0, 0.0, 2.0]]))
    assert score.tolist() == [0.0, 0.0, 1.0]
    assert uv.tolist() == [[0.0, 0.0], [0.0, 0.0], [959.5, 539.5]]


def test_errors_are_one_line_and_write_nothing(ucla, tmp_path):
    root, split_file = ucla
    out = tmp_path / 'ucla.pkl'
    result = run_script('--out', out, '--root', tmp_path / 'nowhere', '--split-file', split_file)
    assert result.returncode == 2 and result.stderr.count('\n') == 1
    assert result.stderr.startswith(f'error: NW-UCLA folder {tmp_path / "nowhere"} not found')
    (root / 'a02_s01_e00_v03.json').unlink()
    result = run_script('--out', out, '--root', root, '--split-file', split_file)
    assert result.returncode == 2 and result.stderr.count('\n') == 1
    assert result.stderr.startswith(f'error: NW-UCLA file {root / "a02_s01_e00_v03.json"} is missing')
    with pytest.raises(UserError, match=r'^NW-UCLA split list .*nope\.json is missing'):
        convert.main(['--out', str(out), '--root', str(root), '--split-file', str(tmp_path / 'nope.json')])
    assert not out.exists() and not list(tmp_path.glob('.*.tmp'))


def test_a_clip_listed_twice_is_refused(ucla):
    root, split_file = ucla
    split = json.loads(split_file.read_text())
    split['val'].append(split['train'][0])
    split_file.write_text(json.dumps(split))
    with pytest.raises(UserError, match=r'a01_s01_e00_v01 is listed twice'):
        convert.convert(root, split_file)


# ------------------------------------------------------------------------------ the custom configs
ENTRY = {'feeder': 'feeders.feeder_ntu.Feeder', 'criterion_args': {'text_dir': 'ntu', 'loss_alpha': 0.8}}
COMMAND = ['--text-dir', 'text/ucla',
           '--train-feeder-args', "data_path='ucla.pkl',split='train',layout='nw-ucla'",
           '--test-feeder-args', "data_path='ucla.pkl',split='val',layout='nw-ucla'"]


@pytest.mark.parametrize('name,model', [('lst_joint', 'model.ctrgcn.Model_lst_4part'),
                                        ('default', 'model.ctrgcn.Model')])
def test_custom_configs_name_the_layout_once_on_the_command_line(name, model):
    arg = parse_args(['--config', str(REPO / 'config' / 'custom' / f'{name}.yaml'), *COMMAND], dict(ENTRY))
    assert arg.feeder == 'feeders.feeder_pyskl.Feeder' and arg.model == model
    assert arg.train_feeder_args == {'modality': 'joint', 'p_interval': [0.5, 1],
                                     'data_path': 'ucla.pkl', 'split': 'train', 'layout': 'nw-ucla'}
    assert arg.test_feeder_args == {'modality': 'joint', 'p_interval': [0.95],
                                    'data_path': 'ucla.pkl', 'split': 'val', 'layout': 'nw-ucla'}
    # the layout, the classes and the persons come from the data, not the config
    assert not {'graph', 'num_point', 'in_channels', 'num_class', 'num_person'} & set(arg.model_args)
    assert arg.criterion_args['text_dir'] == 'text/ucla'
    # the CPU schedule of config/ucla/cpu_30/
    assert (arg.base_lr, arg.step, arg.num_epoch, arg.batch_size, arg.device) == (0.1, [20, 26], 30, 16, ['cpu'])
    if name == 'lst_joint':
        assert arg.model_args == {'head': ['all-MiniLM-L6-v2'], 'k': 8} and arg.criterion_args['loss_alpha'] == 1.0
    # without --text-dir no label set: not the entry script's NTU one
    assert parse_args(['--config', str(REPO / 'config' / 'custom' / f'{name}.yaml')],
                      dict(ENTRY)).criterion_args['text_dir'] is None


def test_k8_is_the_identity_on_every_shipped_layout():
    for name in ('ntu', 'nw-ucla', 'coco'):
        graph = load_layout(name)()
        assert np.array_equal(graph.A_vector(8), np.eye(graph.num_node)), name


def test_the_custom_config_headers_show_the_command():
    for name in ('lst_joint', 'default'):
        header = (REPO / 'config' / 'custom' / f'{name}.yaml').read_text()
        assert (f'# python main_multipart_ntu.py --config config/custom/{name}.yaml --text-dir text/ucla \\\n'
                '#     --train-feeder-args "data_path=\'ucla.pkl\',split=\'train\',layout=\'nw-ucla\'" \\\n'
                '#     --test-feeder-args "data_path=\'ucla.pkl\',split=\'val\',layout=\'nw-ucla\'"\n') in header
