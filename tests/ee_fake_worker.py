"""Puts the fake Earth Engine behind every process that imports this module while
``S2MOS_TEST_EE_LOG`` is set: the worker processes of a multi_processing DirectRunner job
import it through the source registry (``S2MOS_SOURCE_MODULES=ee_fake_worker``), so they talk
to a fake as the launcher does. Each process has its own fake (the real ``ee`` client above
it), appending ``pid time`` per compute request to the file ``$S2MOS_TEST_EE_LOG`` — one
timeline of the whole job's requests. It declares no source."""
from __future__ import annotations

import os

import ee

import ee_fake
from s2mos_transforms.sources import ee_session

LOG = os.environ.get("S2MOS_TEST_EE_LOG")

if LOG and ee_session.HTTP_TRANSPORT is None:
    ee.deprecation._FetchDataCatalogStac = lambda: {}       # no network at start-up
    _FAKE = ee_fake.FakeEarthEngine("quick", log_path=LOG)
    ee_session.HTTP_TRANSPORT = lambda: _FAKE
