"""Per-scene geometric preprocessing (METHOD.md, "Preprocessing, once per scene").

Import the modules directly (this package imports nothing, so that a light import does not
load open3d): preprocess.preprocess_scene runs them all; normals, oversegment, adjacency and
boundary are its stages; knn holds the shared neighbour graph; region_quality scores regions.
"""
