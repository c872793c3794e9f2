"""Read one NTU RGB+D `.skeleton` file into its bodies, vectorised with NumPy.

File layout: frame count; per frame a body count; per body an info line (10 values, the first is
the body id), a joint-count line (25) and 25 joint lines of 12 values (x y z first).

The fast path walks only the count lines in Python and parses the x y z of all joint lines in one
vectorised pass; the other nine values per joint are never converted. A file not in the
canonical layout (tabs, double spaces) or a broken one goes to a careful line-by-line reader, which
parses it or says which line is wrong and what was expected. An x y z that is not finite (nan,
inf, or beyond float32's range) is broken input too: the careful reader names its line.
"""
from dataclasses import dataclass

import numpy as np

from torchlight.errors import UserError

NUM_JOINTS = 25
JOINT_VALUES = 12
INFO_VALUES = 10


@dataclass
class Body:
    """One body id of a sample. Upstream semantics: `start` is the (post-drop) frame where the id
    first appears and its frames are numbered start, start+1, ... one per appearance, even when it
    skips frames in between (upstream's interval bookkeeping; the outputs depend on it)."""
    id: str
    joints: np.ndarray  # (n, 25, 3) float32
    start: int

    @property
    def length(self):
        return len(self.joints)

    @property
    def end(self):
        return self.start + len(self.joints) - 1


@dataclass
class Skeleton:
    name: str
    bodies: list  # [Body] in order of first appearance
    num_frames: int  # frames with at least one body
    dropped_frames: int  # frames with no body (removed, as upstream)


def read_skeleton(path, name=None):
    """Parse `path`; raise UserError naming the file, the line and what was expected on bad input."""
    with open(path, 'rb') as f:
        raw = f.read()
    return parse_skeleton(raw, name or _stem(path), path)


def _stem(path):
    base = str(path).replace('\\', '/').rsplit('/', 1)[-1]
    return base[:-len('.skeleton')] if base.endswith('.skeleton') else base


def parse_skeleton(raw, name, path='<bytes>'):
    parsed = _parse_fast(raw)
    if parsed is None:  # not in the canonical layout: the careful reader parses it or says why not
        parsed = _parse_slow(raw, path)
    num_frames, bodies, dropped = parsed
    if num_frames == dropped:
        raise UserError(f'{path}: no frame has a body ({num_frames} frames, all empty); '
                        'list it as missing or remove it')
    return Skeleton(name, bodies, num_frames - dropped, dropped)


def _parse_fast(raw):
    """Canonical layout only (single spaces, one record per line): walk the count lines in Python,
    then parse just the x y z of every joint line, vectorised. None when anything is off."""
    buf = np.frombuffer(raw, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 10)
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(raw)]))
    S, E = starts.tolist(), ends.tolist()
    n_lines = len(S)
    while n_lines and not raw[S[n_lines - 1]:E[n_lines - 1]].strip():
        n_lines -= 1  # trailing blank lines are fine
    occ_line, occ_frame, ids = [], [], []
    try:
        num_frames = int(raw[S[0]:E[0]])
        k, valid, dropped = 1, -1, 0
        for _ in range(num_frames):
            nb = int(raw[S[k]:E[k]])
            k += 1
            if nb <= 0:
                if nb < 0:
                    return None
                dropped += 1
                continue
            valid += 1
            for _ in range(nb):
                if k + 2 + NUM_JOINTS > n_lines or int(raw[S[k + 1]:E[k + 1]]) != NUM_JOINTS:
                    return None
                ids.append(raw[S[k]:E[k]].split(None, 1)[0].decode('ascii', 'replace'))
                occ_line.append(k)
                occ_frame.append(valid)
                k += 2 + NUM_JOINTS
    except (ValueError, IndexError):
        return None
    if k != n_lines:
        return None
    if not ids:
        return num_frames, [], dropped
    spaces = np.flatnonzero(buf == 32)
    info = np.asarray(occ_line, dtype=np.int64)
    joint = (info[:, None] + 2 + np.arange(NUM_JOINTS)).ravel()
    first = np.searchsorted(spaces, starts[joint])  # first space of each joint line
    if (np.any(np.searchsorted(spaces, ends[joint]) - first != JOINT_VALUES - 1)
            or np.any(np.searchsorted(spaces, ends[info]) - np.searchsorted(spaces, starts[info])
                      != INFO_VALUES - 1)):
        return None
    # x, y, z are the first three tokens: they end at the line's first three spaces
    tok_end = spaces[first[:, None] + np.arange(3)]
    tok_start = np.column_stack((starts[joint], tok_end[:, :2] + 1))
    vals = parse_decimals(buf, tok_start.ravel(), tok_end.ravel())
    if vals is None:
        return None
    # float64 then float32: the same rounding as upstream's np.array(strings, dtype=float32)
    with np.errstate(over='ignore'):  # beyond float32: inf, refused below
        xyz = vals.astype(np.float32).reshape(-1, NUM_JOINTS, 3)
    if not np.isfinite(xyz).all():
        return None  # nan / inf: the careful reader says which line
    return num_frames, _group(ids, occ_frame, xyz), dropped


_DEC_WIDTH = 11  # "-0.1159187" is 10 characters
_POW10 = 10.0 ** np.arange(_DEC_WIDTH)
_COLS = np.arange(_DEC_WIDTH)
_CHAR_VALUE = np.full(256, -50, dtype=np.int8)  # digits 0-9, '.' -2, '-' -3, anything else -50
_CHAR_VALUE[48:58], _CHAR_VALUE[46], _CHAR_VALUE[45] = np.arange(10), -2, -3


