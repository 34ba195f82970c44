"""The one definition of the dataset features (TFRecords of tf.train.Example, one per point).

`FEATURES` is the single source of truth: the tensorflow_metadata schema written beside the
data, the parsing spec of the trainer and the Example encoder are all derived from it.
Sequences are stored unpadded and flattened date-major (length × channels); padding to
`bands.MAX_DATES` happens in the input pipeline.

* ``s2s1``: bare S2 observations paired with S1 (12 channels, `bands.CHANNELS_S2S1`):
  S2 as reflectance (0–1), VV/VH in dB. The CNN input.
* ``s2``: every bare S2 observation (10 channels, `bands.S2_BANDS`), paired or not: median
  composites and S2-only ablations.
* dates are seconds since 1970-01-01 UTC of the S2 acquisitions.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from s2mos_transforms import bands

SCHEMA_FILE = "schema.pbtxt"


@dataclasses.dataclass(frozen=True)
class Feature:
    name: str
    dtype: str            # "bytes" | "int64" | "float"
    scalar: bool          # one value per Example, or a variable-length list
    description: str


FEATURES: tuple[Feature, ...] = (
    Feature("point_id", "bytes", True, "sample identifier"),
    Feature("lat", "float", True, "WGS84 latitude (deg)"),
    Feature("lon", "float", True, "WGS84 longitude (deg)"),
    Feature("clay", "float", True, "clay content (%)"),
    Feature("s2s1_length", "int64", True, "number of S1-paired bare dates"),
    Feature("s2s1_dates", "int64", False, "S2 acquisition times (s since epoch) of the paired dates"),
    Feature("s2s1", "float", False, "paired sequence, length × 12 (B2…B12 reflectance, VV, VH dB)"),
    Feature("s2_length", "int64", True, "number of bare S2 dates"),
    Feature("s2_dates", "int64", False, "S2 acquisition times (s since epoch) of the bare dates"),
    Feature("s2", "float", False, "bare S2 sequence, length × 10 (reflectance)"),
)
FEATURE_BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
SEQUENCE_CHANNELS: dict[str, tuple[str, ...]] = {"s2s1": bands.CHANNELS_S2S1, "s2": bands.S2_BANDS}


def encode_example(record: Mapping[str, Any]) -> bytes:
    """Serialise one point's record (a dict with every feature of FEATURES) to an Example."""
    import tensorflow as tf

    feats = {}
    for f in FEATURES:
        value = record[f.name]
        values = [value] if f.scalar else np.asarray(value).ravel().tolist()
        if f.dtype == "bytes":
            feats[f.name] = tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[v.encode() if isinstance(v, str) else bytes(v) for v in values]))
        elif f.dtype == "int64":
            feats[f.name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))
        else:
            feats[f.name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))
    # deterministic=True: map fields (the feature dict) serialise in sorted key order, so the
    # same record always gives the same bytes (reproducible shards).
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString(deterministic=True)


def decode_example(serialized: bytes) -> dict[str, Any]:
    """Inverse of encode_example, in NumPy: sequences come back shaped (length, channels)."""
    import tensorflow as tf

    ex = tf.train.Example.FromString(serialized)
    out: dict[str, Any] = {}
    for f in FEATURES:
        feat = ex.features.feature[f.name]
        if f.dtype == "bytes":
            vals = [v.decode() for v in feat.bytes_list.value]
        elif f.dtype == "int64":
            vals = np.asarray(feat.int64_list.value, np.int64)
        else:
            vals = np.asarray(feat.float_list.value, np.float32)
        out[f.name] = vals[0] if f.scalar else vals
    for seq, chans in SEQUENCE_CHANNELS.items():
        out[seq] = np.asarray(out[seq], np.float32).reshape(-1, len(chans))
    return out


def schema_proto():
    """The tensorflow_metadata Schema of the dataset, derived from FEATURES."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema()
    kinds = {"bytes": schema_pb2.BYTES, "int64": schema_pb2.INT, "float": schema_pb2.FLOAT}
    for f in FEATURES:
        feat = schema.feature.add()
        feat.name = f.name
        feat.type = kinds[f.dtype]
        feat.annotation.comment.append(f.description)
        if f.scalar:
            feat.shape.dim.add().size = 1
            feat.presence.min_fraction = 1.0
        else:
            feat.value_count.min = 0
    return schema


def write_schema(directory: str) -> str:
    """Write schema.pbtxt (text proto) into a local or gs:// directory; returns its path."""
    from google.protobuf import text_format
    from s2mos_transforms import fileio

    path = f"{directory.rstrip('/')}/{SCHEMA_FILE}"
    return fileio.write_text(path, text_format.MessageToString(schema_proto()))


def read_schema(directory: str):
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2
    from s2mos_transforms import fileio

    path = f"{directory.rstrip('/')}/{SCHEMA_FILE}"
    return text_format.Parse(fileio.read_text(path), schema_pb2.Schema())


def feature_spec(schema=None) -> dict:
    """tf.io parsing spec from a Schema proto (the one written beside the data)."""
    import tensorflow as tf
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema if schema is not None else schema_proto()
    dtypes = {schema_pb2.BYTES: tf.string, schema_pb2.INT: tf.int64, schema_pb2.FLOAT: tf.float32}
    spec = {}
    for feat in schema.feature:
        dtype = dtypes[feat.type]
        if feat.HasField("shape"):
            spec[feat.name] = tf.io.FixedLenFeature([], dtype)
        else:
            spec[feat.name] = tf.io.VarLenFeature(dtype)
    return spec
