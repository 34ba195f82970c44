"""Stage 1: soil samples -> bare-soil sequences -> TFRecords (the point fan-out)."""
