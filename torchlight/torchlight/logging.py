"""Time-stamped log lines to stdout and `<work_dir>/log.txt`.

Lines logged before the work dir is known (argument checks, model building) are kept and written
once it is attached, so a run that fails its checks leaves no file behind. Under torchrun only
rank 0 prints and writes: one log for the run.
"""
import os
import sys
import time

from torchlight import distributed
from torchlight.io import WriteError


def stamp(message):
    return f'[ {time.strftime("%c")} ] {message}'


class Logger:
    def __init__(self, print_log=True):
        self.print_log = print_log  # upstream's --print-log: also append to log.txt
        self.silent = not distributed.is_main()
        self.path = None
        self._pending = []

    def attach(self, work_dir):
        """Start appending to `<work_dir>/log.txt`, first flushing what was logged so far."""
        self.path = os.path.join(work_dir, 'log.txt')
        pending, self._pending = self._pending, []
        self._append(pending)

    def __call__(self, message, print_time=True):
        if self.silent:
            return
        line = stamp(message) if print_time else str(message)
        print(line, flush=True)
        self._append([line])

    def warning(self, message):
        """A warning goes to stderr (so it is seen) and into the log file."""
        if self.silent:
            return
        print(f'warning: {message}', file=sys.stderr, flush=True)
        self._append([stamp(f'WARNING: {message}')])

    def _append(self, lines):
        if not self.print_log or not lines:
            return
        if self.path is None:
            self._pending.extend(lines)
            return
        try:
            with open(self.path, 'a', encoding='utf-8') as f:
                f.write('\n'.join(lines) + '\n')
        except OSError as e:
            raise WriteError(f'cannot write {self.path}: {e.strerror}') from None
