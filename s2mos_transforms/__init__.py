"""s2mos library: sources, masks, pairing, sequences, split, schema, metrics, writers, PTransforms."""
