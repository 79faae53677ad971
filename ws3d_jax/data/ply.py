"""A small binary PLY reader / writer in numpy.

open3d reads PLY meshes but drops custom vertex properties such as ScanNet's `label`, so the
ScanNet reader uses this instead. Supported: binary_little_endian / binary_big_endian,
scalar properties, and list properties (faces). ASCII PLY is not needed by any data set here.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ws3d_jax.data import common

_TYPES = {
    'char': 'i1', 'int8': 'i1', 'uchar': 'u1', 'uint8': 'u1',
    'short': 'i2', 'int16': 'i2', 'ushort': 'u2', 'uint16': 'u2',
    'int': 'i4', 'int32': 'i4', 'uint': 'u4', 'uint32': 'u4',
    'float': 'f4', 'float32': 'f4', 'double': 'f8', 'float64': 'f8',
}
_NAMES = {'i1': 'char', 'u1': 'uchar', 'i2': 'short', 'u2': 'ushort', 'i4': 'int',
          'u4': 'uint', 'f4': 'float', 'f8': 'double'}


def _type(word: str, path) -> str:
  if word not in _TYPES:
    raise ValueError(f'{path}: unknown PLY property type {word!r}')
  return _TYPES[word]


def _parse_header(f, path) -> tuple[str, list]:
  """(byte order, [(element name, count, [(prop, dtype) or (prop, (count_t, item_t))])])."""
  if f.readline().strip() != b'ply':
    raise ValueError(f'{path}: not a PLY file (no "ply" magic line)')
  order, elements = None, []
  while True:
    line = f.readline()
    if not line:
      raise ValueError(f'{path}: PLY header has no end_header')
    words = line.decode('ascii', 'replace').split()
    if not words or words[0] in ('comment', 'obj_info'):
      continue
    if words[0] == 'end_header':
      break
    if words[0] == 'format':
      orders = {'binary_little_endian': '<', 'binary_big_endian': '>'}
      if words[1] not in orders:
        raise ValueError(f'{path}: unsupported PLY format {words[1]!r} (binary only)')
      order = orders[words[1]]
    elif words[0] == 'element':
      elements.append((words[1], int(words[2]), []))
    elif words[0] == 'property':
      if not elements:
        raise ValueError(f'{path}: PLY property before any element')
      if words[1] == 'list':
        elements[-1][2].append((words[4], (_type(words[2], path), _type(words[3], path))))
      else:
        elements[-1][2].append((words[2], _type(words[1], path)))
  if order is None:
    raise ValueError(f'{path}: PLY header has no format line')
  return order, elements


def _read_lists(buf: memoryview, offset: int, count: int, count_t: str, item_t: str,
                order: str) -> tuple[np.ndarray | list, int]:
  """Reads `count` lists; fast path when all lists have the first list's length (meshes)."""
  if count == 0:
    return np.zeros((0, 0), order + item_t), offset
  first = int(np.frombuffer(buf, order + count_t, 1, offset)[0])
  row = np.dtype([('n', order + count_t), ('v', order + item_t, (first,))])
  if offset + count * row.itemsize <= len(buf):
    rows = np.frombuffer(buf, row, count, offset)
    if (rows['n'] == first).all():
      return rows['v'].copy(), offset + count * row.itemsize
  lists, ct, it = [], np.dtype(order + count_t), np.dtype(order + item_t)
  for _ in range(count):
    n = int(np.frombuffer(buf, ct, 1, offset)[0])
    lists.append(np.frombuffer(buf, it, n, offset + ct.itemsize))
    offset += ct.itemsize + n * it.itemsize
  return lists, offset


def read_ply(path: str | os.PathLike, elements: tuple[str, ...] | None = None
             ) -> dict[str, dict[str, np.ndarray]]:
  """{element: {property: array}} of a binary PLY; only `elements` if given (stops early)."""
  path = common.require_file(path, 'PLY')
  with open(path, 'rb') as f:
    order, header = _parse_header(f, path)
    buf = memoryview(f.read())
  wanted = set(elements) if elements is not None else {e[0] for e in header}
  out, offset = {}, 0
  for name, count, props in header:
    if not wanted - set(out):
      break
    if all(isinstance(t, str) for _, t in props):
      dtype = np.dtype([(p, order + t) for p, t in props])
      if offset + count * dtype.itemsize > len(buf):
        raise ValueError(f'{path}: truncated PLY, element {name!r} needs '
                         f'{count * dtype.itemsize} bytes, {len(buf) - offset} left')
      rows = np.frombuffer(buf, dtype, count, offset)
      out[name] = {p: rows[p].copy() for p, _ in props}
      offset += count * dtype.itemsize
    elif len(props) == 1:
      prop, (count_t, item_t) = props[0]
      try:
        values, offset = _read_lists(buf, offset, count, count_t, item_t, order)
      except ValueError as e:  # np.frombuffer past the end
        raise ValueError(f'{path}: truncated PLY in list element {name!r}: {e}') from None
      out[name] = {prop: values}
    else:
      raise ValueError(f'{path}: PLY element {name!r} mixes list and scalar properties')
  missing = wanted - set(out)
  if missing:
    raise ValueError(f'{path}: PLY has no element(s) {sorted(missing)}')
  return out


def write_ply(path: str | os.PathLike, vertex: dict[str, np.ndarray],
              faces: np.ndarray | None = None, comment: str = '') -> None:
  """Writes a binary little-endian PLY: vertex properties in dict order (each array's own
  dtype), and triangles (M, 3) as `list uchar int vertex_indices` like ScanNet's meshes."""
  names = list(vertex)
  arrays = [np.asarray(vertex[k]) for k in names]
  dtype = np.dtype([(k, '<' + a.dtype.str[1:]) for k, a in zip(names, arrays)])
  rows = np.empty(len(arrays[0]), dtype)
  for k, a in zip(names, arrays):
    rows[k] = a
  lines = ['ply', 'format binary_little_endian 1.0']
  if comment:
    lines.append(f'comment {comment}')
  lines.append(f'element vertex {len(rows)}')
  lines += [f'property {_NAMES[a.dtype.str[1:]]} {k}' for k, a in zip(names, arrays)]
  if faces is not None:
    lines += [f'element face {len(faces)}', 'property list uchar int vertex_indices']
  lines.append('end_header')
  with open(Path(path), 'wb') as f:
    f.write(('\n'.join(lines) + '\n').encode('ascii'))
    f.write(rows.tobytes())
    if faces is not None:
      faces = np.asarray(faces)
      tri = np.empty(len(faces), np.dtype([('n', 'u1'), ('v', '<i4', (faces.shape[1],))]))
      tri['n'] = faces.shape[1]
      tri['v'] = faces
      f.write(tri.tobytes())
