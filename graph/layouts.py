"""Skeleton layouts by name: a layout is one module whose `Graph` class (a graph.tools.SkeletonGraph
subclass) says everything about it. Importing this module imports no layout.

    load_layout('ntu')                  graph.ntu_rgb_d.Graph
    load_layout('nw-ucla'), ('ucla')    graph.ucla.Graph
    load_layout('coco')                 graph.coco.Graph (COCO-17 2D keypoints and a score)
    load_layout('mypkg.my_layout')      the module's Graph
    load_layout('mypkg.my_layout.Toy')  that class
"""
import importlib

from graph.tools import SkeletonGraph
from torchlight.errors import UserError

LAYOUTS = {'ntu': 'graph.ntu_rgb_d.Graph', 'nw-ucla': 'graph.ucla.Graph',
           'coco': 'graph.coco.Graph'}
ALIASES = {'ucla': 'nw-ucla'}


def _import(module_name):
    """The module, or None when it (or a package above it) does not exist; an import error
    inside an existing module is its own bug and propagates."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (module_name == e.name or module_name.startswith(e.name + '.')):
            return None
        raise


def load_layout(name_or_path):
    """The Graph class (not an instance) of a layout name, a module path or a class path; the
    class is checked (SkeletonGraph.check)."""
    path = LAYOUTS.get(ALIASES.get(name_or_path, name_or_path), name_or_path) \
        if isinstance(name_or_path, str) else ''
    if path and all(part.isidentifier() for part in path.split('.')):
        # 'pkg.mod' names a module whose Graph is the layout; 'pkg.mod.Cls' a class in 'pkg.mod'.
        for module_name, attr in ((path, 'Graph'), path.rpartition('.')[::2]):
            module = _import(module_name) if module_name else None
            if module is None or not hasattr(module, attr):
                continue
            graph_class = getattr(module, attr)
            if not (isinstance(graph_class, type) and issubclass(graph_class, SkeletonGraph)):
                raise UserError(f'layout {name_or_path!r} is neither a module that defines a Graph '
                                f'class nor a graph.tools.SkeletonGraph subclass')
            graph_class.check()
            return graph_class
    aliases = ', '.join(f'{alias} = {name}' for alias, name in ALIASES.items())
    raise UserError(f'unknown layout {name_or_path!r} (known: {", ".join(LAYOUTS)}; alias '
                    f"{aliases}; or a module path such as 'mypkg.my_layout' whose module "
                    f'defines Graph, or a class path)')


def layout_name(graph_class):
    """The name load_layout takes back to this layout: 'ntu', 'nw-ucla' or 'coco' for the
    built-in ones, else the class path. A Graph instance stands for its class."""
    if not isinstance(graph_class, type):
        graph_class = type(graph_class)
    path = f'{graph_class.__module__}.{graph_class.__qualname__}'
    return next((name for name, known in LAYOUTS.items() if known == path), path)
