"""Shared test fixtures: repo root on sys.path, and the read-only reference data beside the repo."""
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# ../shared beside the checkout (CI copies it there); a user's clone has none, so tests skip,
# except under CI, where they fail.
SHARED = Path(os.environ.get('GAP_SHARED_DIR', REPO.parent / 'shared'))
REFERENCE = SHARED / 'reference'
FIXTURES = REFERENCE / 'fixtures'
UCLA_ALL_SQE = SHARED / 'datasets' / 'NW-UCLA' / 'all_sqe'
NTU_SAMPLES = SHARED / 'samples' / 'ntu_skeleton'


def need(path):
    """Return `path`, or skip the calling test when the reference data is not there. Under CI
    (CI=true) the reference is part of the run: a missing one fails instead of hiding a skip."""
    path = Path(path)
    if not path.exists():
        if os.environ.get('CI', '').lower() in ('1', 'true', 'yes'):
            pytest.fail(f'CI=true but the reference data is missing: {path}')
        pytest.skip(f'reference data not available: {path}')
    return path


@pytest.fixture
def reference_dir():
    return need(REFERENCE)


@pytest.fixture
def fixtures_dir():
    return need(FIXTURES)


@pytest.fixture
def one_thread():
    """torch on one thread for the test (small models: threads only wait on each other)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
