"""Generic pieces any training script needs; nothing here knows about skeletons or text."""