def parse_decimals(buf, starts, ends):
    """float64 of the tokens buf[starts[i]:ends[i]] (uint8 text), vectorised; None if one is not
    a number.

    Kinect writes x y z as [-]d.ddddddd: such a token is its digits as an exact integer divided by
    an exact power of ten, one correctly rounded division, hence the same double as strtod or
    float(). Any other token (an exponent, more digits before the point) goes through float()."""
    n = len(ends)
    lens = ends - starts
    padded = np.concatenate((np.zeros(_DEC_WIDTH, np.uint8), buf))
    # row i, column r: the r-th character counted back from the end of token i
    window = np.lib.stride_tricks.sliding_window_view(padded, _DEC_WIDTH)[ends][:, ::-1]
    digit = _CHAR_VALUE[window]
    point = (digit < 0).argmax(1)  # the first non-digit from the end: plain tokens have the '.' there
    rows = np.arange(n)
    unit = np.minimum(point + 1, _DEC_WIDTH - 1)  # the digit before the point
    sign = np.minimum(point + 2, _DEC_WIDTH - 1)
    negative = (lens == point + 3) & (digit[rows, sign] == -3)
    plain = ((digit[rows, point] == -2) & (lens < _DEC_WIDTH) & ((lens == point + 2) | negative)
             & (digit[rows, unit] >= 0))
    fraction = _COLS < point[:, None]
    vals = ((digit * fraction) @ _POW10 + digit[rows, unit] * _POW10[point]) / _POW10[point]
    vals[negative] *= -1
    other = np.flatnonzero(~plain)
    if len(other):
        raw = buf.tobytes()
        try:
            vals[other] = [float(raw[a:b]) for a, b in zip(starts[other].tolist(), ends[other].tolist())]
        except ValueError:
            return None
    return vals


def _group(ids, occ_frame, xyz):
    """Each body id's joints in frame order, bodies in order of first appearance."""
    order = {}
    for k, body_id in enumerate(ids):
        order.setdefault(body_id, []).append(k)
    return [Body(body_id, xyz[ks], occ_frame[ks[0]]) for body_id, ks in order.items()]


def _parse_slow(raw, path):
    """Line-by-line reader, tolerant of extra whitespace: the result, or a UserError at the first
    line that breaks the format (what was expected, what was found)."""
    lines = raw.decode('ascii', 'replace').splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    pos = [0]

    def take(what, count):
        k = pos[0]
        if k >= len(lines):
            raise UserError(f'{path}: line {k + 1}: file ends early, expected {what}')
        pos[0] += 1
        tok = lines[k].split()
        if len(tok) != count:
            raise UserError(f'{path}: line {k + 1}: expected {what} ({count} value'
                            f'{"s" if count > 1 else ""}), got {len(tok)}: {lines[k].strip()[:60]!r}')
        return k + 1, tok

    def take_int(what, equals=None):
        lineno, tok = take(what, 1)
        if not tok[0].isdigit() or (equals is not None and int(tok[0]) != equals):
            raise UserError(f'{path}: line {lineno}: expected {what}, got {tok[0][:60]!r}')
        return int(tok[0])

    def numbers(lineno, tok, what):
        try:
            return [float(t) for t in tok]
        except ValueError:
            raise UserError(f'{path}: line {lineno}: expected {what} as numbers, '
                            f'got {" ".join(tok)[:60]!r}') from None

    num_frames = take_int('the frame count (an integer)')
    valid, dropped = -1, 0
    ids, occ_frame, xyz, joint_lines = [], [], [], []
    for f in range(1, num_frames + 1):
        nb = take_int(f'the body count of frame {f}/{num_frames} (an integer)')
        if nb == 0:
            dropped += 1
            continue
        valid += 1
        for b in range(1, nb + 1):
            where = f'body {b} of frame {f}'
            lineno, tok = take(f'the info line of {where} (bodyID clippedEdges ... trackingState)',
                               INFO_VALUES)
            numbers(lineno, tok, f'the info line of {where}')
            ids.append(tok[0])
            occ_frame.append(valid)
            take_int(f'the joint count of {where} ({NUM_JOINTS})', equals=NUM_JOINTS)
            for j in range(1, NUM_JOINTS + 1):
                what = (f'joint {j} of {where} '
                        '(x y z depthX depthY colorX colorY orientationWXYZ trackingState)')
                lineno, tok = take(what, JOINT_VALUES)
                xyz.append(numbers(lineno, tok, what)[:3])
                joint_lines.append((lineno, j, where))
    if pos[0] < len(lines):
        raise UserError(f'{path}: line {pos[0] + 1}: expected the end of the file after {num_frames} '
                        f'frames, got {lines[pos[0]].strip()[:60]!r}')
    with np.errstate(over='ignore'):
        xyz = np.array(xyz, dtype=np.float64).reshape(-1, 3).astype(np.float32)
    finite = np.isfinite(xyz).all(axis=1)
    if not finite.all():  # float32, as written: 1e39 is inf there
        lineno, j, where = joint_lines[int(np.argmin(finite))]
        raise UserError(f'{path}: line {lineno}: expected the x y z of joint {j} of {where} as '
                        f'finite numbers, got {" ".join(lines[lineno - 1].split()[:3])[:60]!r}')
    xyz = xyz.reshape(-1, NUM_JOINTS, 3)
    return num_frames, _group(ids, occ_frame, xyz), dropped
