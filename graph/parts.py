"""GAP's body parts, in the one order used everywhere: the model's part features, the prompt sets
that supervise them, and the joint groups each graph module lists under these names."""

BODY_PARTS = ('head', 'hand', 'hip', 'foot')
