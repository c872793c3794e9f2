"""NTU RGB+D (Kinect v2, 25 joints) graph and GAP's body-part groups."""
from graph.tools import SkeletonGraph, zero_based

# CTR-GCN's edges, 1-based (child, parent), rooted at the spine base.
INWARD_1BASED = [(1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21),
                 (10, 9), (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1),
                 (18, 17), (19, 18), (20, 19), (22, 23), (23, 8), (24, 25), (25, 12)]

# InfoGCN's tree rooted at joint 2 (spine middle), as (child, parent); GAP's I - A^k uses it, so
# k=1 makes each joint minus its parent.
VECTOR_1BASED = [(1, 2), (21, 2), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21),
                 (10, 9), (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1),
                 (18, 17), (19, 18), (20, 19), (22, 23), (23, 8), (24, 25), (25, 12)]

# Feeder bone pairs (joint v becomes v minus its pair): the edges plus the centre to itself.
BONE_PAIRS_1BASED = INWARD_1BASED[:20] + [(22, 23), (21, 21), (23, 8), (24, 25), (25, 12)]

# 0-based joint indices per body part, for joint input and for bone (k=1) input.
PARTS = {
    'joint': {
        'head': [2, 3, 20],
        'hand': [4, 5, 6, 7, 8, 9, 10, 11, 21, 22, 23, 24],
        'hip': [0, 1, 2, 12, 16],
        'foot': [12, 13, 14, 15, 16, 17, 18, 19],
    },
    'bone': {
        'head': [2, 3],
        'hand': [4, 5, 6, 7, 8, 9, 10, 11, 20, 22, 23, 24],
        'hip': [0, 1, 12, 16],
        'foot': [12, 13, 14, 15, 16, 17, 18, 19],
    },
}


class Graph(SkeletonGraph):
    name = 'ntu'
    num_node = 25
    channels = 3  # x, y, z (Kinect camera space)
    score_channel = None
    center = 1  # spine middle: what the NTU prep's translation subtracts
    inward = zero_based(INWARD_1BASED)
    vector_edges = zero_based(VECTOR_1BASED)
    parts = PARTS
    bone_pairs = zero_based(BONE_PAIRS_1BASED)
