"""Draw a skeleton sequence: a PNG strip of evenly spaced frames, or an animated GIF.

    python data/render.py S001C001P001R001A011.skeleton -o strip.png --frames 8
    python data/render.py data/NW-UCLA/all_sqe/a01_s01_e00_v01.json -o walk.gif --step 2
    python data/render.py data/ntu/NTU60_CS.npz --sample 3 --split test -o sample3.png
    python data/render.py S001C003P008R002A058.skeleton -o compare.png --compare

INPUT is a raw NTU RGB+D `.skeleton` file (every body id the file holds), an NW-UCLA all_sqe
`.json`, or one sample of a prepared NTU `.npz` (or its converted `.h5`). Joints are dots, bones
lines (the graphs of graph/ntu_rgb_d.py and graph/ucla.py), each body in its own colour, drawn in
the camera's x/y plane (y up, equal aspect, the same limits in every frame of a row). The title
names the class from a label set (--text-dir: text/ntu for NTU inputs, text/ucla for NW-UCLA).

--compare adds what the project's preprocessing makes of the input, beside it: for a .skeleton,
the prepared sample (data/denoise.py + data/translate.py, as data/pipeline.py runs them for one
file) and the NTU feeder's test-time crop and resize (feeders/views.py); for an NW-UCLA
json, the feeder's val path (centre on joint 1 of frame 0, min-max each axis to [-1, 1], 52 evenly
spaced frames); for an npz sample, the feeder's test-time crop and resize.
"""
import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

if __package__ in (None, ''):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.denoise import denoised_sequence  # noqa: E402
from data.skeleton_io import read_skeleton  # noqa: E402
from data.splits import DATASETS, parse_name  # noqa: E402
from data.translate import to_150, translate  # noqa: E402
from feeders import transforms, views  # noqa: E402
from feeders.feeder_ucla import SPLIT_FILE as UCLA_SPLIT_FILE  # noqa: E402
from feeders.feeder_ucla import TIME_STEPS as UCLA_TIME_STEPS  # noqa: E402
from feeders.feeder_ucla import load_sequence  # noqa: E402
from feeders.storage import open_split  # noqa: E402
from graph.ntu_rgb_d import Graph as NTUGraph  # noqa: E402
from graph.ucla import Graph as UCLAGraph  # noqa: E402
from text.label_set import LabelSet  # noqa: E402
from torchlight.errors import UserError, run_cli  # noqa: E402
from torchlight.io import atomic_open  # noqa: E402

NTU_WINDOW = 64  # window_size of the NTU configs' test feeder
NTU_P = 0.95  # their test-time p_interval: the central 95% of the valid frames
NTU_BODIES, NTU_JOINTS = 2, 25
INPUTS = {'.skeleton': 'ntu_raw', '.json': 'ucla', '.npz': 'ntu_npz', '.h5': 'ntu_npz',
          '.hdf5': 'ntu_npz'}
OUTPUTS = ('.png', '.gif')
COLORS = ('tab:blue', 'tab:orange', 'tab:green', 'tab:red', 'tab:purple', 'tab:brown',
          'tab:pink', 'tab:olive', 'tab:cyan', 'tab:gray')


@dataclass
class Track:
    """One drawn version of the sequence: a row of the strip, a panel of the GIF."""
    title: str
    joints: np.ndarray  # (T, B, V, 3); a body whose values in a frame are all zero is absent there
    bones: list  # 0-based (child, parent) joint pairs
    bodies: list  # a legend label per body

    @property
    def length(self):
        return len(self.joints)

    def present(self):
        """(T, B) bool: the body has a non-zero value in the frame."""
        return np.any(self.joints != 0, axis=(2, 3))


# ------------------------------------------------------------------------------ class names
def _ntu_class(index, names):
    """'A058 handshaking' for the 0-based class `index` (the name when the label set has it)."""
    name = names[index] if 0 <= index < len(names) else ''
    return f'A{index + 1:03d} {name}'.strip()


