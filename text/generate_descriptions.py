"""Regenerate a dataset's description files with a large language model, as the paper did (GPT-3,
temperature 0.1), through any OpenAI-compatible chat-completions endpoint; or write the
descriptions of a new label set from a plain list of its class names.

    python text/generate_descriptions.py --dataset ntu --model MODEL [--base-url URL] [--api-key KEY]
    python text/generate_descriptions.py --dataset ntu --model MODEL --regenerate   # rewrite all
    python text/generate_descriptions.py --labels my_classes.txt --text-dir my_labels --model MODEL

Base URL, model and key also come from OPENAI_BASE_URL, OPENAI_MODEL, OPENAI_API_KEY. One prompt
per description kind (the constants below). Every answer is cleaned into upstream's line format and
validated (text.descriptions) before it is written; a bad answer is asked again. Resumable: lines
already in a file that validate are kept (matched by their label name), so an interrupted run
continues where it stopped. --regenerate discards the existing lines of the kinds asked for and
writes every line anew; the file is first rewritten after the first usable answer, so a run that
cannot reach the endpoint leaves it untouched, and an interrupted --regenerate run is continued by
running again without --regenerate. label_names.txt of the folder says which classes to describe.

A new label set: --labels names a plain text file, one class name per line in label order (line 1
is label 0); it is checked (file:line naming the problem: an empty line, a repeated name, a ',' or
';' that the description files use as separators, a placeholder), written to the --text-dir
folder as label_names.txt (surrounding and repeated whitespace removed), and the three
description files are generated for it. Running the same command again resumes; a folder whose
label_names.txt names other classes is refused. Every run ends by validating the whole folder as
training reads it (text/descriptions.py), naming file, line and field of any problem.
"""
import argparse
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

if __package__ in (None, ''):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from text.descriptions import (PART_WORDS, _PART_FORMS, Problem, _check_text, check_our_files, normalize,
                               parse_parts_line, parse_sentence_line, parse_synonyms_line, read_lines)
from text.label_set import LabelSet, resolve
from torchlight import io
from torchlight.errors import UserError, run_cli

TEMPERATURE = 0.1
DEFAULT_BASE_URL = 'https://api.openai.com/v1'
SYSTEM_PROMPT = ('You describe human body movement for a skeleton-based action recognition dataset. '
                 'Be concrete and factual, use plain words, and follow the answer format exactly.')
PROMPTS = {
    'synonyms': ('Give {count} different synonyms or short paraphrases of the human action "{name}". '
                 'Answer with one line: the phrases separated by commas, without numbering and '
                 'without repeating "{name}" itself.'),
    'sentences': ('Describe in one paragraph of two to four sentences how a person performs the action '
                  '"{name}": which body parts move, in which direction and in what order. Answer with '
                  'the paragraph only, on a single line.'),
    'parts': ('For the human action "{name}", say concretely what each of these body parts does: '
              'head, hand, arm, hip, leg, foot. Say what sets this action apart from similar ones. '
              'Answer with exactly six lines in that order, each starting with the body part word '
              '(for example "hand grips the cup handle"), without numbering or any other text.'),
}
FILES = {'synonyms': 'synonyms.txt', 'sentences': 'sentences.txt', 'parts': 'parts.txt'}
_BULLET = re.compile(r'^\s*(?:\d+\s*[.)]|[-*\u2022])\s*')


def _clean(text):
    text = re.sub(r'^```\w*|```$', '', text.strip()).strip()
    return text.strip('"\'\u201c\u201d ')


