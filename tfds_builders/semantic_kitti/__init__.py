"""SemanticKITTI TFDS builder (see semantic_kitti_dataset_builder.py)."""