def _ucla_class(stem, names):
    try:
        with open(UCLA_SPLIT_FILE) as f:
            split = json.load(f)
        label = next(int(e['label']) for part in split.values() for e in part
                     if e['file_name'] == stem)
    except (OSError, ValueError, KeyError, TypeError, StopIteration):
        return ''
    return f'class {label}' + (f' {names[label - 1]}' if 0 < label <= len(names) else '')


# ----------------------------------------------------------------------------------- tracks
def ntu_frames_to_joints(frames):
    """(T, 150) -> (T, 2, 25, 3): body-major, as the NTU feeder reads the 150 values."""
    return np.asarray(frames, dtype=np.float32).reshape(-1, NTU_BODIES, NTU_JOINTS, 3)


def ntu_feeder_view(frames, window=NTU_WINDOW, p=NTU_P):
    """What the NTU feeder's test path makes of a (T, 150) sample (no rotation, joint modality):
    trailing zero frames trimmed, the valid frames centre-cropped to p and resized to `window`.
    Returns (window, 2, 25, 3)."""
    frames = transforms.trim_trailing_zeros(np.asarray(frames, dtype=np.float32))
    data = np.ascontiguousarray(ntu_frames_to_joints(frames).transpose(3, 0, 2, 1))  # (C, T, V, M)
    return views.crop_resize(data, p, window).transpose(1, 3, 2, 0)


def ntu_prepared(skeleton, dataset='ntu60'):
    """The sample as the preparation writes it for one file (before the npz padding): actors
    chosen and laid out (denoise), centred on actor 1's spine middle (translate), 150 values."""
    seq = translate(denoised_sequence(skeleton))
    return to_150(seq, DATASETS[dataset].repeat_single)


def _ntu_actors(frames, title):
    """Track of a (T, 150) prepared sample; a second actor that only copies the first (NTU120's
    one-actor layout) is dropped from the drawing and said so."""
    joints = ntu_frames_to_joints(frames)
    labels = ['actor 1', 'actor 2']
    if not np.any(joints[:, 1]):
        title += ' (one actor; actor 2 all zeros)'
    elif np.array_equal(joints[:, 0], joints[:, 1]):
        joints, labels, title = joints[:, :1], labels[:1], title + ' (actor 2 = copy of actor 1)'
    return Track(title, joints, NTUGraph.inward, labels)


def ntu_raw_tracks(path, compare, dataset, window, p, names=()):
    try:
        skeleton = read_skeleton(path)
    except OSError as e:
        raise UserError(f'{path}: cannot read ({e.strerror or e})') from None
    bodies = skeleton.bodies
    joints = np.zeros((skeleton.num_frames, max(len(bodies), 1), NTU_JOINTS, 3), np.float32)
    for b, body in enumerate(bodies):
        joints[body.start:body.end + 1, b] = body.joints
    labels = [f'body {b + 1} (id ...{body.id[-4:]}, {body.length} fr)' for b, body in enumerate(bodies)]
    dropped = f', {skeleton.dropped_frames} empty frames dropped' if skeleton.dropped_frames else ''
    tracks = [Track(f'raw: {len(bodies)} bod{"y" if len(bodies) == 1 else "ies"}, '
                    f'{skeleton.num_frames} frames{dropped}', joints, NTUGraph.inward, labels)]
    if compare:
        prepared = ntu_prepared(skeleton, dataset)
        tracks.append(_ntu_actors(prepared, f'prepared ({dataset}): denoised, centred on joint 2 '
                                            f'of actor 1, {len(prepared)} frames'))
        tracks.append(_ntu_actors(ntu_feeder_view(prepared, window, p).reshape(window, -1),
                                  f'feeder test view: central {p:g} crop, resized to {window} frames'))
    ids = parse_name(skeleton.name)
    title = Path(path).name + (f'  -  {_ntu_class(ids["action"] - 1, names)}' if ids else '')
    return title, tracks


