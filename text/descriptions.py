"""The line formats of action descriptions: parse and validate the files of one label set.

Which files a label set's folder holds, and which of them a run reads, is text/label_set.py's
business; this module reads files it is given. Our format, one line per class in label order:
  label_names.txt  `label name`
  synonyms.txt     `label name,syn1, syn2, ...`          (comma separated, label name first)
  sentences.txt    `label name,<paragraph>`              (split on the first comma only)
  parts.txt        `label name;head ...;hand ...;arm ...;hip ...;leg ...;foot ...`
Our own files (and the generator's output) are checked strictly: no repeated synonym, no
placeholder, no two classes with the same text, every part field opening with its part word.
The paper's own files are read leniently; see check_paper_files for what is accepted there and why.

Validate from the shell: `python text/descriptions.py ntu --min-synonyms 8` lists every problem.
"""
import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

if __package__ in (None, ''):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from torchlight.errors import run_cli  # noqa: E402

FILES = ('label_names.txt', 'synonyms.txt', 'sentences.txt', 'parts.txt')
PART_WORDS = ('head', 'hand', 'arm', 'hip', 'leg', 'foot')
# A part field must open with its part word; plural forms read naturally ("feet stay flat").
_PART_FORMS = {'head': ('head', 'heads'), 'hand': ('hand', 'hands'), 'arm': ('arm', 'arms'),
               'hip': ('hip', 'hips'), 'leg': ('leg', 'legs'), 'foot': ('foot', 'feet')}
_PLACEHOLDER = re.compile(
    r'\b(todo|tbd|fixme|placeholder|lorem ipsum|xxx+)\b|[<>{}]|\.\.\.|\u2026', re.IGNORECASE)
_EMPTY_WORDS = {'', 'n/a', 'na', 'none', 'nothing', 'same', 'null', '-', '?'}
FORMATS = ('ours', 'paper')


@dataclass(frozen=True)
class Descriptions:
    """Descriptions of `len(names)` classes, in label order."""
    names: list          # label names
    synonyms: list       # per class: [label name, syn1, ...]
    sentences: list      # per class: one paragraph ('' where the paper's sentence file is absent)
    parts: list          # per class: (head, hand, arm, hip, leg, foot) fields, part word included
    text_format: str = 'ours'   # 'ours' (checked strictly) or 'paper' (the paper's files, lenient)
    notes: tuple = ()    # harmless oddities of the paper's files worth a warning
    part_names: tuple = ()  # what the part prompts open with, if not `names` (the paper's parts lines)

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


def parse_paper_synonyms_line(line):
    """Lenient `name,syn1, syn2` -> (name, entries): repeats and placeholders kept; only empty
    entries (from `,,` or a trailing comma) are dropped, and the label name must be there."""
    entries = [e.strip() for e in line.strip().split(',')]
    if not entries[0]:
        raise ValueError('empty label name (the first comma-separated field)')
    return entries[0], [entries[0]] + [e for e in entries[1:] if e]


_SENTENCE_SEPARATOR = re.compile(r'[,;]')


def parse_paper_sentence_line(line):
    """Lenient `name,<paragraph>` or `name;<paragraph>` -> (name, paragraph): any paragraph text
    is kept. The paper's NTU sentence file puts a comma after the label name, its NW-UCLA one a
    semicolon; label names hold neither, so the first of the two ends the name (a paragraph may
    hold both)."""
    line = line.strip()
    match = _SENTENCE_SEPARATOR.search(line)
    if match is None:
        raise ValueError('expected `label name,<paragraph>` or `label name;<paragraph>` '
                         '(no comma or semicolon)')
    return line[:match.start()].strip(), line[match.end():].strip()


def parse_paper_parts_line(line):
    """Lenient `name;head ...;...;foot ...` -> (name, six fields), each field as written
    (`head: ...`, `none`, even empty). Fields past the seventh are joined onto the foot field:
    the paper's code builds its foot prompt from every field after the hip one."""
    fields = [f.strip() for f in line.strip().split(';')]
    while len(fields) > 1 + len(PART_WORDS) and not fields[-1]:
        fields.pop()  # a trailing semicolon
    if len(fields) < 1 + len(PART_WORDS):
        raise ValueError(f'{len(fields)} semicolon-separated fields, expected 7 '
                         '(label name;head;hand;arm;hip;leg;foot)')
    parts = fields[1:6] + [', '.join(fields[6:])]
    return fields[0], tuple(parts)


def read_lines(path, problems):
    """Non-blank lines with their 1-based numbers; blank lines inside the file and an empty file
    are problems."""
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
    if not raw:
        problems.append(Problem(path, 0, 'empty file'))
    lines = []
    for number, line in enumerate(raw, 1):
        if not line.strip():
            problems.append(Problem(path, number, 'empty line'))
        else:
            lines.append((number, line))
    return lines


def _check_count(path, lines, num_class, num_names, problems):
    if lines and len(lines) not in (num_class, num_names):
        expected = f'{num_class}' if num_class == num_names else f'{num_class} or {num_names}'
        problems.append(Problem(path, lines[-1][0], f'{len(lines)} classes, expected {expected}'))


def check_our_files(text_dir, num_class=None, min_synonyms=1):
    """Strict check of our four files (label_names, synonyms, sentences, parts .txt)."""
    text_dir = Path(text_dir)
    problems = []
    name_lines = read_lines(text_dir / 'label_names.txt', problems)
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
        lines = read_lines(path, problems)
        if lines is None:
            continue
        _check_count(path, lines, num_class, len(names), problems)
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


