"""Skeleton layouts, one module each (ntu_rgb_d.py, ucla.py): joints, channels, CTR-GCN's edges, the
edges of GAP's I - A^k, the body-part joint groups and the bone pairs, all on the module's `Graph`
(tools.SkeletonGraph says what a layout defines). layouts.py: a layout by name or module path."""