def ntu_npz_tracks(path, sample, split, compare, window, p, names=()):
    try:
        source = open_split(path, split)
        if not 0 <= sample < len(source):
            raise UserError(f'{path}: sample {sample} out of range; the {split} split has '
                            f'{len(source)} samples (0..{len(source) - 1})')
        frames = transforms.trim_trailing_zeros(source.read(sample))
        label = int(source.label[sample])
    except (OSError, ValueError, KeyError, EOFError) as e:  # unreadable or not an NTU data file
        raise UserError(f'{path}: cannot read it as an NTU data file ({e})') from None
    if not len(frames):
        raise UserError(f'{path}: {split} sample {sample} is all zeros (nothing to draw)')
    tracks = [_ntu_actors(frames, f'prepared sample: {len(frames)} frames (padding trimmed)')]
    if compare:
        tracks.append(_ntu_actors(ntu_feeder_view(frames, window, p).reshape(window, -1),
                                  f'feeder test view: central {p:g} crop, resized to {window} frames'))
    return f'{Path(path).name}  {split} sample {sample}  -  {_ntu_class(label, names)}', tracks


def ucla_val_view(seq, window=UCLA_TIME_STEPS):
    """The NW-UCLA feeder's val path on a raw (T, 20, 3) sequence: centre on joint 1 of frame 0,
    min-max each axis to [-1, 1], `window` evenly spaced frames. Returns (window, 20, 3)."""
    return views.nw_ucla(seq.transpose(2, 0, 1)[..., None], window)[..., 0].transpose(1, 2, 0)


def ucla_tracks(path, compare, window, names=()):
    try:
        seq = load_sequence(path)
    except (ValueError, TypeError, OSError) as e:  # ragged or non-numeric joints, unreadable file
        raise UserError(f'{path}: expected json with a "skeletons" list (frames x 20 joints x 3): '
                        f'{str(e).split(". ")[0][:100]}') from None
    tracks = [Track(f'raw: {len(seq)} frames', seq[:, None], UCLAGraph.inward, ['body'])]
    if compare:
        tracks.append(Track(f'feeder val view: centred, min-max per axis to [-1, 1], {window} frames',
                            ucla_val_view(seq, window)[:, None], UCLAGraph.inward, ['body']))
    name = Path(path).name
    label = _ucla_class(Path(path).stem, names)
    return name + (f'  -  {label}' if label else ''), tracks


# ---------------------------------------------------------------------------------- drawing
def _limits(track):
    """x/y limits over every present body in every frame, with a margin."""
    present = track.present()
    points = track.joints[present][..., :2].reshape(-1, 2)
    points = points[np.all(np.isfinite(points), axis=1)]
    if not len(points):
        return -1.0, 1.0, -1.0, 1.0
    (x0, y0), (x1, y1) = points.min(0), points.max(0)
    pad = 0.06 * max(x1 - x0, y1 - y0, 1e-3)
    return x0 - pad, x1 + pad, y0 - pad, y1 + pad


def _common_aspect(tracks, low=0.45, high=2.5):
    """Give every track limits of one width/height ratio, widening the narrow side only, so that
    all panels have the same shape with equal axis scales. Returns (limits per track, ratio)."""
    limits = [_limits(t) for t in tracks]
    ratio = float(np.clip(max((x1 - x0) / (y1 - y0) for x0, x1, y0, y1 in limits), low, high))
    out = []
    for x0, x1, y0, y1 in limits:
        w, h = x1 - x0, y1 - y0
        if w < ratio * h:
            c, w = (x0 + x1) / 2, ratio * h
            x0, x1 = c - w / 2, c + w / 2
        else:
            c, h = (y0 + y1) / 2, w / ratio
            y0, y1 = c - h / 2, c + h / 2
        out.append((x0, x1, y0, y1))
    return out, ratio


