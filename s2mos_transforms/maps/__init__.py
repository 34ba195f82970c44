"""Stage 3: tiles of an AOI -> per-pixel sequences -> ensemble -> COGs (the tile fan-out)."""
