"""Import a class from its dotted path (`model.ctrgcn.Model_lst_4part`) and build it from a config
mapping, with one-line errors for a wrong path or a wrong key."""
import difflib
import importlib
import inspect

from torchlight.errors import UserError


def import_class(path):
    """Return the object named by `package.module.Name`; UserError names what could not be found."""
    module_name, _, name = str(path).rpartition('.')
    if not module_name:
        raise UserError(f'cannot import {path!r}: expected a dotted path like model.ctrgcn.Model')
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        # Only the user's path is at fault when the missing module is (a prefix of) that path;
        # a missing dependency inside the module is a real ImportError and keeps its traceback.
        if e.name and module_name.startswith(e.name):
            raise UserError(f'cannot import {path!r}: no module named {e.name!r}') from None
        raise
    try:
        return getattr(module, name)
    except AttributeError:
        raise UserError(f'cannot import {path!r}: module {module_name!r} has no {name!r}') from None


def signature_keywords(cls):
    """(names `cls(...)` takes by keyword, names it requires); names None when it takes **kwargs."""
    try:
        params = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: let the call decide
        return None, []
    named = [p for p in params if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                             inspect.Parameter.KEYWORD_ONLY)]
    required = [p.name for p in named if p.default is inspect.Parameter.empty]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None, required
    return [p.name for p in named], required


def build(cls_path, kwargs, what):
    """`cls(**kwargs)` for the class at `cls_path`. A key the class does not take, or a required
    one left out, is a one-line UserError naming `what` (e.g. 'model_args'), the class and the
    closest valid names, found from the class's signature."""
    cls = import_class(cls_path)
    valid, required = signature_keywords(cls)
    for key in kwargs if valid is not None else ():
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=3, cutoff=0.5)
            hint = f"did you mean: {', '.join(close)}?" if close else f"valid: {', '.join(valid)}"
            raise UserError(f'{what}: {cls_path} takes no argument {key!r} ({hint})')
    missing = [name for name in required if name not in kwargs]
    if missing:
        raise UserError(f'{what}: {cls_path} needs {", ".join(missing)}')
    return cls(**check_booleans(cls, kwargs, what))


def check_booleans(cls, kwargs, what):
    """Options whose default is a bool take True/False (or 0/1) only: a string such as 'false' or
    'no' would silently count as true. Returns kwargs with 0/1 made booleans."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return kwargs
    out = dict(kwargs)
    for key, value in kwargs.items():
        param = params.get(key)
        if param is None or not isinstance(param.default, bool) or isinstance(value, bool):
            continue
        if isinstance(value, int) and value in (0, 1):
            out[key] = bool(value)
        else:
            raise UserError(f'{what}: {key} is a boolean option (true or false), got {value!r}')
    return out
