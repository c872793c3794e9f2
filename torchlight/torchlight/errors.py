"""The one exception for bad user input, and how command-line scripts report it."""
import sys


class UserError(Exception):
    """Bad user input (file, flag, config): the CLI prints the one-line message and exits 2."""


def run_cli(main, *args, **kwargs):
    """Call main(*args, **kwargs) and exit with its return value; a UserError becomes
    `error: <one line>` on stderr and exit status 2, without a traceback."""
    try:
        code = main(*args, **kwargs)
    except UserError as e:
        print(f'error: {e}', file=sys.stderr)
        code = 2
    sys.exit(code or 0)
