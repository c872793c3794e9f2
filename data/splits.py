"""What each NTU dataset is: sample names, folders, full sizes, missing lists and benchmark splits."""
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NAME_RE = re.compile(r'^S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})$')
MISSING_DIR = Path(__file__).resolve().parent / 'missing_skeletons'

NTU60_CS_TRAIN = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
NTU60_CS_TEST = (3, 6, 7, 10, 11, 12, 20, 21, 22, 23, 24, 26, 29, 30, 32, 33, 36, 37, 39, 40)
NTU120_CSUB_TRAIN = NTU60_CS_TRAIN + (45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74,
                                      78, 80, 81, 82, 83, 84, 85, 86, 89, 91, 92, 93, 94, 95, 97,
                                      98, 100, 103)
NTU120_CSUB_TEST = tuple(i for i in range(1, 107) if i not in NTU120_CSUB_TRAIN)


@dataclass(frozen=True)
class Benchmark:
    name: str  # CS, CV, CSub, CSet
    field: str  # which name field the split reads: performer, camera or setup
    train_ids: tuple
    test_ids: tuple


@dataclass(frozen=True)
class Dataset:
    key: str
    title: str
    num_class: int
    max_setup: int
    folders: tuple  # under the raw root
    full_files: int
    full_usable: int
    missing_list: str
    benchmarks: tuple
    repeat_single: bool  # one-actor samples: second 75 values copy the first (NTU120) or zeros
    download: str

    def output_name(self, benchmark):
        prefix = 'NTU60' if self.key == 'ntu60' else 'NTU120'
        return f'{prefix}_{benchmark.name}.npz'

    def missing(self):
        text = (MISSING_DIR / self.missing_list).read_text()
        return {line.strip() for line in text.splitlines() if line.strip()}


_NTU_PAGE = ('the NTU RGB+D dataset page (ROSE Lab, https://rose1.ntu.edu.sg/dataset/actionRecognition/, '
             'after requesting access)')

DATASETS = {
    'ntu60': Dataset(
        'ntu60', 'NTU RGB+D 60', 60, 17, ('nturgb+d_skeletons',), 56880, 56578, 'ntu60.txt',
        (Benchmark('CS', 'performer', NTU60_CS_TRAIN, NTU60_CS_TEST),
         Benchmark('CV', 'camera', (2, 3), (1,))),
        False, f'nturgbd_skeletons_s001_to_s017.zip from {_NTU_PAGE}'),
    'ntu120': Dataset(
        'ntu120', 'NTU RGB+D 120', 120, 32, ('nturgb+d_skeletons', 'nturgb+d_skeletons120'),
        114480, 113945, 'ntu120.txt',
        (Benchmark('CSub', 'performer', NTU120_CSUB_TRAIN, NTU120_CSUB_TEST),
         Benchmark('CSet', 'setup', tuple(range(2, 33, 2)), tuple(range(1, 33, 2)))),
        True, f'nturgbd_skeletons_s001_to_s017.zip and nturgbd_skeletons_s018_to_s032.zip '
              f'(the latter unzipped as nturgb+d_skeletons120) from {_NTU_PAGE}'),
}


def parse_name(name):
    """SsssCcccPpppRrrrAaaa -> dict of the 1-based ids, or None when it is not such a name."""
    m = NAME_RE.match(name)
    if m is None:
        return None
    return dict(zip(('setup', 'camera', 'performer', 'replication', 'action'), map(int, m.groups())))


def split_indices(names, benchmark):
    """Train and test indices into `names`, ordered as upstream: by id in the list's order, then by
    position in `names` (which is sorted by name)."""
    field = np.array([parse_name(n)[benchmark.field] for n in names], dtype=np.int64)

    def gather(ids):
        parts = [np.flatnonzero(field == i) for i in ids]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    return gather(benchmark.train_ids), gather(benchmark.test_ids)


def one_hot(labels, num_class):
    """float64 one-hot rows, as upstream's np.zeros-based vectors."""
    out = np.zeros((len(labels), num_class))
    out[np.arange(len(labels)), labels] = 1
    return out
