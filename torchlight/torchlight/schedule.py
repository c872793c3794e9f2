"""The learning-rate rule (warm-up, then step decay), applied per parameter group with its scale."""


def learning_rate(epoch, base_lr, step=(), lr_decay_rate=0.1, warm_up_epoch=0):
    """Upstream's per-epoch lr (epoch counted from 0).

    Linear warm-up base_lr * (epoch + 1) / warm_up_epoch for the first warm_up_epoch epochs, then
    base_lr * lr_decay_rate ** (number of step entries <= epoch).
    """
    if epoch < warm_up_epoch:
        return base_lr * (epoch + 1) / warm_up_epoch
    return base_lr * lr_decay_rate ** sum(epoch >= s for s in step)


def apply_learning_rate(optimizer, lr):
    """Set each group's lr to lr x its own 'lr_scale' (default 1).

    Upstream wrote the same lr into every group, which silently reset the text encoder's
    base_lr x te_lr_ratio after the first epoch; the scale kept in the group survives the schedule.
    """
    for group in optimizer.param_groups:
        group['lr'] = lr * group.get('lr_scale', 1.0)
    return lr
