"""torchlight.export: a finished run's inference-only checkpoint, which tests like the original."""
import json

import pytest
import torch

from test_processor import TinyModel, run
from torchlight.criterion import CrossEntropy
from torchlight.errors import UserError
from torchlight.export import FORMAT, export


class CountedModel(TinyModel):
    """TinyModel that says its class count, as the project's models do."""
    num_class = 3


def named_criterion(model, args, seed, device, log, training):
    """Cross-entropy with class names, as text.criterion.build gives a run with a label set."""
    return CrossEntropy(lambda n: [f'action {i}' for i in range(n)])


def test_export_holds_weights_and_what_using_them_needs(tmp_path):
    work = tmp_path / 'w'
    trained = run(work, '--criterion', 'test_export.named_criterion', '--save-score', 'True',
                  model='test_export.CountedModel')
    entry = export(str(work), str(tmp_path / 'model.pt'))
    loaded = torch.load(tmp_path / 'model.pt', weights_only=True)
    assert loaded['format'] == FORMAT and loaded['class_names'] == ['action 0', 'action 1', 'action 2']
    assert loaded['model_class'] == 'test_export.CountedModel' and loaded['feeder'] == 'test_processor.TinyFeeder'
    assert set(loaded) >= {'model', 'model_args', 'test_feeder_args', 'criterion_args', 'config', 'origin'}
    assert 'optimizer' not in loaded and loaded['origin']['test_top1'] == trained.best_acc
    best = torch.load(work / entry['origin']['checkpoint'], weights_only=True)
    assert all(torch.equal(loaded['model'][k], best[k]) for k in best)
    # --weights reads it like the checkpoint it came from: the same test accuracy
    tested = run(tmp_path / 't', '--criterion', 'test_export.named_criterion', '--weights', str(tmp_path / 'model.pt'),
                 '--save-score', 'True', model='test_export.CountedModel', phase='test')
    record = json.loads((tmp_path / 't' / 'epoch1_test_score.json').read_text())
    assert record['accuracy'] == trained.best_acc and tested.arg.phase == 'test'


def test_export_of_an_unfinished_run_is_one_line(tmp_path):
    (tmp_path / 'config.yaml').write_text('model: test_processor.TinyModel\n')
    with pytest.raises(UserError, match='no readable epoch1_test_score.json'):
        export(str(tmp_path), str(tmp_path / 'out.pt'))
    assert not (tmp_path / 'out.pt').exists()
