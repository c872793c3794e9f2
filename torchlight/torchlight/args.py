"""Command-line pieces: bool and `k=v,...` dict arguments, YAML configs as parser defaults.

The upstream contract: a YAML config supplies defaults, the command line wins, a config key that is
not a flag is an error, and dict flags given as `k=v,k2=v2` merge into the config's dict. Nothing
here evaluates user text as code: values go through `ast.literal_eval` only.
"""
import argparse
import ast
import copy
import difflib
import os

import yaml

from torchlight.errors import UserError

_TRUE = {'yes', 'true', 't', 'y', '1'}
_FALSE = {'no', 'false', 'f', 'n', '0'}


def str2bool(value):
    """Upstream's boolean flag type: yes/true/t/y/1 or no/false/f/n/0, any case."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f'boolean value expected, got {value!r}')


def parse_kv_dict(text, flag='dict argument'):
    """Parse upstream's `k=v,k2=v2` form (values are Python literals) into a dict, without eval.

    The text is parsed as the argument list of a call, so commas inside lists or strings are fine:
    `data_path='x.npz',p_interval=[0.5, 1]` -> {'data_path': 'x.npz', 'p_interval': [0.5, 1]}.
    `true` / `false`, bare or quoted, any case, are booleans (a quoted 'false' was a true string).
    """
    text = text.strip()
    if not text:
        return {}
    bad = (f"{flag}: cannot parse {text!r}; expected k=v,k2=v2 with Python literal values "
           f"(strings quoted, e.g. data_path='data/ntu/NTU60_CS.npz',p_interval=[0.5,1])")
    try:
        call = ast.parse(f'f({text})', mode='eval').body
    except SyntaxError:
        raise UserError(bad) from None
    if not isinstance(call, ast.Call) or call.args or any(kw.arg is None for kw in call.keywords):
        raise UserError(bad)
    out = {}
    for kw in call.keywords:
        if isinstance(kw.value, ast.Name) and kw.value.id.lower() in ('true', 'false'):
            out[kw.arg] = kw.value.id.lower() == 'true'
            continue
        try:
            out[kw.arg] = _boolean_word(ast.literal_eval(kw.value))
        except (ValueError, SyntaxError, TypeError):
            raise UserError(f'{flag}: value of {kw.arg!r} is not a Python literal '
                            f'({ast.unparse(kw.value)!r}); quote strings, e.g. {kw.arg}=\'...\'') from None
    return out


def _boolean_word(value):
    if isinstance(value, str) and value.strip().lower() in ('true', 'false'):
        return value.strip().lower() == 'true'
    return value


class DictAction(argparse.Action):
    """`--x k=v,...` merges into the dict already there (the config's), leaving that one untouched."""

    def __init__(self, option_strings, dest, nargs=None, **kwargs):
        if nargs is not None:
            raise ValueError('DictAction takes exactly one argument')
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        merged = copy.deepcopy(getattr(namespace, self.dest, None) or {})
        if not isinstance(merged, dict):
            raise UserError(f'{option_string}: the config value is not a dict ({merged!r})')
        merged.update(parse_kv_dict(values, option_string))
        setattr(namespace, self.dest, merged)


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises UserError (one line) instead of printing usage and exiting."""

    def error(self, message):
        raise UserError(f'{message} (see --help)')


def load_config(path):
    """Read a YAML config into a dict with yaml.safe_load; errors name the file (and line)."""
    if not os.path.isfile(path):
        raise UserError(f'config file not found: {path}')
    try:
        with open(path, encoding='utf-8') as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, 'problem_mark', None)
        where = f':{mark.line + 1}' if mark is not None else ''
        problem = getattr(e, 'problem', None) or str(e).splitlines()[0]
        raise UserError(f'config {path}{where}: invalid YAML ({problem})') from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f'config {path}: expected a mapping of flag names to values, got {type(data).__name__}')
    return data


def check_config_keys(config, parser, path):
    """Every config key must be a flag's dest; otherwise name it and the closest valid names."""
    valid = sorted(a.dest for a in parser._actions if a.dest != 'help')
    for key in config:
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=3, cutoff=0.5)
            hint = f" (did you mean: {', '.join(close)}?)" if close else ''
            raise UserError(f'config {path}: unknown key {key!r}{hint}')


def parse_with_config(parser, argv):
    """Parse argv; when --config is given, its values become defaults and argv wins over them."""
    first = parser.parse_args(argv)
    if getattr(first, 'config', None):
        config = {str(k).replace('-', '_'): v for k, v in load_config(first.config).items()}
        check_config_keys(config, parser, first.config)
        parser.set_defaults(**config)
    return parser.parse_args(argv)
