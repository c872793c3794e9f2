"""NW-UCLA (Kinect v1, 20 joints) graph and GAP's body-part groups."""
from graph.tools import SkeletonGraph, zero_based

# CTR-GCN's edges, 1-based (child, parent), rooted at the shoulder centre (joint 3).
INWARD_1BASED = [(1, 2), (2, 3), (4, 3), (5, 3), (6, 5), (7, 6), (8, 7), (9, 3), (10, 9),
                 (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17),
                 (19, 18), (20, 19)]

# Feeder bone pairs: the edges plus the root to itself.
BONE_PAIRS_1BASED = INWARD_1BASED[:2] + [(3, 3)] + INWARD_1BASED[2:]

PARTS = {
    'joint': {
        'head': [2, 3],
        'hand': [10, 11, 6, 7, 8, 9, 4, 5],
        'hip': [0, 1, 12, 16],
        'foot': [16, 17, 18, 19, 12, 13, 14, 15],
    },
    'bone': {
        'head': [2],
        'hand': [7, 8, 9, 10, 3, 4, 5, 6],
        'hip': [0, 1, 11, 15],
        'foot': [11, 12, 13, 14, 15, 16, 17, 18],
    },
}


class Graph(SkeletonGraph):
    name = 'nw-ucla'
    num_node = 20
    channels = 3  # x, y, z
    score_channel = None
    inward = zero_based(INWARD_1BASED)
    # GAP's I - A^k uses the outward edges (parent, child), as upstream: k=1 makes each joint
    # minus ALL its children (1-based: joint 3 becomes x3 - x2 - x4 - x5 - x9; a leaf stays
    # itself), not minus its parent as on NTU. Upstream's maths, kept; the feeder's bone
    # modality (bone_pairs below) is joint minus parent.
    vector_edges = [(j, i) for i, j in zero_based(INWARD_1BASED)]
    parts = PARTS
    bone_pairs = zero_based(BONE_PAIRS_1BASED)
