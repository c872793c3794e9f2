"""The lr rule pinned to upstream's values, and its per-group application."""
import pytest
import torch

from torchlight.schedule import apply_learning_rate, learning_rate


def test_upstream_ntu_schedule():
    # NTU configs: base_lr 0.1, warm-up 5, step [90, 100], decay 0.1
    lr = [learning_rate(e, 0.1, [90, 100], 0.1, 5) for e in range(110)]
    assert lr[:5] == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.1])
    assert lr[5] == lr[89] == pytest.approx(0.1)
    assert lr[90] == lr[99] == pytest.approx(0.01)
    assert lr[100] == lr[109] == pytest.approx(0.001)


def test_no_warm_up_and_boundaries():
    assert learning_rate(0, 0.001, [20, 40, 60]) == pytest.approx(0.001)
    assert learning_rate(19, 0.001, [20, 40, 60]) == pytest.approx(0.001)
    assert learning_rate(20, 0.001, [20, 40, 60]) == pytest.approx(1e-4)
    assert learning_rate(60, 0.001, [20, 40, 60]) == pytest.approx(1e-6)
    assert learning_rate(3, 0.2, [], 0.1, 0) == pytest.approx(0.2)


def test_each_group_keeps_its_own_scale():
    skeleton, text = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    opt = torch.optim.SGD([{'params': skeleton.parameters(), 'lr_scale': 1.0},
                           {'params': text.parameters(), 'lr_scale': 0.1}], lr=0.1, momentum=0.9)
    for epoch in range(12):  # the text group's ratio survives every epoch (upstream lost it after one)
        lr = apply_learning_rate(opt, learning_rate(epoch, 0.1, [10], 0.1, 5))
        assert opt.param_groups[0]['lr'] == pytest.approx(lr)
        assert opt.param_groups[1]['lr'] == pytest.approx(lr * 0.1)