def answer_to_line(kind, name, answer, min_synonyms=8):
    """Upstream-format line for `name` from an LLM answer; ValueError when it is not usable."""
    answer = _clean(answer)
    if kind == 'synonyms':
        phrases, seen = [], {normalize(name)}
        for piece in re.split(r'[,;\n]', answer):
            phrase = _BULLET.sub('', piece).strip().strip('"\'\u201c\u201d').rstrip('.').strip()
            if phrase and normalize(phrase) not in seen:
                seen.add(normalize(phrase))
                phrases.append(phrase)
        line = f'{name},{", ".join(phrases)}'
        parse_synonyms_line(line, min_synonyms)
    elif kind == 'sentences':
        line = f'{name},{" ".join(answer.split())}'
        parse_sentence_line(line)
    elif kind == 'parts':
        pieces = [p for p in answer.splitlines() if p.strip()]
        if len(pieces) == 1:
            pieces = pieces[0].split(';')
        fields = {}
        for piece in pieces:
            piece = _BULLET.sub('', piece).strip().replace(';', ',')
            match = re.match(r'([A-Za-z]+)\s*[:\-\u2013]?\s*(.*)', piece)
            if not match:
                continue
            word, rest = match.groups()
            part = next((p for p in PART_WORDS if word.lower() in _PART_FORMS[p]), None)
            if part and part not in fields:
                fields[part] = f'{word.lower()} {rest.strip().rstrip(".")}'.strip()
        missing = [p for p in PART_WORDS if p not in fields]
        if missing:
            raise ValueError(f'no line for {", ".join(missing)}')
        line = ';'.join([name] + [fields[p] for p in PART_WORDS])
        parse_parts_line(line)
    else:
        raise ValueError(f'unknown description kind {kind!r}')
    return line


class ChatClient:
    """Minimal OpenAI-compatible chat-completions client (urllib only)."""

    def __init__(self, base_url, model, api_key=None, timeout=60.0, retries=3, backoff=2.0):
        self.url = base_url.rstrip('/') + '/chat/completions'
        self.model, self.api_key = model, api_key
        self.timeout, self.retries, self.backoff = timeout, retries, backoff

    def complete(self, messages):
        body = json.dumps({'model': self.model, 'messages': messages, 'temperature': TEMPERATURE}).encode()
        headers = {'Content-Type': 'application/json'}
        if self.api_key:
            headers['Authorization'] = f'Bearer {self.api_key}'
        for attempt in range(self.retries + 1):
            try:
                request = urllib.request.Request(self.url, data=body, headers=headers, method='POST')
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    data = json.load(response)
                return data['choices'][0]['message']['content'] or ''
            except urllib.error.HTTPError as e:
                transient = e.code == 429 or e.code >= 500
                reason = f'HTTP {e.code} {e.reason}'
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                transient, reason = True, str(getattr(e, 'reason', e))
            except (ValueError, KeyError, IndexError, TypeError) as e:
                transient, reason = True, f'malformed response ({e})'
            if not transient or attempt == self.retries:
                raise UserError(f'chat completions at {self.url} failed: {reason}')
            time.sleep(self.backoff * 2 ** attempt)


def read_existing(path, names, kind, min_synonyms, log=print):
    """{class index: line} for the lines of `path` that validate, matched by label name."""
    if not path.is_file():
        return {}
    index = {normalize(n): i for i, n in enumerate(names)}
    kept = {}
    for number, line in enumerate(path.read_text(encoding='utf-8-sig').splitlines(), 1):
        if not line.strip():
            continue
        name = re.split(r'[;,]', line, maxsplit=1)[0]
        i = index.get(normalize(name))
        try:
            if i is None:
                raise ValueError(f'label name {name!r} is not in label_names.txt')
            if i in kept:
                raise ValueError('second line for this class')
            {'synonyms': lambda l: parse_synonyms_line(l, min_synonyms),
             'sentences': parse_sentence_line, 'parts': parse_parts_line}[kind](line)
            if _duplicate(kind, line, kept):
                raise ValueError('same text as another class')
        except ValueError as e:
            log(f'{path}:{number}: regenerating ({e})')
            continue
        kept[i] = line.strip()
    return kept


def write_lines(path, lines):
    """Write {index: line} in class order, atomically."""
    io.save_text(path, ''.join(lines[i] + '\n' for i in sorted(lines)))


def _content_key(kind, line):
    if kind == 'sentences':
        return normalize(parse_sentence_line(line)[1])
    if kind == 'parts':
        return tuple(normalize(f) for f in parse_parts_line(line)[1])
    return None


