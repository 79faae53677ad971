"""ScanNet v2 TFDS builder (see scannet_dataset_builder.py)."""
