"""NTU120 preparation, step 3 of 3: centre, pad and split into the benchmark npz files.

Upstream's script name; run it from this folder (python seq_transformation.py); --help lists the flags.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, for `import data`

from data.cli import main  # noqa: E402

if __name__ == '__main__':
    main('translate', 'ntu120')
