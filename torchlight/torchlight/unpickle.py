"""Restricted unpickling for score files and pyskl annotation pickles: plain containers and NumPy
data, nothing executable.

A pickle can call any importable function while it loads, so opening a score file or a dataset
pickle from someone else must not use `pickle.load`. Containers (dict, list, tuple, set),
str/bytes, int, float, bool and None are built by pickle opcodes and need no global at all; the
only globals such files need (pyskl's annotations are dicts of str, ints, tuples and arrays) are
the handful NumPy's own pickles reference, found by pickling arrays, dtypes and scalars with
every protocol (0-5) under NumPy 1 and 2:

    numpy.ndarray, numpy.dtype                       the array and dtype classes
    numpy{._core,.core}.multiarray._reconstruct      rebuilds an ndarray (protocols 0-4)
    numpy{._core,.core}.multiarray.scalar            rebuilds a NumPy scalar (np.float32(1.5))
    numpy{._core,.core}.numeric._frombuffer          rebuilds a contiguous array (protocol 5)
    _codecs.encode, builtins.bytes                   protocols 0-2 write bytes through these

Everything else (os.system, builtins.eval, subprocess.Popen, torch storages, ...) is refused with
a UserError naming the global and the file.
"""
import importlib
import io
import pickle

from .errors import UserError

# NumPy 2 moved numpy.core to numpy._core; pickles name whichever wrote them, both must load.
_NUMPY_CORE_NAMES = {
    ('multiarray', '_reconstruct'),
    ('multiarray', 'scalar'),
    ('numeric', '_frombuffer'),
}
_PLAIN_NAMES = {
    ('numpy', 'ndarray'),
    ('numpy', 'dtype'),
    ('_codecs', 'encode'),
    ('builtins', 'bytes'),
    ('__builtin__', 'bytes'),   # protocol 0-2 spelling (Python 2 module name)
}


def _allowed(module, name):
    if (module, name) in _PLAIN_NAMES:
        return True
    for core in ('numpy._core.', 'numpy.core.'):
        if module.startswith(core) and (module[len(core):], name) in _NUMPY_CORE_NAMES:
            return True
    return False


def _resolve(module, name):
    """The object an allowed global names, read from whichever numpy core module exists.

    Going to numpy._core directly avoids NumPy 2's deprecation shim for `numpy.core`."""
    if module == '__builtin__':
        module = 'builtins'
    if module.startswith(('numpy._core.', 'numpy.core.')):
        submodule = module.rsplit('.', 1)[1]
        for core in ('numpy._core', 'numpy.core'):
            try:
                return getattr(importlib.import_module(f'{core}.{submodule}'), name)
            except (ImportError, AttributeError):
                continue
    return getattr(importlib.import_module(module), name)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that builds only containers, scalars and NumPy arrays/dtypes/scalars."""

    def __init__(self, file, source='<pickle>'):
        super().__init__(file)
        self.source = source

    def find_class(self, module, name):
        if not _allowed(module, name):
            raise UserError(f'{self.source}: refusing to unpickle {module}.{name} '
                            '(only dicts, lists, numbers, strings and NumPy arrays are read from a pickle)')
        return _resolve(module, name)

    def persistent_load(self, pid):
        raise UserError(f'{self.source}: refusing a pickle with persistent ids '
                        '(torch files are read with torch.load(weights_only=True), not here)')


def loads(data, source='<bytes>'):
    """Restricted `pickle.loads`."""
    return load(io.BytesIO(data), source=source)


def load(file, source=None):
    """Restricted `pickle.load` of a path or a binary file object; bad input -> one-line UserError."""
    if isinstance(file, (str, bytes)) or hasattr(file, '__fspath__'):
        source = source or str(file)
        try:
            with open(file, 'rb') as handle:
                return load(handle, source=source)
        except FileNotFoundError:
            raise UserError(f'{source}: file not found') from None
        except IsADirectoryError:
            raise UserError(f'{source}: is a directory, expected a pickle file') from None
    source = source or getattr(file, 'name', '<pickle>')
    try:
        return RestrictedUnpickler(file, source=source).load()
    except UserError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError,
            AttributeError, ImportError, IndexError, KeyError) as exc:
        reason = ' '.join(str(exc).split())  # keep the message on one line
        raise UserError(f'{source}: not a readable pickle ({type(exc).__name__}: {reason})') from None
