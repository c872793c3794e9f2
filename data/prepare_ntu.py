"""One-shot NTU preparation: raw .skeleton files -> NTU60_CS/CV.npz or NTU120_CSub/CSet.npz.

    python data/prepare_ntu.py --dataset ntu60 --raw-root data/nturgbd_raw --out-dir data/ntu
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for `import data`

from data.cli import main  # noqa: E402

if __name__ == '__main__':
    main('all')
