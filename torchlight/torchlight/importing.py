"""Import a class from its dotted path (`model.ctrgcn.Model_lst_4part`), with a one-line error."""
import importlib

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
