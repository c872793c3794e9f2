"""COCO-17 (2D keypoints of a pose estimator such as HRNet, with a confidence per joint) graph and
GAP's body-part groups.

Joints, 0-based: 0 nose, 1 left eye, 2 right eye, 3 left ear, 4 right ear, 5 left shoulder,
6 right shoulder, 7 left elbow, 8 right elbow, 9 left wrist, 10 right wrist, 11 left hip,
12 right hip, 13 left knee, 14 right knee, 15 left ankle, 16 right ankle. Channels x, y and the
detection score (channel 2). The edges are pyskl's `coco` layout, (child, parent), rooted at the
nose (pyskl's centre, joint 0); the hips hang from the shoulders.

Edges of GAP's I - A^k (`vector_edges`): the same (child, parent) edges, so k=1 makes each joint
minus its parent, i.e. the bones of `bone_pairs` (the root, the nose, stays itself), as on NTU
(InfoGCN's convention). NW-UCLA's outward direction (each joint minus all its children) is
upstream's choice for that dataset alone, kept there to reproduce it; a new layout has no such
result to match, and with the bones' direction the k=1 stream and the feeder's bone modality
agree. The tree is 4 edges deep (ankle - knee - hip - shoulder - nose), so A^k = 0 for k >= 5:
the joint stream's k=8 (Model_lst_4part's) feeds the joints unchanged, as it does on NTU, whose
tree is 7 deep.

Bone pairs (the feeder's bone modality): the edges plus the nose paired with itself (a zero
bone), so bone v is joint v minus its graph parent. pyskl's own COCO bone pairs attach the hips
to the nose; here they follow the graph (hip minus shoulder: a side of the torso, a segment of
nearly constant length, where hip minus nose spans neck and trunk), so feeder bones and the
model's k=1 bones are the same vectors.

GAP's four body parts. No published grouping of COCO-17 into GAP's head, hand, hip and foot
exists; this one follows what the part descriptions talk about and how the NTU and NW-UCLA groups
are drawn. The description sets are `name, head`, `name, hand, arm`, `name, hip` and
`name, leg, foot`, and the NTU groups pool the whole arm for 'hand' (shoulders to hand tips), the
trunk for 'hip' (spine base to neck and both hips), the whole leg for 'foot' (hips to feet), the
neck and head for 'head'; neighbouring groups share their boundary joints there (hips in hip and
foot, the neck in head and hip). COCO has no spine or neck joint, so:

  joint input (a part's joints are the nodes whose positions it describes)
    head  0-4           nose, eyes, ears: every head joint COCO has
    hand  5-10          shoulders, elbows, wrists: the arm, shoulder included (NTU's 'hand' holds
                        the shoulders); COCO has no hand joint past the wrist
    hip   5, 6, 11, 12  the trunk: COCO's only torso joints are its four corners; the shoulders
                        are the top of the trunk as NTU's neck is (trunk lean, bending and
                        twisting show in the shoulder-hip quadrilateral, not in the hips alone)
    foot  11-16         hips, knees, ankles: the leg, hip included (NTU's 'foot' holds the hips)

  bone input (bone v = joint v minus its parent; a part's indices are the bones whose vectors it
  describes, and the vector is what a bone index carries)
    head  0-6           the nose itself (with k=1 the root keeps its position: the head's path;
                        the feeder's bone modality makes it zero), the face bones 1-4 (eye - nose,
                        ear - eye), and 5, 6 (shoulder - nose): the only bones between head and
                        body, i.e. COCO's neck, which carries nodding, shaking and tilting
    hand  5-10          shoulder - nose (the clavicle's place, as NTU's 'hand' holds the
                        shoulder - spine-shoulder bones), upper arms 7, 8, forearms 9, 10
    hip   11-14         the torso sides 11, 12 (hip - shoulder) and the thighs 13, 14 (knee - hip):
                        the two bones meeting at each hip, whose angle is the hip's flexion
                        (sitting, bending); NTU's 'hip' holds spine and pelvis bones, which COCO
                        lacks
    foot  13-16         thighs 13, 14 and shins 15, 16 (ankle - knee): the leg (COCO has no foot
                        bone past the ankle)
"""
from graph.tools import SkeletonGraph

JOINTS = ('nose', 'left eye', 'right eye', 'left ear', 'right ear', 'left shoulder',
          'right shoulder', 'left elbow', 'right elbow', 'left wrist', 'right wrist', 'left hip',
          'right hip', 'left knee', 'right knee', 'left ankle', 'right ankle')
CENTER = 0

# pyskl's `coco` edges, 0-based (child, parent).
INWARD = [(15, 13), (13, 11), (16, 14), (14, 12), (11, 5), (12, 6), (9, 7), (7, 5), (10, 8),
          (8, 6), (5, 0), (6, 0), (1, 0), (3, 1), (2, 0), (4, 2)]

# Feeder bone pairs: every joint once as the first, by joint; the nose (the centre) to itself.
BONE_PAIRS = sorted(INWARD + [(CENTER, CENTER)])

PARTS = {
    'joint': {
        'head': [0, 1, 2, 3, 4],
        'hand': [5, 6, 7, 8, 9, 10],
        'hip': [5, 6, 11, 12],
        'foot': [11, 12, 13, 14, 15, 16],
    },
    'bone': {
        'head': [0, 1, 2, 3, 4, 5, 6],
        'hand': [5, 6, 7, 8, 9, 10],
        'hip': [11, 12, 13, 14],
        'foot': [13, 14, 15, 16],
    },
}


class Graph(SkeletonGraph):
    name = 'coco'
    num_node = 17
    channels = 3  # x, y, detection score
    score_channel = 2
    center = CENTER  # the edges' root
    inward = INWARD
    vector_edges = INWARD  # (child, parent): k=1 makes bones, see the module docstring
    parts = PARTS
    bone_pairs = BONE_PAIRS
