"""torchlight.checkpoint.load_weights: strict by name, `module.` prefixes, one-line errors."""
import collections

import pytest
import torch
import torch.nn as nn

from torchlight.checkpoint import load_weights, read_state_dict
from torchlight.errors import UserError


def small_net(num_class=4, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(collections.OrderedDict(
        conv=nn.Conv2d(3, 8, 1), bn=nn.BatchNorm2d(8), flat=nn.Flatten(), fc=nn.Linear(8, num_class)))


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def quiet(*_):
    pass


def test_round_trip_through_a_file(tmp_path):
    source, target = small_net(seed=0), small_net(seed=1)
    path = tmp_path / 'w.pt'
    torch.save(source.state_dict(), path)
    report = load_weights(target, path, log=quiet)
    assert same_weights(source, target)
    assert report['loaded'] == sorted(source.state_dict())
    assert report['missing'] == report['unexpected'] == report['dropped'] == []


def test_accepts_path_string_and_wrapped_dicts(tmp_path):
    source = small_net(seed=0)
    for wrapper in ('state_dict', 'model'):
        path = tmp_path / f'{wrapper}.pt'
        torch.save({wrapper: source.state_dict(), 'epoch': 3}, path)
        target = small_net(seed=1)
        load_weights(target, str(path), log=quiet)
        assert same_weights(source, target)
    target = small_net(seed=1)
    load_weights(target, {'state_dict': source.state_dict()}, log=quiet)
    assert same_weights(source, target)


def test_dataparallel_prefix_round_trip_both_ways(tmp_path):
    source = small_net(seed=0)
    path = tmp_path / 'dp.pt'
    torch.save(nn.DataParallel(source).state_dict(), path)   # keys 'module.conv.weight', ...
    assert all(k.startswith('module.') for k in torch.load(path, weights_only=True))
    target = small_net(seed=1)
    load_weights(target, path, log=quiet)
    assert same_weights(source, target)
    wrapped = nn.DataParallel(small_net(seed=2))             # and into a wrapped model
    load_weights(wrapped, source.state_dict(), log=quiet)
    assert same_weights(source, wrapped.module)


def test_missing_and_unexpected_keys_are_named_and_nothing_is_loaded():
    source, target = small_net(seed=0), small_net(seed=1)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    state = source.state_dict()
    del state['fc.bias'], state['bn.running_mean']
    state['head.weight'] = torch.zeros(2)
    with pytest.raises(UserError) as info:
        load_weights(target, state, log=quiet)
    message = str(info.value)
    assert '\n' not in message
    assert '2 missing key(s): bn.running_mean, fc.bias' in message
    assert '1 unexpected key(s): head.weight' in message
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())


def test_long_key_lists_are_cut_with_a_count():
    state = {f'extra.{i}': torch.zeros(1) for i in range(12)}
    state.update(small_net().state_dict())
    with pytest.raises(UserError, match=r'12 unexpected key\(s\): extra\.0, .*\(7 more\)'):
        load_weights(small_net(), state, log=quiet)


def test_shape_mismatch_is_named_even_when_not_strict():
    state = small_net(num_class=10).state_dict()
    with pytest.raises(UserError, match=r'2 shape mismatch\(es\).*fc\.bias \(10,\) vs \(4,\)'):
        load_weights(small_net(num_class=4), state, strict=False, log=quiet)


def test_ignore_weights_drops_and_logs_and_keeps_the_models_own():
    source, target = small_net(num_class=10, seed=0), small_net(num_class=4, seed=1)
    fc_before = target.fc.weight.detach().clone()
    logged = []
    report = load_weights(target, source.state_dict(), ignore_weights=['fc'], log=logged.append)
    assert report['dropped'] == ['fc.weight', 'fc.bias']
    assert any('fc.weight' in line for line in logged) and any('fc.bias' in line for line in logged)
    assert torch.equal(target.fc.weight, fc_before)
    assert torch.equal(target.conv.weight, source.conv.weight)


def test_not_strict_loads_the_rest_and_says_what_it_left_out():
    source, target = small_net(seed=0), small_net(seed=1)
    state = source.state_dict()
    del state['fc.weight']
    logged = []
    report = load_weights(target, state, strict=False, log=logged.append)
    assert report['missing'] == ['fc.weight']
    assert any('partially' in line and 'fc.weight' in line for line in logged)
    assert torch.equal(target.conv.weight, source.conv.weight)


def test_missing_file_is_a_one_line_error(tmp_path):
    with pytest.raises(UserError, match=r'^checkpoint not found: .*nope\.pt$'):
        load_weights(small_net(), tmp_path / 'nope.pt')


@pytest.mark.parametrize('content', ['text', 'pickle', 'not-a-state-dict'])
def test_non_checkpoint_files_are_one_line_errors(tmp_path, content):
    path = tmp_path / 'bad.pt'
    if content == 'text':
        path.write_text('epoch,acc\n1,0.5\n')
    elif content == 'pickle':   # a whole pickled module: refused by the weights-only unpickler
        torch.save(small_net(), path)
    else:
        torch.save({'epoch': 3, 'acc': [0.5]}, path)
    with pytest.raises(UserError) as info:
        read_state_dict(path)
    assert str(path) in str(info.value) and '\n' not in str(info.value)


def test_resume_settings_of_a_run_from_before_criterion_args_compare_in_todays_shape():
    from torchlight.checkpoint import check_resume_settings
    old = {'batch_size': 16, 'loss_alpha': None, 'te_lr_ratio': 0.0, 'text_dir': None, 'text_encoder_weights': None,
           'text_embeddings': None, 'num_epoch': 30}
    now = {'batch_size': 16, 'criterion_args': {'text_dir': 'ucla', 'loss_alpha': 1.0}, 'num_epoch': 30}
    check_resume_settings(old, now, 3)  # unset then: the entry script's values, as today
    with pytest.raises(UserError, match=r"criterion_args: run \{'text_dir': 'ucla', 'loss_alpha': 0.5\}"):
        check_resume_settings(dict(old, loss_alpha=0.5), now, 3)
