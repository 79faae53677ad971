"""What a run wrote to TensorBoard, read back the way TensorBoard reads it (TensorFlow's reader
of the clu writer's event files)."""


def scalars(directory) -> dict:
  """{tag: {step: value}} of the scalar summaries in an event folder (the confusion image and the
  point clouds are left out)."""
  import tensorflow as tf  # noqa: PLC0415  (only the tests that read events pay for it)
  out = {}
  for path in directory.glob('events.out.tfevents.*'):
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      for value in event.summary.value:
        array = tf.make_ndarray(value.tensor)
        if array.ndim == 0:
          out.setdefault(value.tag, {})[event.step] = float(array)
  return out
