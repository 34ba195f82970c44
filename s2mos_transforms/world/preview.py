"""`s2mos world preview`: the pictures a person wants to see of the embedded world."""
from __future__ import annotations

import io

import numpy as np

from s2mos_transforms import bands, fileio
from s2mos_transforms.masks import observation_masks
from s2mos_transforms.sources import SamplePoint
from s2mos_transforms.world.export import prepare_out_dir, truth_clay_raster
from s2mos_transforms.sources.synthetic import SyntheticSource


def preview_world(preset: str, out: str, seed: int | None = None, n_points: int = 3) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    source = SyntheticSource(preset, seed)
    prepare_out_dir(out)
    written = []

    truth, profile = truth_clay_raster(source)
    fig, ax = plt.subplots(figsize=(6, 5))
    t = profile["transform"]
    extent = [t.c, t.c + t.a * truth.shape[1], t.f + t.e * truth.shape[0], t.f]
    im = ax.imshow(truth, cmap="YlOrBr", extent=[(v - extent[0]) / 1000 for v in extent[:2]]
                   + [(v - extent[2]) / 1000 for v in extent[2:]])
    fig.colorbar(im, ax=ax, label="clay (%)")
    ax.set_xlabel("km east"), ax.set_ylabel("km north")
    ax.set_title(f"Truth clay, '{preset}' AOI ({profile['crs']})")
    path = fileio.join(out, "truth_clay.png")
    _save_png(fig, path, dpi=110, bbox_inches="tight")
    written.append(path)

    samples = source.sample_points(max(n_points, 1) * 4)
    # Pick samples spanning the clay range.
    picks = samples.sort_values("clay").iloc[np.linspace(0, len(samples) - 1, n_points).astype(int)]
    pts = [SamplePoint(r.point_id, r.lat, r.lon, r.clay) for r in picks.itertuples()]
    obs, _ = source.observations_and_state(pts, with_state=True)
    fig, axes = plt.subplots(len(pts), 2, figsize=(13, 3.2 * len(pts)), squeeze=False)
    for row, p in zip(axes, pts):
        o = obs[obs["point_id"] == p.point_id]
        s2 = o[o["sensor"] == bands.SENSOR_S2]
        s1 = o[o["sensor"] == bands.SENSOR_S1]
        refl = s2[list(bands.S2_BANDS)].to_numpy(float) / bands.S2_SCALE
        bare = observation_masks(refl, s2["SCL"].to_numpy(float), s2["scene_cloud_pct"].to_numpy(float)).kept
        t2 = s2["datetime"].dt.tz_localize(None).to_numpy()
        for i, name in enumerate(("B2", "B4", "B8", "B11", "B12")):
            k = bands.S2_BANDS.index(name)
            row[0].plot(t2, refl[:, k], lw=0.7, label=name, color=f"C{i}")
            row[0].plot(t2[bare], refl[bare, k], "o", ms=3, color=f"C{i}")
        row[0].set_ylim(0, 0.8), row[0].set_ylabel("reflectance")
        row[0].set_title(f"{p.point_id}: clay {p.clay:.0f} %  (dots: bare-soil dates, {bare.sum()})")
        row[0].legend(fontsize=7, ncol=5)
        t1 = s1["datetime"].dt.tz_localize(None).to_numpy()
        row[1].plot(t1, s1["VV"], lw=0.8, label="VV"), row[1].plot(t1, s1["VH"], lw=0.8, label="VH")
        for tb in t2[bare]:
            row[1].axvline(tb, color="0.8", lw=0.6, zorder=0)
        row[1].set_ylabel("σ° (dB)"), row[1].legend(fontsize=7)
        row[1].set_title("Sentinel-1 (grey lines: bare S2 dates)")
    fig.tight_layout()
    path = fileio.join(out, "trajectories.png")
    _save_png(fig, path, dpi=100)
    written.append(path)
    return written


def _save_png(fig, path: str, **savefig_kw) -> None:
    """Render the figure to PNG and write it through fileio (local or gs://); close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", **savefig_kw)
    plt.close(fig)
    fileio.write_bytes(path, buf.getvalue())
