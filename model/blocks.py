"""CTR-GCN building blocks; attribute names mirror upstream so checkpoints load by name."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_init(module):
    """Kaiming-normal (fan_out) weight, zero bias: upstream's init for convs and text heads."""
    nn.init.kaiming_normal_(module.weight, mode='fan_out')
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def bn_init(bn, scale):
    nn.init.constant_(bn.weight, scale)
    nn.init.zeros_(bn.bias)


def tcn_weights_init(module):
    """Upstream's init inside the multi-scale temporal conv: Kaiming convs, BN weight ~ N(1, 0.02)."""
    if isinstance(module, nn.Conv2d):
        conv_init(module)
    elif isinstance(module, nn.BatchNorm2d):
        module.weight.data.normal_(1.0, 0.02)
        module.bias.data.zero_()


class ConvBN(nn.Module):
    """Temporal (k, 1) conv + BN; upstream's TemporalConv / unit_tcn (names `conv`, `bn`)."""

    def __init__(self, cin, cout, kernel_size, stride=1, dilation=1):
        super().__init__()
        pad = (kernel_size - 1) * dilation // 2
        self.conv = nn.Conv2d(cin, cout, (kernel_size, 1), (stride, 1), (pad, 0), (dilation, 1))
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.bn(self.conv(x))


class CTRGC(nn.Module):
    """Parameters of one channel-wise topology refinement subset (GraphConv runs all subsets).

    conv1/conv2 embed joints into `rel` channels whose pairwise differences, through tanh and
    conv4, refine the shared topology per output channel; conv3 transforms the features.
    """

    def __init__(self, cin, cout):
        super().__init__()
        # pyskl's rule. Upstream's `8 if cin in (3, 9) else cin // 8` gave other narrow inputs
        # too few (2 channels: 0); both give 3 or 9 -> 8, 64 -> 8, 128 -> 16, 256 -> 32.
        rel = 8 if cin <= 16 else cin // 8
        self.conv1 = nn.Conv2d(cin, rel, 1)
        self.conv2 = nn.Conv2d(cin, rel, 1)
        self.conv3 = nn.Conv2d(cin, cout, 1)
        self.conv4 = nn.Conv2d(rel, cout, 1)
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            conv_init(conv)


class GraphConv(nn.Module):
    """upstream unit_gcn: the sum of the CTR-GC subsets over A (3, V, V), BN, down path, ReLU."""

    def __init__(self, cin, cout, A, adaptive=True):
        super().__init__()
        self.convs = nn.ModuleList(CTRGC(cin, cout) for _ in range(A.shape[0]))
        if cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout))
            conv_init(self.down[0])
            bn_init(self.down[1], 1)
        else:
            self.down = nn.Identity()
        A = torch.as_tensor(np.asarray(A, dtype=np.float32))
        if adaptive:
            self.PA = nn.Parameter(A.clone())
        else:  # a constant, as upstream: not part of the state dict
            self.register_buffer('A', A.clone(), persistent=False)
        self.adaptive = adaptive
        self.alpha = nn.Parameter(torch.zeros(1))
        self.bn = nn.BatchNorm2d(cout)
        bn_init(self.bn, 1e-6)

    def forward(self, x):
        # Upstream's per-subset sum with the same maths, arranged for speed (1.2x upstream's
        # forward+backward on the CPU): conv1/conv2 of all subsets run as one conv on the
        # time-averaged input (their outputs are only averaged over time, and a 1x1 conv commutes
        # with the mean); alpha scales conv4's small weights instead of the (n, out, v, v) map;
        # conv4 is a batched matmul (a grouped conv ran at a quarter of the speed here) that starts
        # from bias + A, so the refined topology is written once; each subset's features then
        # meet their topology in one batched matmul over joints, with no layout copies.
        n, _, t, v = x.shape
        K = len(self.convs)
        rel, out = self.convs[0].conv1.out_channels, self.convs[0].conv3.out_channels
        # A (fp32 parameter) in the activations' dtype: under autocast the (n, out, v, v) maps
        # would otherwise be promoted to fp32, twice the memory traffic of the largest tensors here
        A = (self.PA if self.adaptive else self.A).to(x.dtype)
        q = F.conv2d(x.mean(2, keepdim=True), *self._stacked('conv1', 'conv2')).view(n, K, 2, rel, v)
        topology = torch.tanh(q[:, :, 0, :, :, None] - q[:, :, 1, :, None, :])   # (n, K, rel, u, v)
        y = None
        for subset, A_k, tanh_k in zip(self.convs, A, topology.unbind(1)):
            conv4 = subset.conv4
            refined = torch.baddbmm((conv4.bias * self.alpha)[:, None] + A_k.reshape(1, v * v),
                                    (conv4.weight.view(out, rel) * self.alpha).expand(n, out, rel),
                                    tanh_k.reshape(n, rel, v * v)).view(n * out, v, v)
            features = F.conv2d(x, subset.conv3.weight, subset.conv3.bias).view(n * out, t, v)
            # y[n, c, t, u] += sum_v features[n, c, t, v] * refined[n, c, u, v]
            y = (torch.bmm(features, refined.transpose(1, 2)) if y is None
                 else torch.baddbmm(y, features, refined.transpose(1, 2)))
        return torch.relu(self.bn(y.view(n, out, t, v)) + self.down(x))

    def _stacked(self, *names):
        """(weight, bias) of the named convs of every subset, concatenated subset by subset."""
        convs = [getattr(subset, name) for subset in self.convs for name in names]
        return torch.cat([c.weight for c in convs]), torch.cat([c.bias for c in convs])