class _Panel:
    """The artists of one axes: per body a bone LineCollection and a joint marker line."""

    def __init__(self, ax, track, limits, fontsize):
        from matplotlib.collections import LineCollection
        self.track, self.present = track, track.present()
        self.bones = np.asarray(track.bones, dtype=int).reshape(-1, 2)
        self.segments, self.dots = [], []
        for b in range(track.joints.shape[1]):
            color = COLORS[b % len(COLORS)]
            lines = LineCollection([], colors=color, linewidths=1.8, capstyle='round')
            ax.add_collection(lines)
            self.segments.append(lines)
            self.dots.append(ax.plot([], [], 'o', color=color, markersize=3.2, markeredgewidth=0)[0])
        ax.set_xlim(limits[0], limits[1])
        ax.set_ylim(limits[2], limits[3])
        ax.set_aspect('equal', adjustable='box')
        ax.tick_params(labelsize=fontsize - 1, length=2)
        ax.grid(True, alpha=0.25, linewidth=0.5)
        self.ax, self.fontsize, self.frame_text = ax, fontsize, None

    def artists(self):
        """What show() changes: the bodies' bones and joints, and the frame label."""
        return [*self.segments, *self.dots] + ([self.frame_text] if self.frame_text else [])

    def legend_items(self):
        """(handles, labels) of the bodies seen in some frame; empty for a lone body."""
        from matplotlib.lines import Line2D
        shown = np.flatnonzero(self.present.any(axis=0))
        if len(shown) < 2:
            return [], []
        return ([Line2D([], [], color=COLORS[b % len(COLORS)], marker='o', markersize=3)
                 for b in shown], [self.track.bodies[b] for b in shown])

    def show(self, t):
        joints = self.track.joints[t]
        for b, (lines, dots) in enumerate(zip(self.segments, self.dots)):
            if self.present[t, b]:
                xy = joints[b, :, :2]
                lines.set_segments(xy[self.bones])  # (E, 2 ends, x y)
                dots.set_data(xy[:, 0], xy[:, 1])
            else:
                lines.set_segments([])
                dots.set_data([], [])
        label = f'frame {t + 1}/{self.track.length}'
        if self.frame_text is None:
            self.ax.set_xlabel(label, fontsize=self.fontsize, color='0.3', labelpad=1)
        else:
            self.frame_text.set_text(label)

    def detach_label(self, fig, renderer):
        """Move the frame label (the x label, which its axis always redraws) to a figure text
        at the same place, so that blitting can redraw it alone. Call once the layout is fixed."""
        from matplotlib.transforms import IdentityTransform
        label = self.ax.xaxis.label
        box = label.get_window_extent(renderer)
        self.frame_text = fig.text((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2, label.get_text(),
                                   transform=IdentityTransform(), ha='center', va='center',
                                   fontsize=self.fontsize, color='0.3', animated=True)
        label.set_visible(False)


def _figure(**kwargs):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(**kwargs)
    return fig, FigureCanvasAgg(fig)


def _positions(length, count):
    """`count` frame indices spread evenly over 0..length-1 (repeats when length < count)."""
    return np.rint(np.linspace(0, length - 1, count)).astype(int)


def render_strip(title, tracks, frames, panel_height=2.4, dpi=100):
    """PNG bytes: a row per track, `frames` evenly spaced frames of it side by side."""
    import io
    cols = max(1, min(frames, max(t.length for t in tracks)))
    limits, ratio = _common_aspect(tracks)
    width = cols * (panel_height * ratio + 0.3) + 0.5  # + tick labels and gaps per column
    height = len(tracks) * (panel_height + 0.8) + 0.6
    fig, _ = _figure(figsize=(width, height), layout='constrained')
    fig.suptitle(_wrap(title, int(width * 72 / (11 * 0.6))), fontsize=11)
    rows = fig.subfigures(len(tracks), 1, squeeze=False)[:, 0]
    for row, track, lim in zip(rows, tracks, limits):
        row.suptitle(track.title, fontsize=9, x=0.01, ha='left')
        axes = row.subplots(1, cols, squeeze=False, sharex=True, sharey=True)[0]
        for c, (ax, t) in enumerate(zip(axes, _positions(track.length, cols))):
            panel = _Panel(ax, track, lim, fontsize=7)
            panel.show(t)
            if c:
                ax.tick_params(labelleft=False)
        handles, labels = panel.legend_items()
        if handles:
            row.legend(handles, labels, loc='outside upper right', ncols=len(handles), fontsize=7,
                       handlelength=1.2, frameon=False)
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=dpi, bbox_inches='tight', pad_inches=0.08)
    return buf.getvalue()


