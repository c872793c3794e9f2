class UserError(Exception):
    """Bad user input (file, flag, config): the CLI prints the one-line message and exits 2."""
