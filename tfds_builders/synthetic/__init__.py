"""Synthetic-rooms TFDS builder (see synthetic_dataset_builder.py)."""
