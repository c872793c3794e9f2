"""Load and validate the action-description files of one dataset (upstream's line formats).

A dataset folder (text/ntu, text/ucla, or any folder a user points to) holds, one line per class
in label order:
  label_names.txt  `label name`
  synonyms.txt     `label name,syn1, syn2, ...`          (comma separated, label name first)
  sentences.txt    `label name,<paragraph>`              (split on the first comma only)
  parts.txt        `label name;head ...;hand ...;arm ...;hip ...;leg ...;foot ...`
These are the formats of the paper's own files, so a user can drop those in instead of ours.

Validate from the shell: `python text/descriptions.py ntu --min-synonyms 8` lists every problem.
"""
import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from torchlight.errors import UserError, run_cli

TEXT_DIR = Path(__file__).resolve().parent
DATASET_CLASSES = {'ntu': 120, 'ucla': 10}
FILES = ('label_names.txt', 'synonyms.txt', 'sentences.txt', 'parts.txt')
PART_WORDS = ('head', 'hand', 'arm', 'hip', 'leg', 'foot')
# A part field must open with its part word; plural forms read naturally ("feet stay flat").
_PART_FORMS = {'head': ('head', 'heads'), 'hand': ('hand', 'hands'), 'arm': ('arm', 'arms'),
               'hip': ('hip', 'hips'), 'leg': ('leg', 'legs'), 'foot': ('foot', 'feet')}
_PLACEHOLDER = re.compile(
    r'\b(todo|tbd|fixme|placeholder|lorem ipsum|xxx+)\b|[<>{}]|\.\.\.|\u2026', re.IGNORECASE)
_EMPTY_WORDS = {'', 'n/a', 'na', 'none', 'nothing', 'same', 'null', '-', '?'}


@dataclass(frozen=True)
class Descriptions:
    """Descriptions of `len(names)` classes, in label order."""
    names: list          # label names
    synonyms: list       # per class: [label name, syn1, ...]
    sentences: list      # per class: one paragraph
    parts: list          # per class: (head, hand, arm, hip, leg, foot) fields, part word included

    def __len__(self):
        return len(self.names)


class Problem(NamedTuple):
    path: Path
    line: int
    message: str

    def __str__(self):
        return f'{self.path}:{self.line}: {self.message}'


def normalize(text):
    """Comparison form of a name or field: case, inner whitespace and a final period ignored."""
    return ' '.join(text.lower().split()).rstrip('.').strip()


def _check_text(text, what):
    if not text.strip():
        raise ValueError(f'empty {what}')
    if normalize(text) in _EMPTY_WORDS or _PLACEHOLDER.search(text):
        raise ValueError(f'placeholder {what}: {text.strip()!r}')


def parse_synonyms_line(line, min_synonyms=1):
    """`name,syn1, syn2` -> (name, [name, syn1, syn2]); ValueError says what is wrong."""
    entries = [e.strip() for e in line.strip().split(',')]
    for i, entry in enumerate(entries):
        _check_text(entry, 'label name' if i == 0 else f'synonym {i}')
    seen = {}
    for i, entry in enumerate(entries):
        key = normalize(entry)
        if key in seen:
            raise ValueError(f'synonym {entry!r} repeats entry {seen[key] + 1} of the line')
        seen[key] = i
    if len(entries) - 1 < min_synonyms:
        raise ValueError(f'{len(entries) - 1} synonyms after the label name, need at least {min_synonyms}')
    return entries[0], entries


def parse_sentence_line(line):
    """`name,<paragraph>` -> (name, paragraph); only the first comma separates."""
    name, sep, paragraph = line.strip().partition(',')
    if not sep:
        raise ValueError('expected `label name,<paragraph>` (no comma)')
    _check_text(name, 'label name')
    _check_text(paragraph, 'paragraph')
    if len(paragraph.split()) < 4:
        raise ValueError(f'paragraph too short: {paragraph.strip()!r}')
    return name.strip(), paragraph.strip()


def parse_parts_line(line):
    """`name;head ...;hand ...;arm ...;hip ...;leg ...;foot ...` -> (name, six fields)."""
    fields = [f.strip() for f in line.strip().split(';')]
    if len(fields) != 1 + len(PART_WORDS):
        raise ValueError(f'{len(fields)} semicolon-separated fields, expected 7 '
                         '(label name;head;hand;arm;hip;leg;foot)')
    _check_text(fields[0], 'label name')
    for part, field in zip(PART_WORDS, fields[1:]):
        first, _, rest = field.partition(' ')
        if first.lower().strip(':,') not in _PART_FORMS[part]:
            raise ValueError(f'{part} field must start with {part!r}: {field!r}')
        _check_text(rest, f'{part} description')
    return fields[0], tuple(fields[1:])


