"""The description generator against a fake chat-completions server on loopback."""
import json
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import REPO
from text import generate_descriptions as gen
from text.descriptions import check_our_files
from text.label_set import LabelSet
from torchlight.errors import UserError

NAMES = ['drink water', 'kick something', 'clapping']


def fake_answer(prompt):
    name = re.search(r'"([^"]+)"', prompt).group(1)
    if 'synonyms' in prompt:
        return '1. ' + ', '.join(f'{name} variant {k}' for k in range(10)) + f', {name}'
    if 'paragraph' in prompt:
        return f'"A person performs {name} by moving the arms and the body in a clear pattern."'
    return '\n'.join([f'- Head: looks toward the {name} target.', f'hand acts for {name}',
                      f'arm moves to {name}', f'hip steadies during {name}', f'legs support {name}',
                      f'feet stay planted for {name}'])


class Server:
    """Chat-completions stand-in; `script` maps a prompt substring to answers served once each."""

    def __init__(self):
        self.requests, self.script, self.fail_next = [], {}, 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
                server.requests.append((self.path, dict(self.headers), body))
                if server.fail_next:
                    server.fail_next -= 1
                    self.send_error(503, 'busy')
                    return
                prompt = body['messages'][1]['content']
                scripted = [k for k, v in server.script.items() if k in prompt and v]
                content = server.script[scripted[0]].pop(0) if scripted else fake_answer(prompt)
                data = json.dumps({'choices': [{'message': {'role': 'assistant', 'content': content}}]})
                self.send_response(200)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data.encode())

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}/v1'
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


@pytest.fixture
def folder(tmp_path):
    (tmp_path / 'label_names.txt').write_text('\n'.join(NAMES) + '\n')
    return tmp_path


def client(server):
    return gen.ChatClient(server.url, 'fake-model', api_key='k', timeout=5, retries=2, backoff=0)


def test_generates_valid_files_with_the_papers_temperature(server, folder):
    assert gen.generate(folder, client(server), log=lambda *_: None) == []
    descriptions, problems = check_our_files(folder, min_synonyms=8)
    assert problems == [] and descriptions.names == NAMES
    assert descriptions.parts[0][0] == 'head looks toward the drink water target'
    assert descriptions.parts[2][5] == 'feet stay planted for clapping'
    assert descriptions.synonyms[1][:2] == ['kick something', 'kick something variant 0']
    assert len(server.requests) == 3 * 3
    path, headers, body = server.requests[0]
    assert path == '/v1/chat/completions' and headers['Authorization'] == 'Bearer k'
    assert body['temperature'] == 0.1 and body['model'] == 'fake-model'


def test_resume_asks_only_for_missing_or_invalid_lines(server, folder):
    gen.generate(folder, client(server), log=lambda *_: None)
    parts = (folder / 'parts.txt').read_text().splitlines()
    (folder / 'parts.txt').write_text('\n'.join([parts[0], parts[2]]) + '\n')  # class 2 lost
    sentences = (folder / 'sentences.txt').read_text().splitlines()
    sentences[2] = 'clapping,TODO'
    (folder / 'sentences.txt').write_text('\n'.join(sentences) + '\n')
    server.requests.clear()
    assert gen.generate(folder, client(server), log=lambda *_: None) == []
    asked = [body['messages'][1]['content'] for _, _, body in server.requests]
    assert len(asked) == 2
    assert '"kick something"' in asked[0] + asked[1] and '"clapping"' in asked[0] + asked[1]
    assert check_our_files(folder, min_synonyms=8)[1] == []
    assert (folder / 'parts.txt').read_text().splitlines()[0] == parts[0]


