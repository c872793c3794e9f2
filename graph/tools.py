"""Adjacency helpers shared by every skeleton graph (pure NumPy, no I/O)."""
import numpy as np


def edge2mat(edges, num_node):
    """Binary matrix with A[j, i] = 1 for each directed edge (i, j): column i feeds row j."""
    A = np.zeros((num_node, num_node), dtype=np.float32)
    for i, j in edges:
        A[j, i] = 1
    return A


def adjacency(edges, num_node):
    """Binary matrix with A[i, j] = 1 for each edge (i, j) (InfoGCN's convention)."""
    A = np.zeros((num_node, num_node), dtype=np.float32)
    for i, j in edges:
        A[i, j] = 1
    return A


def normalize_digraph(A):
    """Divide each column by its degree (columns with no edge stay zero)."""
    degree = A.sum(0)
    inv = np.where(degree > 0, 1.0 / np.where(degree > 0, degree, 1), 0.0)
    return (A * inv[None, :]).astype(np.float32)


def spatial_graph(num_node, self_link, inward, outward):
    """CTR-GCN's 'spatial' labelling: [identity, normalised inward, normalised outward]."""
    return np.stack([
        edge2mat(self_link, num_node),
        normalize_digraph(edge2mat(inward, num_node)),
        normalize_digraph(edge2mat(outward, num_node)),
    ])


def k_hop_vector(A_binary, k):
    """InfoGCN's input transform I - A^k (k = 0 gives I): a joint minus its k-th ancestor."""
    num_node = A_binary.shape[0]
    eye = np.eye(num_node, dtype=np.float64)
    if k == 0:
        return eye.astype(np.float32)
    return (eye - np.linalg.matrix_power(A_binary.astype(np.float64), k)).astype(np.float32)


def zero_based(pairs):
    return [(i - 1, j - 1) for i, j in pairs]


class SkeletonGraph:
    """A skeleton's graph: `.A` (3, V, V) for CTR-GCN, `.A_outward_binary` for the input transform.

    Subclasses set `num_node`, `inward` (0-based child -> parent edges of CTR-GCN) and
    `vector_edges` (0-based edges whose binary matrix feeds I - A^k).
    """

    num_node = 0
    inward = ()
    vector_edges = ()

    def __init__(self, labeling_mode='spatial'):
        if labeling_mode != 'spatial':
            raise ValueError(f"unknown labeling_mode {labeling_mode!r}; only 'spatial' exists")
        self.labeling_mode = labeling_mode
        self.self_link = [(i, i) for i in range(self.num_node)]
        self.outward = [(j, i) for i, j in self.inward]
        self.neighbor = list(self.inward) + self.outward
        self.A = spatial_graph(self.num_node, self.self_link, self.inward, self.outward)
        self.A_outward_binary = adjacency(self.vector_edges, self.num_node)

    def A_vector(self, k):
        return k_hop_vector(self.A_outward_binary, k)
