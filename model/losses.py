"""GAP's training loss, as the upstream code computes it: cross-entropy plus a symmetric skeleton-text KL term
per text set, against a soft target where every same-label pair in the batch is a positive."""
import torch
import torch.nn.functional as F


def same_label_matrix(labels):
    """G[i, j] = 1.0 where samples i and j share a label."""
    return (labels[:, None] == labels[None, :]).float()


def soft_target_kl(logits, same_label):
    """batch_size * KLDiv(log_softmax(logits), softmax(10 * G)), mean over all elements: upstream's
    KLLoss, whose 'mean' divides by N*N, hence the batch-size factor. Written as sum/numel because
    torch announces that reduction='mean' will change meaning."""
    target = F.softmax(10 * same_label.to(logits.dtype), dim=1)
    kl = F.kl_div(F.log_softmax(logits, dim=1), target, reduction='none')
    return logits.shape[0] * kl.sum() / kl.numel()


def text_loss(labels, global_feat, part_feats, text_targets, logit_scale):
    """GAP's text term: the mean over the five text sets of the symmetric skeleton-text KL against
    the same-label soft target. Every sample is compared with every other of the batch given (under
    DDP: the global batch, gathered). Computed in fp32 so autocast'ed features keep the KL's precision."""
    same_label = same_label_matrix(labels)
    text_losses = []
    for s, (feat, emb) in enumerate(zip([global_feat, *part_feats], text_targets)):
        f = F.normalize(feat.float(), dim=-1)
        e = F.normalize(emb.float(), dim=-1)
        scale = logit_scale[:, s].mean().float()
        logits_img = scale * f @ e.t()
        logits_txt = scale * e @ f.t()
        text_losses.append((soft_target_kl(logits_img, same_label) + soft_target_kl(logits_txt, same_label)) / 2)
    return torch.stack(text_losses).mean()


def gap_loss(logits, labels, global_feat, part_feats, text_targets, logit_scale, alpha):
    """(total, ce, text) for one batch.

    logits (N, C); labels (N,); global_feat (N, D); part_feats: head, hand, hip, foot (N, D_s);
    text_targets: 5 tensors (N, D_s) (global, head, hand, hip, foot); logit_scale (1, 5), used as
    the raw parameter (upstream does not exponentiate it); alpha weights the mean text loss.
    """
    text = text_loss(labels, global_feat, part_feats, text_targets, logit_scale)
    ce = F.cross_entropy(logits.float(), labels)
    return ce + alpha * text, ce, text