def test_regenerate_rewrites_every_line_of_the_kinds_asked(server, folder, capsys):
    gen.generate(folder, client(server), log=lambda *_: None)
    custom = 'drink water;head bows;hand holds a glass;arm raises it;hip still;leg still;foot flat'
    parts = (folder / 'parts.txt').read_text().splitlines()
    (folder / 'parts.txt').write_text('\n'.join([custom] + parts[1:]) + '\n')  # valid, so kept...
    synonyms = (folder / 'synonyms.txt').read_text()
    server.requests.clear()
    assert gen.generate(folder, client(server), kinds=['parts'], log=lambda *_: None) == []
    assert server.requests == [] and (folder / 'parts.txt').read_text().splitlines()[0] == custom
    assert gen.generate(folder, client(server), kinds=['parts'], log=lambda *_: None, regenerate=True) == []
    assert len(server.requests) == len(NAMES)  # ...unless every line is regenerated
    assert (folder / 'parts.txt').read_text().splitlines() == parts
    assert (folder / 'synonyms.txt').read_text() == synonyms
    assert check_our_files(folder, min_synonyms=8)[1] == []

    server.requests.clear()
    assert gen.main(['--text-dir', str(folder), '--model', 'm', '--base-url', server.url,
                     '--kinds', 'sentences', '--regenerate']) == 0
    assert len(server.requests) == len(NAMES) and 'regenerating all 3 classes' in capsys.readouterr().out
    sentences = (folder / 'sentences.txt').read_text()
    unreachable = gen.ChatClient('http://127.0.0.1:9/v1', 'm', timeout=2, retries=0)
    with pytest.raises(UserError, match='failed'):
        gen.generate(folder, unreachable, kinds=['sentences'], log=lambda *_: None, regenerate=True)
    assert (folder / 'sentences.txt').read_text() == sentences  # no answer, so nothing rewritten


def test_bad_answer_is_asked_again_and_http_errors_are_retried(server, folder):
    server.script['"drink water"'] = ['I cannot help with that.']
    server.fail_next = 1
    assert gen.generate(folder, client(server), kinds=['parts'], log=lambda *_: None) == []
    assert len(server.requests) == 1 + 1 + 3  # the 503, the bad answer, then three good ones
    follow_up = server.requests[2][2]['messages']
    assert follow_up[-1]['role'] == 'user' and 'not usable' in follow_up[-1]['content']


def test_gives_up_after_attempts_and_reports(server, folder):
    server.script['"clapping"'] = ['clapping, applause'] * 3  # too few synonyms, every time
    failed = gen.generate(folder, client(server), kinds=['synonyms'], log=lambda *_: None)
    assert failed == [('synonyms', 'clapping')]
    assert len((folder / 'synonyms.txt').read_text().splitlines()) == 2


def test_answer_cleaning():
    line = gen.answer_to_line('parts', 'wave', '1. Head: looks up; hand - waves.;arm lifts;hip still;leg still;foot flat')
    assert line == 'wave;head looks up;hand waves;arm lifts;hip still;leg still;foot flat'
    with pytest.raises(ValueError, match='no line for foot'):
        gen.answer_to_line('parts', 'wave', 'head a\nhand b\narm c\nhip d\nleg e')


def test_cli_errors_are_one_line(folder, monkeypatch):
    monkeypatch.delenv('OPENAI_MODEL', raising=False)
    with pytest.raises(UserError, match='--model'):
        gen.main(['--text-dir', str(folder)])
    unreachable = gen.ChatClient('http://127.0.0.1:9/v1', 'm', timeout=2, retries=0)
    with pytest.raises(UserError, match='chat completions at http://127.0.0.1:9/v1/chat/completions failed'):
        gen.generate(folder, unreachable, log=lambda *_: None)


def test_script_runs_from_the_shell(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / 'text' / 'generate_descriptions.py'),
                             '--text-dir', str(tmp_path), '--model', 'm'],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.startswith('error: ') and 'label_names.txt' in result.stderr


# ------------------------------------------------------------------------------ a new label set
def test_a_new_label_set_from_a_plain_list_of_class_names(server, tmp_path, capsys):
    labels = tmp_path / 'my_classes.txt'
    labels.write_bytes('\ufeff  drink   water \r\nkick something\r\nclapping\r\n\r\n'.encode())  # BOM, CRLF
    out = tmp_path / 'new' / 'my_labels'  # made, parents too
    assert gen.main(['--labels', str(labels), '--text-dir', str(out), '--model', 'm',
                     '--base-url', server.url, '--min-synonyms', '8']) == 0
    assert (out / 'label_names.txt').read_text() == 'drink water\nkick something\nclapping\n'
    descriptions, problems = check_our_files(out, min_synonyms=8)
    assert problems == [] and descriptions.names == NAMES
    assert len(server.requests) == 3 * 3
    assert LabelSet.open(out).names == NAMES and f'ok: {out}' in capsys.readouterr().out

    # the same command again resumes: nothing to ask
    server.requests.clear()
    assert gen.main(['--labels', str(labels), '--text-dir', str(out), '--model', 'm', '--base-url', server.url]) == 0
    assert server.requests == []


