"""NTU60 preparation, step 1 of 3: parse the raw .skeleton files into raw_data/.

Upstream's script name; run it from this folder (python get_raw_skes_data.py); --help lists the flags.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, for `import data`

from data.cli import main  # noqa: E402

if __name__ == '__main__':
    main('raw', 'ntu60')
