"""Adjacency helpers and the layout contract (SkeletonGraph) of every skeleton graph (pure NumPy,
no I/O)."""
import numpy as np

from graph.parts import BODY_PARTS
from torchlight.errors import UserError


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
    """InfoGCN's input transform I - A^k (k = 0 gives I). Row i is joint i minus every joint k
    edges from it along the (i, j) edges of A: with child -> parent edges (NTU) its k-th ancestor,
    with parent -> child edges (NW-UCLA) all its k-th descendants."""
    num_node = A_binary.shape[0]
    eye = np.eye(num_node, dtype=np.float64)
    if k == 0:
        return eye.astype(np.float32)
    return (eye - np.linalg.matrix_power(A_binary.astype(np.float64), k)).astype(np.float32)


def zero_based(pairs):
    return [(i - 1, j - 1) for i, j in pairs]


class SkeletonGraph:
    """A skeleton layout: its joints, channels, edges and body parts, as data on a subclass.

    A layout module (graph/ntu_rgb_d.py, graph/ucla.py, or a user's own `mypkg.my_layout`)
    defines a subclass named `Graph` with these class attributes, joints 0-based:

        name           str, the layout's short name (e.g. 'ntu')
        num_node       int, joints V
        channels       int, values per joint C (e.g. 3: x, y, z)
        score_channel  index among the channels of a detection confidence, or None (all
                       coordinates); bone and motion keep it a confidence, rotations skip it
        inward         (child, parent) edges of CTR-GCN's spatial graph
        vector_edges   (i, j) edges of GAP's input transform I - A^k: k = 1 makes joint i minus
                       all its j's (a bone where the edges run child -> parent)
        parts          {'joint': {part: [joints]}, 'bone': {part: [joints]}}: for joint and for
                       bone input, the joints pooled for each of graph.parts.BODY_PARTS
        bone_pairs     (joint, parent) pairs of the feeder's bone modality, every joint once as
                       the first (a root paired with itself gets a zero bone)
        center         (optional) the joint a 3D sample is centred on (feeders/feeder_pyskl.py);
                       None: the root of bone_pairs

    graph.layouts.load_layout and building a Graph check them (one-line UserError naming the
    module). A built Graph has `.A` (3, V, V) for CTR-GCN and `.A_vector(k)` for GAP's input.
    """

    FIELDS = ('name', 'num_node', 'channels', 'score_channel', 'inward', 'vector_edges', 'parts',
              'bone_pairs')
    center = None

    def __init__(self, labeling_mode='spatial'):
        if labeling_mode != 'spatial':
            raise ValueError(f"unknown labeling_mode {labeling_mode!r}; only 'spatial' exists")
        self.check()
        self.labeling_mode = labeling_mode
        self.self_link = [(i, i) for i in range(self.num_node)]
        self.outward = [(j, i) for i, j in self.inward]
        self.neighbor = list(self.inward) + self.outward
        self.A = spatial_graph(self.num_node, self.self_link, self.inward, self.outward)
        self.A_outward_binary = adjacency(self.vector_edges, self.num_node)

    def A_vector(self, k):
        return k_hop_vector(self.A_outward_binary, k)

    @classmethod
    def check(cls):
        """Refuse a layout that is incomplete or names joints it does not have."""
        def fail(problem):
            raise UserError(f'layout {cls.__module__}.{cls.__qualname__}: {problem}')

        missing = [f for f in cls.FIELDS if not hasattr(cls, f)]
        if missing:
            fail(f'does not define {", ".join(missing)} (see graph.tools.SkeletonGraph)')
        if not (isinstance(cls.name, str) and cls.name):
            fail(f'name must be a non-empty string, got {cls.name!r}')
        V, C = cls.num_node, cls.channels
        if not (isinstance(V, int) and V > 0 and isinstance(C, int) and C > 0):
            fail(f'num_node and channels must be positive integers, got {V!r} and {C!r}')
        if cls.score_channel is not None and cls.score_channel not in range(C):
            fail(f'score_channel {cls.score_channel!r} is not one of the {C} channels')

        def check_joints(what, joints):
            bad = [j for j in joints if not (isinstance(j, (int, np.integer)) and 0 <= j < V)]
            if bad:
                fail(f'{what} names joint {bad[0]!r}, outside 0..{V - 1}')

        for what in ('inward', 'vector_edges', 'bone_pairs'):
            pairs = getattr(cls, what)
            if any(len(pair) != 2 for pair in pairs):
                fail(f'{what} must be (joint, joint) pairs')
            check_joints(what, [j for pair in pairs for j in pair])
        first = sorted(j for j, _ in cls.bone_pairs)
        if first != list(range(V)):
            fail(f'bone_pairs must give each of the {V} joints once as the first of a pair')
        for representation in ('joint', 'bone'):
            groups = cls.parts.get(representation) if isinstance(cls.parts, dict) else None
            if groups is None or sorted(groups) != sorted(BODY_PARTS):
                fail(f"parts[{representation!r}] must list the joints of {', '.join(BODY_PARTS)}")
            for part, joints in groups.items():
                if not joints or len(set(joints)) != len(joints):
                    fail(f'parts[{representation!r}][{part!r}] must be distinct joints, at least one')
                check_joints(f'parts[{representation!r}][{part!r}]', joints)