@pytest.mark.parametrize('text,line,problem', [
    ('walk\n\nrun\n', 2, 'empty line: each line names one class'),
    ('walk\nsit, then stand\n', 2, "label name 'sit, then stand' holds ','"),
    ('walk\nrun;jog\n', 2, "label name 'run;jog' holds ';'"),
    ('walk\nrun\n  Walk.\n', 3, "label name 'Walk.' repeats line 1"),
    ('walk\nTODO\n', 2, "placeholder label name: 'TODO'"),
    ('\n\n', 0, 'empty file'),
])
def test_problems_of_the_class_name_file_name_file_and_line(server, tmp_path, text, line, problem):
    labels = tmp_path / 'classes.txt'
    labels.write_text(text)
    out = tmp_path / 'out'
    with pytest.raises(UserError, match=rf'^class names: {re.escape(str(labels))}:{line}: {re.escape(problem)}'):
        gen.main(['--labels', str(labels), '--text-dir', str(out), '--model', 'm', '--base-url', server.url])
    assert not out.exists() and server.requests == []  # checked before anything is written or asked


def test_class_name_file_problems_come_before_the_endpoint_settings(tmp_path, monkeypatch):
    monkeypatch.delenv('OPENAI_MODEL', raising=False)
    missing = tmp_path / 'nope.txt'
    with pytest.raises(UserError, match=rf'^class names: {re.escape(str(missing))}:0: file not found'):
        gen.main(['--labels', str(missing), '--text-dir', str(tmp_path / 'out')])
    with pytest.raises(UserError, match='^--labels needs --text-dir'):
        gen.main(['--labels', str(missing), '--model', 'm'])


def test_a_folder_describing_other_classes_is_refused(server, tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'label_names.txt').write_text('drink water\nkick something\n')
    labels = tmp_path / 'classes.txt'
    labels.write_text('drink water\nkick\nclapping\n')
    with pytest.raises(UserError, match=rf"^{re.escape(str(out / 'label_names.txt'))}:2 says 'kick something', "
                                        rf"but {re.escape(str(labels))}:2 says 'kick': that folder describes other"):
        gen.main(['--labels', str(labels), '--text-dir', str(out), '--model', 'm', '--base-url', server.url])
    labels.write_text('drink water\nkick something\nclapping\n')  # one class more: also another set
    with pytest.raises(UserError, match=r":3 says nothing \(the file ends\), but .*:3 says 'clapping'"):
        gen.main(['--labels', str(labels), '--text-dir', str(out), '--model', 'm', '--base-url', server.url])
    assert (out / 'label_names.txt').read_text() == 'drink water\nkick something\n' and server.requests == []


def test_the_run_ends_validating_the_folder_naming_file_line_and_field(server, folder, monkeypatch):
    gen.generate(folder, client(server), log=lambda *_: None)
    parts = (folder / 'parts.txt').read_text().splitlines()
    parts[1] = parts[1].replace(';hand ', ';fingers ')  # as if edited by hand after generation
    (folder / 'parts.txt').write_text('\n'.join(parts) + '\n')
    monkeypatch.setattr(gen, 'generate', lambda *a, **k: [])  # generation itself would repair it
    with pytest.raises(UserError, match=rf"^description file: {re.escape(str(folder / 'parts.txt'))}:2: hand field "
                                        r"must start with 'hand'"):
        gen.main(['--text-dir', str(folder), '--model', 'm', '--base-url', server.url])


def test_a_bad_class_name_file_from_the_shell_is_one_line(tmp_path):
    labels = tmp_path / 'classes.txt'
    labels.write_text('walk\nwalk\n')
    result = subprocess.run([sys.executable, str(REPO / 'text' / 'generate_descriptions.py'),
                             '--labels', str(labels), '--text-dir', str(tmp_path / 'out'), '--model', 'm'],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == f"error: class names: {labels}:2: label name 'walk' repeats line 1\n"