def render_gif_frames(title, tracks, step, panel_height=3.4, dpi=80):
    """RGB PIL images, one per GIF frame: the tracks side by side at the same point in time,
    every `step`-th frame of the longest track."""
    from PIL import Image
    limits, ratio = _common_aspect(tracks)
    width = max(len(tracks) * (panel_height * ratio + 0.4) + 0.3, 3.6)
    fig, canvas = _figure(figsize=(width, panel_height + 1.2), dpi=dpi, layout='constrained')
    fig.suptitle(_wrap(title, int(width * 72 / (9 * 0.6))), fontsize=9)
    axes = fig.subplots(1, len(tracks), squeeze=False)[0]
    panels = []
    for ax, track, lim in zip(axes, tracks, limits):
        ax.set_title(_wrap(track.title, int(width / len(tracks) * 72 / (7 * 0.6))), fontsize=7)
        panels.append(_Panel(ax, track, lim, fontsize=7))
        handles, labels = panels[-1].legend_items()
        if handles:
            ax.legend(handles, labels, loc='upper center', bbox_to_anchor=(0.5, -0.13),
                      ncols=min(len(handles), 2), fontsize=6, handlelength=1.2, frameon=False)
    longest = max(t.length for t in tracks)
    images = []
    for panel in panels:
        panel.show(0)
    canvas.draw()  # lays the figure out once, with the frame labels in place
    fig.set_layout_engine('none')  # freeze it: every frame has the same geometry
    # Blitting: draw the static parts once, then per frame only the bodies and the frame label.
    renderer = canvas.get_renderer()
    for panel in panels:
        panel.detach_label(fig, renderer)
    moving = [a for panel in panels for a in panel.artists()]
    for artist in moving:
        artist.set_animated(True)
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)
    for t in range(0, longest, step):
        canvas.restore_region(background)
        for panel in panels:
            n = panel.track.length
            panel.show(int(round(t * (n - 1) / max(longest - 1, 1))))
        for artist in moving:
            fig.draw_artist(artist)
        images.append(Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy()))
    return images


def _wrap(text, width):
    import textwrap
    return '\n'.join(textwrap.wrap(text, max(width, 20)))


def write_output(out, data=None, images=None, fps=15):
    """Write PNG bytes or GIF frames to `out` atomically: all of it, or nothing."""
    try:
        with atomic_open(out, 'wb') as f:
            if images is None:
                f.write(data)
            else:
                images[0].save(f, format='GIF', save_all=True, append_images=images[1:],
                               duration=10 * max(2, round(100 / fps)), loop=0)  # GIF counts 1/100 s
    except OSError as e:
        raise UserError(f'cannot write {out}: {e.strerror or e}') from None