class MultiScaleTemporalConv(nn.Module):
    """Four branches of c/4 channels: (5,1) convs with dilation 1 and 2, max-pool, strided 1x1."""

    def __init__(self, channels, stride=1, kernel_size=5, dilations=(1, 2)):
        super().__init__()
        b = channels // (len(dilations) + 2)
        branches = [nn.Sequential(nn.Conv2d(channels, b, 1), nn.BatchNorm2d(b),
                                  nn.ReLU(inplace=True), ConvBN(b, b, kernel_size, stride, d))
                    for d in dilations]
        branches.append(nn.Sequential(nn.Conv2d(channels, b, 1), nn.BatchNorm2d(b),
                                      nn.ReLU(inplace=True),
                                      nn.MaxPool2d((3, 1), (stride, 1), (1, 0)), nn.BatchNorm2d(b)))
        branches.append(nn.Sequential(nn.Conv2d(channels, b, 1, stride=(stride, 1)), nn.BatchNorm2d(b)))
        self.branches = nn.ModuleList(branches)
        self.stride = stride
        self.apply(tcn_weights_init)

    def forward(self, x):
        # The four branches open with a 1x1 conv of the same input: run them as one conv. The
        # last branch's conv is strided; a 1x1 conv's strided output is its output subsampled.
        weight = torch.cat([branch[0].weight for branch in self.branches])
        bias = torch.cat([branch[0].bias for branch in self.branches])
        h = F.conv2d(x, weight, bias).split([branch[0].out_channels for branch in self.branches], 1)
        outs = [branch[1:](part) for branch, part in zip(self.branches[:-1], h)]
        outs.append(self.branches[-1][1](h[-1][:, :, ::self.stride]))
        return torch.cat(outs, dim=1)


class Unit(nn.Module):
    """upstream TCN_GCN_unit: relu(tcn(gcn(x)) + residual(x))."""

    def __init__(self, cin, cout, A, stride=1, residual=True, adaptive=True):
        super().__init__()
        self.gcn1 = GraphConv(cin, cout, A, adaptive)
        self.tcn1 = MultiScaleTemporalConv(cout, stride)
        self.has_residual = residual
        if residual and (cin != cout or stride != 1):
            self.residual = ConvBN(cin, cout, 1, stride)
            conv_init(self.residual.conv)
            bn_init(self.residual.bn, 1)
        else:
            self.residual = nn.Identity()

    def forward(self, x):
        y = self.tcn1(self.gcn1(x))
        return torch.relu(y + self.residual(x) if self.has_residual else y)


# (out channels, temporal stride) of the ten units; the first has no residual.
CHANNELS = ((64, 1), (64, 1), (64, 1), (64, 1), (128, 2), (128, 1), (128, 1),
            (256, 2), (256, 1), (256, 1))
