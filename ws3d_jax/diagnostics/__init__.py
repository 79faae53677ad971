"""Diagnostics of a run's checkpoint, on top of train/: pseudo-label quality on the unlabeled
scenes (pseudo_labels) and per-term gradients (term_gradients). Each is a command line tool."""
