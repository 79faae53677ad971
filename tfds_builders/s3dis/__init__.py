"""S3DIS TFDS builder (see s3dis_dataset_builder.py)."""
