"""The restricted unpickler reads what NumPy writes, under every protocol, and nothing executable."""
import builtins
import importlib
import io
import os
import pickle

import numpy as np
import pytest

from torchlight.errors import UserError
from torchlight.unpickle import load, loads


def _score_like():
    return {
        'test_0': np.arange(6, dtype=np.float32),
        'test_1': np.asfortranarray(np.ones((2, 3))),
        'strided': np.arange(8)[::2],
        'empty': np.zeros((0, 5), dtype=np.float16),
        'scalar': np.float32(1.5),
        'int': np.int64(3),
        'flag': np.bool_(True),
        'text': np.array(['ab', 'c']),
        'record': np.array([(1, 2.0)], dtype=[('a', '<i4'), ('b', '>f8')]),
        'plain': [1, 2.0, 'x', (3, None), {'k': b'bytes'}, True],
    }


@pytest.mark.parametrize('protocol', range(pickle.HIGHEST_PROTOCOL + 1))
def test_numpy_and_plain_objects_round_trip(protocol):
    original = _score_like()
    restored = loads(pickle.dumps(original, protocol=protocol))
    assert restored.keys() == original.keys()
    for key, value in original.items():
        if isinstance(value, np.ndarray):
            assert restored[key].dtype == value.dtype
            np.testing.assert_array_equal(restored[key], value)
        else:
            assert restored[key] == value and type(restored[key]) is type(value)
    assert restored['test_1'].flags.f_contiguous


def test_numpy1_module_names_load():
    # NumPy 1 wrote numpy.core.multiarray._reconstruct; NumPy 2 writes numpy._core.*.
    data = pickle.dumps({'test_0': np.arange(3.0), 's': np.float64(2.0)}, protocol=2)
    old = data.replace(b'numpy._core', b'numpy.core')
    assert b'numpy.core.multiarray' in old
    restored = loads(old)
    np.testing.assert_array_equal(restored['test_0'], [0.0, 1.0, 2.0])
    assert restored['s'] == 2.0


class _Reduce:
    """Pickles as a call of `func(*args)` when loaded."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize('func, args', [
    (os.system, ('touch {marker}',)),
    (builtins.eval, ("open(r'{marker}', 'w')",)),
    (builtins.exec, ("open(r'{marker}', 'w')",)),
    (importlib.import_module, ('os',)),
])
def test_code_execution_is_refused(tmp_path, func, args):
    marker = tmp_path / 'pwned'
    args = tuple(a.format(marker=marker) if isinstance(a, str) else a for a in args)
    payload = pickle.dumps({'test_0': np.zeros(3), 'evil': _Reduce(func, *args)})
    with pytest.raises(UserError, match='refusing to unpickle') as info:
        loads(payload, source='evil.pkl')
    assert not marker.exists()
    assert 'evil.pkl' in str(info.value) and '\n' not in str(info.value)


def test_other_classes_are_refused():
    import collections
    with pytest.raises(UserError, match='collections.OrderedDict'):
        loads(pickle.dumps(collections.OrderedDict(a=1)))


def test_persistent_ids_are_refused():
    class WithPid(pickle.Pickler):
        def persistent_id(self, obj):
            return 'storage' if isinstance(obj, bytearray) else None

    buffer = io.BytesIO()
    WithPid(buffer).dump({'x': bytearray(b'abc')})
    with pytest.raises(UserError, match='persistent'):
        loads(buffer.getvalue())


def test_file_errors_are_one_line(tmp_path):
    with pytest.raises(UserError, match='file not found'):
        load(tmp_path / 'missing.pkl')
    truncated = tmp_path / 'cut.pkl'
    truncated.write_bytes(pickle.dumps({'a': np.arange(10)})[:20])
    with pytest.raises(UserError, match='cut.pkl: not a readable pickle'):
        load(truncated)
    good = tmp_path / 'ok.pkl'
    good.write_bytes(pickle.dumps({'a': 1}))
    assert load(good) == {'a': 1}
    assert load(str(good)) == {'a': 1}


@pytest.mark.parametrize('protocol', [2, 4, 5])
def test_pyskl_annotation_pickles_load(protocol):
    # pyskl's annotation files: dicts of str, ints, tuples and float16/float32 arrays (NumPy
    # integer scalars where a script kept them); the same few NumPy globals as score files.
    data = {'split': {'xsub_train': ['S001C001P001R001A001'], 'xsub_val': []},
            'annotations': [{'frame_dir': 'S001C001P001R001A001', 'label': np.int64(0),
                             'total_frames': 3, 'img_shape': (1080, 1920), 'original_shape': (1080, 1920),
                             'keypoint': np.arange(2 * 3 * 17 * 2, dtype=np.float16).reshape(2, 3, 17, 2),
                             'keypoint_score': np.ones((2, 3, 17), np.float16)}]}
    restored = loads(pickle.dumps(data, protocol=protocol))
    (a,) = restored['annotations']
    assert restored['split'] == data['split'] and a['label'] == 0 and a['img_shape'] == (1080, 1920)
    assert a['keypoint'].dtype == np.float16
    np.testing.assert_array_equal(a['keypoint'], data['annotations'][0]['keypoint'])


def test_refusal_names_no_particular_file_kind():
    import pathlib
    with pytest.raises(UserError, match=r'refusing to unpickle pathlib[\w.]*Path .*only dicts, lists') as info:
        loads(pickle.dumps({'annotations': [pathlib.PurePosixPath('x')]}), source='anno.pkl')
    assert 'score files' not in str(info.value)