# -------------------------------------------------------------------------------------- CLI
def parser():
    p = argparse.ArgumentParser(
        description='Draw a skeleton sequence (NTU .skeleton, NW-UCLA .json, or a sample of a '
                    'prepared NTU .npz) as a PNG strip of frames or an animated GIF.',
        epilog='Example: python data/render.py S001C001P001R001A011.skeleton -o strip.png '
               '--compare')
    p.add_argument('input', metavar='INPUT', help='.skeleton, .json, or .npz (with --sample)')
    p.add_argument('-o', '--out', required=True, metavar='OUT',
                   help='output file: .png (a strip of frames) or .gif (an animation)')
    p.add_argument('--frames', type=int, default=8,
                   help='PNG: evenly spaced frames drawn side by side (default %(default)s)')
    p.add_argument('--step', type=int, default=1,
                   help='GIF: draw every k-th frame (default %(default)s: every frame)')
    p.add_argument('--fps', type=float, default=15.0,
                   help='GIF: frames per second (default %(default)s)')
    p.add_argument('--sample', type=int, default=None,
                   help='.npz: index of the sample to draw (default 0)')
    p.add_argument('--split', choices=('test', 'train'), default=None,
                   help='.npz: which split --sample indexes (default test)')
    p.add_argument('--compare', action='store_true',
                   help='also draw what the preprocessing makes of it (prepared sample, feeder '
                        'test/val view) (default off)')
    p.add_argument('--dataset', choices=sorted(DATASETS), default='ntu60',
                   help='.skeleton with --compare: whose layout the prepared sample gets (ntu120 '
                        'copies a lone actor into the second slot) (default %(default)s)')
    p.add_argument('--text-dir', default=None, metavar='LABEL_SET',
                   help="label set naming the classes in the title: 'ntu', 'ucla' or a folder "
                        '(default ntu for NTU inputs, ucla for NW-UCLA)')
    p.add_argument('--window', type=int, default=None,
                   help=f'--compare: frames of the feeder view (default {NTU_WINDOW} for NTU, '
                        f'{UCLA_TIME_STEPS} for NW-UCLA)')
    p.add_argument('--p-interval', type=float, default=NTU_P,
                   help='--compare, NTU: share of the valid frames the test-time centre crop '
                        'keeps (default %(default)s)')
    return p


def run(argv=None):
    args = parser().parse_args(argv)
    inp, out = Path(args.input), Path(args.out)
    if out.suffix.lower() not in OUTPUTS:
        raise UserError(f'output {out}: unknown type {out.suffix or "(none)"!r}; '
                        f'expected .png (a strip) or .gif (an animation)')
    for flag, value, low in (('--frames', args.frames, 1), ('--step', args.step, 1),
                             ('--window', args.window, 1)):
        if value is not None and value < low:
            raise UserError(f'{flag} must be at least {low}, got {value}')
    if not args.fps > 0:
        raise UserError(f'--fps must be positive, got {args.fps:g}')
    if not 0 < args.p_interval <= 1:
        raise UserError(f'--p-interval must lie in (0, 1], got {args.p_interval:g}')
    kind = INPUTS.get(inp.suffix.lower())
    if kind is None:
        raise UserError(f'{inp}: unknown input type {inp.suffix or "(none)"!r}; expected .skeleton '
                        f'(raw NTU), .json (NW-UCLA) or .npz (prepared NTU)')
    if not inp.is_file():
        raise UserError(f'{inp}: no such file')
    if kind != 'ntu_npz' and (args.sample is not None or args.split is not None):
        raise UserError('--sample and --split apply to an .npz input only')
    names = LabelSet.open(args.text_dir or ('ucla' if kind == 'ucla' else 'ntu')).names

    if kind == 'ntu_raw':
        title, tracks = ntu_raw_tracks(inp, args.compare, args.dataset, args.window or NTU_WINDOW,
                                       args.p_interval, names)
    elif kind == 'ucla':
        title, tracks = ucla_tracks(inp, args.compare, args.window or UCLA_TIME_STEPS, names)
    else:
        title, tracks = ntu_npz_tracks(inp, 0 if args.sample is None else args.sample,
                                       args.split or 'test', args.compare,
                                       args.window or NTU_WINDOW, args.p_interval, names)

    if out.suffix.lower() == '.png':
        write_output(out, data=render_strip(title, tracks, args.frames))
        what = f'{min(args.frames, max(t.length for t in tracks))} frames'
    else:
        images = render_gif_frames(title, tracks, args.step)
        write_output(out, images=images, fps=args.fps)
        what = f'{len(images)} frames at {args.fps:g} fps'
    print(f'wrote {out} ({what}, {len(tracks)} view{"s" if len(tracks) > 1 else ""})')


def main(argv=None):
    run_cli(run, argv)


if __name__ == '__main__':
    main()