def check_paper_files(text_dir, num_class, files):
    """Read one set of the paper's own files (`files`: text.label_set.PaperFiles, their names) as
    the paper's code reads them.

    The paper's code splits each line (synonyms on ',', parts on ';') and uses the fields by
    position, without any check, so the trainer must see the same texts to reproduce it. Accepted
    as they are: a synonym repeated within a line (kept: the per-sample synonym draw then picks it
    more often, as upstream's does), part fields written `head: ...` or holding a placeholder such
    as `none` (used verbatim in the prompts, as upstream uses them), identical lines for two
    classes, label names of the three files that differ from the label-name file (a note, not an
    error), a synonyms line with nothing after the label name. Dropped: empty synonym entries (`,,`, a trailing comma) and a
    trailing semicolon of a parts line. Fields past the seventh of a parts line join the foot
    field (upstream's foot prompt takes every field after the hip one). Label names come from
    files.label_names (the NTU set's ntu120_label_map.txt or label_names.txt) if present, else from
    the first field of the synonyms lines (NW-UCLA has no label-name file); the sentence file is optional (training does
    not read it). Still refused, as they would misalign or break the classes: a missing
    synonyms or parts file, an empty file, a blank line inside a file, a line count that is
    neither num_class nor the number of label names, a parts line with fewer than the six part
    fields, a sentences line with neither a comma nor a semicolon after the label name (the NTU
    file uses `name,<paragraph>`, the NW-UCLA one `name;<paragraph>`), a synonyms line without a
    label name."""
    text_dir = Path(text_dir)
    problems = []
    parsed, names_of = {}, {}
    kinds = [('synonyms', files.synonyms, parse_paper_synonyms_line),
             ('parts', files.parts, parse_paper_parts_line)]
    if (text_dir / files.sentences).is_file():
        kinds.append(('sentences', files.sentences, parse_paper_sentence_line))
    for kind, filename, parse in kinds:
        path = text_dir / filename
        lines = read_lines(path, problems)
        if lines is None:
            continue
        values, line_names = [], []
        for number, line in lines:
            try:
                name, value = parse(line)
            except ValueError as e:
                problems.append(Problem(path, number, str(e)))
                name, value = None, None
            values.append(value)
            line_names.append((number, name))
        parsed[kind], names_of[kind] = (path, lines, values), line_names

    label_path = next((text_dir / n for n in files.label_names if (text_dir / n).is_file()), None)
    if label_path is not None:
        name_lines = read_lines(label_path, problems) or []
        names = [line.strip() for _, line in name_lines]
    elif 'synonyms' in parsed:
        label_path = parsed['synonyms'][0]
        names = [name for _, name in names_of['synonyms']]
    else:
        return None, problems
    num_class = len(names) if num_class is None else num_class
    if len(names) < num_class:
        problems.append(Problem(label_path, len(names),
                                f'{len(names)} label names, the dataset has {num_class} classes'))
        return None, problems
    for path, lines, _ in parsed.values():
        _check_count(path, lines, num_class, len(names), problems)
    if problems:
        return None, problems
    notes = []
    for kind, (path, lines, _) in parsed.items():
        differ = [(number, name, names[i]) for i, (number, name) in enumerate(names_of[kind][:num_class])
                  if name is not None and normalize(name) != normalize(names[i])]
        if differ and path != label_path:
            number, name, label = differ[0]
            notes.append(f'{path}:{number}: label name {name!r} differs from {label_path.name} '
                         f'{label!r}' + (f' (and {len(differ) - 1} more lines)' if len(differ) > 1 else '')
                         + "; kept (the paper's code does not compare them; its part prompts "
                           'open with the parts line\'s own name, and so do ours)')
    sentences = parsed['sentences'][2][:num_class] if 'sentences' in parsed else [''] * num_class
    return Descriptions(names=names[:num_class], synonyms=parsed['synonyms'][2][:num_class],
                        sentences=sentences, parts=parsed['parts'][2][:num_class],
                        text_format='paper', notes=tuple(notes),
                        part_names=tuple(name if name is not None else names[i] for i, (_, name)
                                         in enumerate(names_of['parts'][:num_class]))), problems


def main(argv=None):
    from text.label_set import LabelSet  # it reads its folder with this module: imported here, not at the top
    parser = argparse.ArgumentParser(description='Validate the action-description files of a label set.')
    parser.add_argument('where', metavar='label_set',
                        help="'ntu', 'ucla' or a folder holding our four files or the paper's files")
    parser.add_argument('--format', dest='text_format', choices=FORMATS, default=None,
                        help="'ours' (strict) or 'paper' (the paper's files, lenient) (default: by file names)")
    parser.add_argument('--num-class', type=int, default=None,
                        help="check the first N classes (default: all); in a folder holding several of "
                             "the paper's sets, the smallest holding N is read")
    parser.add_argument('--min-synonyms', type=int, default=8,
                        help='quality bar for our shipped files (training itself needs 1; '
                             "not applied to the paper's files)")
    args = parser.parse_args(argv)
    label_set = LabelSet.open(args.where)
    descriptions, problems = label_set.check(args.num_class, args.min_synonyms, args.text_format)
    for problem in problems:
        print(problem)
    if problems:
        return 1
    for note in descriptions.notes:
        print(f'note: {note}')
    kind = " (the paper's files, read leniently)" if descriptions.text_format == 'paper' else ''
    print(f'ok: {label_set.folder}: {len(descriptions)} classes{kind}')
    return 0


if __name__ == '__main__':
    run_cli(main)