def _read_lines(path, problems):
    """Non-blank lines with their 1-based numbers; blank lines inside the file are problems."""
    try:
        raw = path.read_text(encoding='utf-8-sig').splitlines()
    except FileNotFoundError:
        problems.append(Problem(path, 0, 'file not found'))
        return None
    except (OSError, UnicodeDecodeError) as e:
        problems.append(Problem(path, 0, f'cannot read ({e})'))
        return None
    while raw and not raw[-1].strip():
        raw.pop()
    lines = []
    for number, line in enumerate(raw, 1):
        if not line.strip():
            problems.append(Problem(path, number, 'empty line'))
        else:
            lines.append((number, line))
    return lines


def check_files(text_dir, num_class=None, min_synonyms=1):
    """Validate the four files of `text_dir`; return (Descriptions of the first num_class classes
    or None, problems). A description file holds either num_class lines or one per label name
    (NTU60 runs use the first 60 of the 120 NTU RGB+D 120 classes)."""
    text_dir = Path(text_dir)
    problems = []
    name_lines = _read_lines(text_dir / 'label_names.txt', problems)
    if name_lines is None:
        return None, problems
    names = [line.strip() for _, line in name_lines]
    num_class = len(names) if num_class is None else num_class
    if len(names) < num_class:
        problems.append(Problem(text_dir / 'label_names.txt', len(names),
                                f'{len(names)} label names, the dataset has {num_class} classes'))
        return None, problems
    first_seen = {}
    for (number, _), name in zip(name_lines, names):
        if normalize(name) in first_seen:
            problems.append(Problem(text_dir / 'label_names.txt', number,
                                    f'label name {name!r} repeats line {first_seen[normalize(name)]}'))
        first_seen.setdefault(normalize(name), number)

    parsers = {'synonyms.txt': lambda line: parse_synonyms_line(line, min_synonyms),
               'sentences.txt': parse_sentence_line, 'parts.txt': parse_parts_line}
    parsed = {}
    for filename, parse in parsers.items():
        path = text_dir / filename
        lines = _read_lines(path, problems)
        if lines is None:
            continue
        if len(lines) not in (num_class, len(names)):
            expected = f'{num_class}' if num_class == len(names) else f'{num_class} or {len(names)}'
            problems.append(Problem(path, lines[-1][0] if lines else 0,
                                    f'{len(lines)} classes, expected {expected}'))
        values, seen = [], {}
        for index, (number, line) in enumerate(lines[:len(names)]):
            try:
                name, value = parse(line)
            except ValueError as e:
                problems.append(Problem(path, number, str(e)))
                values.append(None)
                continue
            if normalize(name) != normalize(names[index]):
                problems.append(Problem(path, number, f'label name {name!r} does not match '
                                        f'label_names.txt line {index + 1} {names[index]!r}'))
            if filename != 'synonyms.txt':  # two classes with the same text cannot be told apart
                key = tuple(normalize(v) for v in value) if filename == 'parts.txt' else normalize(value)
                if key in seen:
                    what = 'part descriptions' if filename == 'parts.txt' else 'paragraph'
                    problems.append(Problem(path, number, f'same {what} as line {seen[key]}'))
                seen.setdefault(key, number)
            values.append(value)
        parsed[filename] = values
    if problems:
        return None, problems
    return Descriptions(names=names[:num_class],
                        synonyms=parsed['synonyms.txt'][:num_class],
                        sentences=parsed['sentences.txt'][:num_class],
                        parts=parsed['parts.txt'][:num_class]), problems


def dataset_dir(dataset=None, text_dir=None):
    """The folder of a dataset's files: `text_dir` if given, else text/<dataset>."""
    if text_dir is not None:
        return Path(text_dir)
    if dataset not in DATASET_CLASSES:
        raise UserError(f'unknown text dataset {dataset!r}; expected one of {sorted(DATASET_CLASSES)}')
    return TEXT_DIR / dataset


def load_descriptions(dataset=None, num_class=None, text_dir=None, min_synonyms=1):
    """Descriptions of the first `num_class` classes; UserError naming file:line on any problem."""
    folder = dataset_dir(dataset, text_dir)
    descriptions, problems = check_files(folder, num_class, min_synonyms)
    if problems:
        more = f' (and {len(problems) - 1} more; list them with `python text/descriptions.py {folder}`)' \
            if len(problems) > 1 else ''
        raise UserError(f'description file: {problems[0]}{more}')
    return descriptions


def main(argv=None):
    parser = argparse.ArgumentParser(description='Validate the action-description files of a dataset.')
    parser.add_argument('dataset', help="'ntu', 'ucla' or a folder holding the four files")
    parser.add_argument('--num-class', type=int, default=None)
    parser.add_argument('--min-synonyms', type=int, default=8,
                        help='quality bar for the shipped files (training itself needs 1)')
    args = parser.parse_args(argv)
    folder = dataset_dir(args.dataset) if args.dataset in DATASET_CLASSES else Path(args.dataset)
    descriptions, problems = check_files(folder, args.num_class, args.min_synonyms)
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(f'ok: {folder}: {len(descriptions)} classes')
    return 0


if __name__ == '__main__':
    run_cli(main)
