"""Skeleton graphs: edges, CTR-GCN spatial adjacency, and the body-part joint groups of GAP."""
