"""A label set: the folder that names a dataset's classes and describes them, and the one reader of
such a folder. A run names its label set once (`text_dir`, `--text-dir`): 'ntu' and 'ucla' are
text/ntu and text/ucla, anything else is a folder.

Our format (text/descriptions.py checks it strictly), one line per class in label order:
label_names.txt (the class names; their count is the number of classes), synonyms.txt,
sentences.txt, parts.txt. A run of N classes uses the first N (NTU60's are NTU120's first 60).

The paper's own files are found by their names and read as the paper's code reads them:
<prefix>synonym_openai_t01.txt, <prefix>pasta_openai_t01.txt and, optional,
<prefix>sentence_openai_t01.txt. The unprefixed set (the paper's NTU files) takes its class names
from ntu120_label_map.txt or label_names.txt when there is one, any other set (ucla_: NW-UCLA) from
the first field of its synonyms lines. Upstream's text/ folder holds both sets side by side: a
run reads the smallest set holding its class count (NW-UCLA's 10 classes for a 10-class run,
NTU's 120 for NTU60 and NTU120 runs).
"""
import hashlib
import warnings
from pathlib import Path
from typing import NamedTuple

from text import descriptions as formats
from torchlight.errors import UserError

TEXT_DIR = Path(__file__).resolve().parent


def shipped():
    """Names of the label sets that ship in text/."""
    return sorted(p.name for p in TEXT_DIR.iterdir() if (p / 'label_names.txt').is_file())


def resolve(name_or_folder):
    """The folder of a label set: text/<name> for a name shipped there ('ntu', 'ucla'), else the
    folder given."""
    text = str(name_or_folder)
    if text in shipped():
        return TEXT_DIR / text
    folder = Path(name_or_folder)
    if not folder.is_dir():
        raise UserError(f'label set {text!r}: no such folder (give one of {", ".join(shipped())} '
                        'or a folder of description files)')
    return folder


class PaperFiles(NamedTuple):
    """The paper's files of one label set, by their prefix ('' NTU, 'ucla_' NW-UCLA upstream)."""
    prefix: str

    @property
    def synonyms(self):
        return f'{self.prefix}synonym_openai_t01.txt'

    @property
    def sentences(self):
        return f'{self.prefix}sentence_openai_t01.txt'

    @property
    def parts(self):
        return f'{self.prefix}pasta_openai_t01.txt'

    @property
    def label_names(self):
        """Candidates for the class names, first found wins (only the NTU files have one)."""
        return () if self.prefix else ('ntu120_label_map.txt', 'label_names.txt')


_PAPER_SUFFIXES = ('synonym_openai_t01.txt', 'pasta_openai_t01.txt')


def paper_sets(folder):
    """The paper's file sets in `folder`, found by their synonyms or parts file."""
    return [PaperFiles(prefix) for prefix in sorted({path.name[:-len(suffix)] for suffix in _PAPER_SUFFIXES
                                                     for path in Path(folder).glob('*' + suffix)})]


class LabelSet:
    """A label set's folder: its class names and its validated descriptions, in label order."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.paper = paper_sets(self.folder)
        # any of our description files makes the folder ours (a paper NTU folder may hold a
        # label_names.txt: its names, not ours)
        self.text_format = ('paper' if self.paper and not any((self.folder / name).is_file()
                                                              for name in formats.FILES[1:]) else 'ours')

    @classmethod
    def open(cls, name_or_folder):
        return cls(resolve(name_or_folder))

    @property
    def names(self):
        """Every class name."""
        return self._names(None)

    def __len__(self):
        return len(self.names)

    def class_names(self, num_class=None):
        """The first `num_class` class names (all when None)."""
        names = self._names(num_class)
        if num_class is not None and len(names) < num_class:
            raise UserError(f'label set {self.folder}: {len(names)} class names, the run has {num_class} classes')
        return names[:num_class]

    def descriptions(self, num_class=None):
        """Descriptions of the first `num_class` classes; UserError naming file:line on any problem,
        a warning for each harmless oddity of the paper's files."""
        descriptions, problems = self.check(num_class)
        if problems:
            command = f'python text/descriptions.py {self.folder}' + (
                f' --num-class {num_class}' if num_class is not None else '')
            more = f' (and {len(problems) - 1} more; list them with `{command}`)' if len(problems) > 1 else ''
            raise UserError(f'description file: {problems[0]}{more}')
        for note in descriptions.notes:
            warnings.warn(f'description file: {note}')
        return descriptions

    def check(self, num_class=None, min_synonyms=1, text_format=None):
        """(Descriptions of the first num_class classes or None, every problem found). Our files are
        checked strictly (min_synonyms per class), the paper's leniently; text_format 'ours' or
        'paper' reads the folder as that format whatever it holds."""
        if (text_format or self.text_format) == 'ours':
            return formats.check_our_files(self.folder, num_class, min_synonyms)
        if not self.paper:
            return None, [formats.Problem(self.folder, 0, "holds none of the paper's files (*"
                                          + ', *'.join(_PAPER_SUFFIXES) + ')')]
        return formats.check_paper_files(self.folder, num_class, self._paper_files(num_class))

    def file_hashes(self):
        """sha256 of every .txt file in the folder (what a rerun must find unchanged)."""
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(self.folder.glob('*.txt'))}

    def _names(self, num_class):
        if self.text_format == 'ours':
            problems = []
            lines = formats.read_lines(self.folder / 'label_names.txt', problems)
            if problems:
                raise UserError(f'description file: {problems[0]}')
            return [line.strip() for _, line in lines]
        return self._paper_names(self._paper_files(num_class))

    def _paper_names(self, files):
        descriptions, problems = formats.check_paper_files(self.folder, None, files)
        if problems:
            raise UserError(f'description file: {problems[0]}')
        return descriptions.names

    def _paper_files(self, num_class):
        """The paper's set a run of `num_class` classes reads: the only one, else the smallest
        holding num_class classes (the largest when none does: its check names the shortfall)."""
        if len(self.paper) == 1:
            return self.paper[0]
        sizes = {files: len(self._paper_names(files)) for files in self.paper}
        listing = ', '.join(f'{files.synonyms}: {n} classes' for files, n in sizes.items())
        fitting = [files for files in self.paper if num_class is not None and sizes[files] >= num_class]
        smallest = [files for files in fitting if sizes[files] == min(sizes[f] for f in fitting)]
        if num_class is None or len(smallest) > 1:
            raise UserError(f"label set {self.folder} holds the paper's files of {len(sizes)} label sets "
                            f"({listing}): the run's class count picks one (--num-class)")
        return smallest[0] if smallest else max(self.paper, key=sizes.get)
