"""TFDS builders of the WS3D data sets; see README.md. One standard builder directory each."""
