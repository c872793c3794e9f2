"""Skeleton models: CTR-GCN blocks (blocks.py), the CTR-GCN / GAP models (ctrgcn.py), losses."""
