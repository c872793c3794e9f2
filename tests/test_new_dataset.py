"""A dataset the project has never seen, added without touching project code: a label folder
with three classes, a toy layout module and a tiny source on the test's own path, one config.
GAP trains and tests on it through the entry script."""
import os
import subprocess
import sys
import textwrap

from conftest import REPO

LABELS = {
    'wave': ('wave, greet with a raised hand, signal hello',
             'The person raises one hand above the shoulder and swings it from side to side.',
             'head stays level facing forward;hand open palm swings left and right above the shoulder;'
             'arm raised and bent at the elbow moves sideways;hip stays still;leg stands straight;'
             'foot stays planted'),
    'squat': ('squat, crouch down, lower the body',
              'The person bends both knees deeply and lowers the hips, then stands up again.',
              'head moves down and up with the body;hand stretches forward for balance;'
              'arm extends in front of the chest;hip drops low then rises;leg bends deeply at the knee;'
              'foot stays flat on the ground'),
    'kick': ('kick, strike with the foot, punt',
             'The person swings one leg forward quickly from the hip to strike with the foot.',
             'head faces the target;hand balances at the side;arm swings slightly opposite the leg;'
             'hip rotates to drive the leg;leg swings forward and extends;foot strikes forward'),
}

LAYOUT = '''
"""A toy 5-joint skeleton: pelvis (0), head (1), hand (2), knee (3), foot (4)."""
from graph.tools import SkeletonGraph


class Graph(SkeletonGraph):
    name = 'toy'
    num_node = 5
    channels = 3
    score_channel = None
    inward = [(1, 0), (2, 0), (3, 0), (4, 3)]
    vector_edges = [(1, 0), (2, 0), (3, 0), (4, 3)]
    parts = {'joint': {'head': [1], 'hand': [2], 'hip': [0], 'foot': [3, 4]},
             'bone': {'head': [1], 'hand': [2], 'hip': [0], 'foot': [3, 4]}}
    bone_pairs = [(0, 0), (1, 0), (2, 0), (3, 0), (4, 3)]
'''

SOURCE = '''
"""Three classes moving one joint each along its own axis; 30 frames, one body."""
import numpy as np


class ToySource:
    def __init__(self, split='train', layout=None, n=24):
        rng = np.random.default_rng(0 if split == 'train' else 1)
        self.label = [i % 3 for i in range(n)]
        self.names = [f'{split}_{i}' for i in range(n)]
        self.num_class = 3
        t = np.linspace(0, 2 * np.pi, 30)
        self.data = []
        for label in self.label:
            x = rng.normal(0, 0.05, (3, 30, 5, 1)).astype(np.float32)
            x[label, :, (2, 0, 4)[label], 0] += np.sin(t).astype(np.float32)
            self.data.append(x)

    def __len__(self):
        return len(self.label)

    def sample(self, i):
        return self.data[i]
'''

CONFIG = '''
feeder: feeders.feeder.Feeder
train_feeder_args: {{source: toy_source.ToySource, source_args: {{split: train}}, layout: toy_layout,
                    view: crop_resize, view_args: {{p_interval: [0.8, 1], window: 16}}, train: true}}
test_feeder_args: {{source: toy_source.ToySource, source_args: {{split: test, n: 12}}, layout: toy_layout,
                   view: crop_resize, view_args: {{p_interval: [0.95], window: 16}}}}
model: model.ctrgcn.Model_lst_4part
model_args: {{num_class: 3, num_person: 1, graph: toy_layout, k: 1, head: [all-MiniLM-L6-v2]}}
text_dir: {labels}
loss_alpha: 0.5
base_lr: 0.05
batch_size: 8
test_batch_size: 12
num_epoch: 2
step: [10]
num_worker: 0
device: cpu
eval_interval: 1
save_epoch: 0
'''


def write_labels(folder):
    folder.mkdir()
    names = list(LABELS)
    (folder / 'label_names.txt').write_text(''.join(f'{n}\n' for n in names))
    (folder / 'synonyms.txt').write_text(''.join(f'{LABELS[n][0]}\n' for n in names))
    (folder / 'sentences.txt').write_text(''.join(f'{n},{LABELS[n][1]}\n' for n in names))
    (folder / 'parts.txt').write_text(''.join(f'{n};{LABELS[n][2]}\n' for n in names))


def test_a_new_dataset_is_a_folder_a_layout_a_source_and_a_config(tmp_path):
    write_labels(tmp_path / 'labels')
    code = tmp_path / 'code'
    code.mkdir()
    (code / 'toy_layout.py').write_text(textwrap.dedent(LAYOUT))
    (code / 'toy_source.py').write_text(textwrap.dedent(SOURCE))
    (tmp_path / 'toy.yaml').write_text(CONFIG.format(labels=tmp_path / 'labels'))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(code), os.environ.get('PYTHONPATH', '')]),
               OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1')

    def entry(*args):
        out = subprocess.run([sys.executable, str(REPO / 'main_multipart_ntu.py'), '--config', str(tmp_path / 'toy.yaml'),
                              *map(str, args)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout

    log = entry('--work-dir', tmp_path / 'w')
    assert 'TextSupervision(3 classes' in log and 'Top1:' in log
    (checkpoint,) = (tmp_path / 'w').glob('runs-2-*.pt')
    test = entry('--work-dir', tmp_path / 't', '--phase', 'test', '--weights', checkpoint)
    assert 'Top1:' in test and (tmp_path / 't' / 'epoch1_confusion.png').is_file()