def _duplicate(kind, line, lines):
    """Two classes must not share a paragraph or a part set: they could not be told apart."""
    key = _content_key(kind, line)
    return key is not None and any(_content_key(kind, other) == key for other in lines.values())


def describe_class(client, kind, name, lines, min_synonyms, attempts, log):
    """One class's validated line, asking again (with the reason) after a bad answer; None if none."""
    prompt = PROMPTS[kind].format(name=name, count=max(min_synonyms + 2, 10))
    messages = [{'role': 'system', 'content': SYSTEM_PROMPT}, {'role': 'user', 'content': prompt}]
    for _ in range(attempts):
        answer = client.complete(messages)
        try:
            line = answer_to_line(kind, name, answer, min_synonyms)
            if _duplicate(kind, line, lines):
                raise ValueError('same text as another class')
            return line
        except ValueError as e:
            log(f'{kind} of {name!r}: unusable answer ({e}); asking again')
            messages += [{'role': 'assistant', 'content': answer},
                         {'role': 'user', 'content': f'That answer is not usable: {e}. Answer again, '
                                                     'following the format exactly.'}]
    return None


def generate(text_dir, client, kinds=tuple(PROMPTS), min_synonyms=8, attempts=3, log=print,
             regenerate=False):
    """Fill the missing or invalid lines of each kind's file, or with `regenerate` write every line
    anew (the existing ones ignored); returns the failed (kind, name) pairs."""
    text_dir = Path(text_dir)
    names = LabelSet(text_dir).names
    failed = []
    for kind in kinds:
        path = text_dir / FILES[kind]
        if regenerate:
            lines = {}
            log(f'{path}: regenerating all {len(names)} classes (existing lines discarded)')
        else:
            lines = read_existing(path, names, kind, min_synonyms, log)
        todo = [i for i in range(len(names)) if i not in lines]
        if not regenerate:
            log(f'{path}: {len(lines)} of {len(names)} classes already valid, {len(todo)} to generate')
        for i in todo:
            line = describe_class(client, kind, names[i], lines, min_synonyms, attempts, log)
            if line is None:
                failed.append((kind, names[i]))
                continue
            lines[i] = line
            write_lines(path, lines)  # after each answer, so an interruption loses at most one
    return failed


# ------------------------------------------------------------------------------ a new label set
SEPARATORS = (',', ';')  # the description files' field separators: a label name must hold neither


def read_label_file(path):
    """(class names, problems) of a plain file of class names, one per line in label order.
    Names are stripped and their inner whitespace collapsed; trailing blank lines are dropped.
    Problems (text.descriptions.Problem, file:line: message) name the line and what is wrong."""
    path = Path(path)
    problems = []
    lines = read_lines(path, problems)  # missing or empty file, blank lines inside it
    problems = [p._replace(message='empty line: each line names one class (line n is label n - 1)')
                if p.message == 'empty line' else p for p in problems]
    if lines is None:
        return [], problems
    names, first_seen = [], {}
    for number, line in lines:
        name = ' '.join(line.split())
        try:
            _check_text(name, 'label name')
            used = [sep for sep in SEPARATORS if sep in name]
            if used:
                raise ValueError(f'label name {name!r} holds {used[0]!r}, which separates the fields of the '
                                 'description files; write the name without it')
        except ValueError as e:
            problems.append(Problem(path, number, str(e)))
            continue
        key = normalize(name)
        if key in first_seen:
            problems.append(Problem(path, number, f'label name {name!r} repeats line {first_seen[key]}'))
            continue
        first_seen[key] = number
        names.append(name)
    return names, problems


def _raise_first(problems, what):
    more = f' (and {len(problems) - 1} more)' if len(problems) > 1 else ''
    raise UserError(f'{what}: {problems[0]}{more}')


