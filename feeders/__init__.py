"""Datasets that turn prepared skeleton files into (data (3, T, V, M) float32, label, index).

feeder_ntu.Feeder: NTU RGB+D 60/120 (.npz from data/ntu*, or .h5 from feeders/convert_h5.py).
feeder_ucla.Feeder: NW-UCLA (data/NW-UCLA/all_sqe + data/NW-UCLA/split.json).
transforms: the pure array functions; modality: the joint/bone/motion table.
"""
