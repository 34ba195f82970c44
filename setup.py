"""s2mos: topsoil clay maps from Sentinel-1 + Sentinel-2 time series (Tziolas et al. 2020).

The same package is installed locally and in the one container image (Dockerfile) that serves
as Dataflow worker (`--sdk_container_image`, `--sdk_location=container`), Flex Template launcher
and Vertex AI trainer, so training and serving share one implementation.
"""
from setuptools import find_packages, setup

# Direct dependencies, pinned to versions resolved and tested together (Python 3.11).
# requirements.lock holds the full transitive set used by `make`.
INSTALL_REQUIRES = [
    "apache-beam[gcp]==2.77.0",
    "tensorflow==2.21.0",
    "keras==3.15.1",
    "tfx-bsl==1.21.0",
    "tensorflow-metadata==1.21.0",
    "earthengine-api==1.7.35",
    "google-cloud-storage==3.17.1",
    "numpy==2.4.6",
    "pandas==3.1.1",
    "pyarrow==25.0.1",
    "scipy==1.17.1",
    "scikit-learn==1.9.1",
    "rasterio==1.4.4",
    "rio-cogeo==7.0.4",
    "pyproj==3.7.2",
    "shapely==2.2.0",
    "pystac==1.15.2",
    "matplotlib==3.11.2",
    "tqdm==4.70.1",
    "psutil==7.2.2",
    # Datacube source (--source datacube): netCDF through h5netcdf/h5py, Zarr stores.
    "xarray==2026.9.0",
    "zarr==3.1.6",
    "h5netcdf==1.8.2",
    "h5py==3.14.0",
]

setup(
    name="s2mos",
    version="0.1.0",
    description="Sentinel-based Soil Monitoring Scheme: clay maps from S1+S2 time series (Beam/Dataflow)",
    packages=find_packages(include=["pipelines", "pipelines.*", "s2mos_transforms", "s2mos_transforms.*",
                                    "trainer", "trainer.*"]),
    python_requires=">=3.10,<3.13",
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": ["pytest==9.2.0"]},
    entry_points={"console_scripts": ["s2mos = pipelines.cli:main"]},
)