def start_label_set(labels, text_dir, log=print):
    """Write text_dir/label_names.txt from the class-name file `labels` (checked first; the folder is
    made if needed). A label_names.txt already there must name the same classes in the same order
    (a resumed run); another one is refused, so no description of other classes is mixed in."""
    names, problems = read_label_file(labels)
    if problems:
        _raise_first(problems, 'class names')
    text_dir = Path(text_dir)
    target = text_dir / 'label_names.txt'
    if target.is_file():
        existing, _ = read_label_file(target)
        if existing == names:
            log(f'{target}: the same {len(names)} classes as {labels}, resuming')
            return text_dir
        i = next((i for i, (a, b) in enumerate(zip(existing, names)) if a != b), min(len(existing), len(names)))
        said = f'{existing[i]!r}' if i < len(existing) else 'nothing (the file ends)'
        wanted = f'{names[i]!r}' if i < len(names) else 'nothing (the file ends)'
        raise UserError(f'{target}:{i + 1} says {said}, but {labels}:{i + 1} says {wanted}: that folder '
                        'describes other classes; pick a new --text-dir, or delete its label_names.txt to start over')
    if text_dir.exists() and not text_dir.is_dir():
        raise UserError(f'--text-dir {text_dir}: not a folder')
    io.save_text(target, ''.join(name + '\n' for name in names))
    log(f'{target}: {len(names)} classes from {labels}')
    return text_dir


def validate(folder, min_synonyms, log=print):
    """The folder checked as training reads it; UserError naming file:line and field of the first
    problem (all of them logged)."""
    _, problems = check_our_files(folder, min_synonyms=min_synonyms)
    for problem in problems:
        log(str(problem))
    if problems:
        _raise_first(problems, 'description file')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument('--dataset', help="a label set shipped in text/ (default: ntu)")
    where.add_argument('--text-dir', help='the folder of a label set, holding label_names.txt (with --labels: '
                                          'the folder to write the new label set into)')
    parser.add_argument('--labels', type=Path,
                        help='a new label set: a plain file of class names, one per line in label order; '
                             'written to --text-dir as label_names.txt, then described')
    parser.add_argument('--kinds', nargs='+', choices=list(PROMPTS), default=list(PROMPTS))
    parser.add_argument('--base-url', default=os.environ.get('OPENAI_BASE_URL') or DEFAULT_BASE_URL)
    parser.add_argument('--model', default=os.environ.get('OPENAI_MODEL'))
    parser.add_argument('--api-key', default=os.environ.get('OPENAI_API_KEY'))
    parser.add_argument('--min-synonyms', type=int, default=8)
    parser.add_argument('--regenerate', action='store_true',
                        help='rewrite every line of the --kinds files, not only the missing or invalid ones')
    parser.add_argument('--attempts', type=int, default=3, help='answers asked per class before giving up')
    parser.add_argument('--retries', type=int, default=3, help='retries of a failed HTTP request')
    parser.add_argument('--timeout', type=float, default=60.0, help='seconds per request')
    parser.add_argument('--backoff', type=float, default=2.0, help='first retry delay in seconds (doubles)')
    args = parser.parse_args(argv)
    if args.labels is not None:
        if not args.text_dir:
            raise UserError('--labels needs --text-dir: the folder to write the new label set into')
        _, problems = read_label_file(args.labels)  # checked before anything needs an endpoint
        if problems:
            _raise_first(problems, 'class names')
    if not args.model:
        raise UserError('no model: pass --model NAME or set OPENAI_MODEL')
    client = ChatClient(args.base_url, args.model, args.api_key, args.timeout, args.retries, args.backoff)
    if args.labels is not None:
        start_label_set(args.labels, args.text_dir)
    folder = resolve(args.text_dir or args.dataset or 'ntu')
    failed = generate(folder, client, args.kinds, args.min_synonyms, args.attempts,
                      regenerate=args.regenerate)
    if failed:
        shown = ', '.join(f'{kind} of {name!r}' for kind, name in failed[:5])
        again = ' without --regenerate' if args.regenerate else ''
        raise UserError(f'{len(failed)} descriptions not generated ({shown}); run again{again} to retry them')
    validate(folder, args.min_synonyms)
    print(f'ok: {folder}')
    return 0


if __name__ == '__main__':
    run_cli(main)
