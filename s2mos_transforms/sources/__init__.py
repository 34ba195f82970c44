"""Source plug-ins: the one registry behind every stage's ``--source NAME`` and its flags.

A source is one module that declares ``PLUGIN = SourcePlugin(...)`` (`sources.base`): its
name, what it serves (sample points, map tiles or both), its own command-line flags, how
those flags become a plain options dict, and the factory that builds it from that dict.
The registry finds

* every module of this package (``synthetic``, ``table``, …): adding a source means adding
  one module here, and its tests, nothing else;
* modules named in the ``S2MOS_SOURCE_MODULES`` environment variable (comma-separated
  importable names), for a source kept outside the package;
* entry points of the group ``s2mos.sources`` of installed distributions.

build-dataset, tune-thresholds and predict-map call `add_source_arguments` on their parser
and `resolve_source` on the parsed flags; the options dict then travels to the Beam workers,
which call `create` in their DoFn ``setup``.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
from typing import Any, Iterable

from s2mos_transforms.sources.base import (POINTS, TILES, ImageStack, SamplePoint, Source, SourceError,
                                           SourcePlugin)

__all__ = ["POINTS", "TILES", "ImageStack", "SamplePoint", "Source", "SourceError", "SourcePlugin",
           "plugins", "get_plugin", "create", "add_source_arguments", "resolve_source"]

ENV_MODULES = "S2MOS_SOURCE_MODULES"
ENTRY_POINT_GROUP = "s2mos.sources"
DEFAULT_SOURCE = "synthetic"
_NOT_PLUGINS = {"base"}


def _plugin_of(module_name: str) -> SourcePlugin | None:
    module = importlib.import_module(module_name)
    plugin = getattr(module, "PLUGIN", None)
    if plugin is not None and not isinstance(plugin, SourcePlugin):
        raise TypeError(f"{module_name}.PLUGIN is not a SourcePlugin")
    return plugin


def _module_names() -> Iterable[str]:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name not in _NOT_PLUGINS and not info.name.startswith("_"):
            yield f"{__name__}.{info.name}"
    for name in os.environ.get(ENV_MODULES, "").split(","):
        if name.strip():
            yield name.strip()


def plugins() -> dict[str, SourcePlugin]:
    """Every registered source by name (package modules, S2MOS_SOURCE_MODULES, entry points)."""
    found: dict[str, SourcePlugin] = {}

    def add(plugin: SourcePlugin, where: str) -> None:
        if plugin.name in found and found[plugin.name] is not plugin:
            raise SourceError(f"two sources are named {plugin.name!r} (the second from {where})")
        found[plugin.name] = plugin

    for module_name in _module_names():
        plugin = _plugin_of(module_name)
        if plugin is not None:
            add(plugin, module_name)
    from importlib.metadata import entry_points
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        plugin = ep.load()
        add(plugin, f"entry point {ep.value}")
    return found


def get_plugin(name: str, serves: str | None = None) -> SourcePlugin:
    """The plug-in called `name`; SourceError if there is none or it does not serve `serves`."""
    known = plugins()
    if name not in known:
        raise SourceError(f"unknown source {name!r} (known: {', '.join(sorted(known))})")
    plugin = known[name]
    if serves is not None and serves not in plugin.serves:
        raise SourceError(f"the '{name}' source serves {' and '.join(sorted(plugin.serves))} only; "
                          f"this stage needs {serves}")
    return plugin


def create(name: str, options: dict[str, Any] | None = None) -> Source:
    """Build source `name` from its options dict (on the launcher or in a worker's setup)."""
    return get_plugin(name).factory(**(options or {}))


def add_source_arguments(parser: argparse.ArgumentParser, serves: str) -> None:
    """``--source NAME`` and, in one argument group per source that serves `serves`, its flags.

    The flags of every such source are added (so ``--help`` shows them all); `resolve_source`
    refuses a flag that belongs to a source other than the chosen one.
    """
    known = plugins()
    usable = sorted(n for n, p in known.items() if serves in p.serves)
    lines = "; ".join(f"{n}: {known[n].summary}" for n in usable)
    parser.add_argument("--source", default=DEFAULT_SOURCE, metavar="NAME",
                        help=f"where Sentinel data comes from (default {DEFAULT_SOURCE}). {lines}")
    owners: dict[str, list[tuple[str, Any, str]]] = {}
    for name in usable:
        group = parser.add_argument_group(f"source '{name}' ({known[name].summary})")
        before = len(group._group_actions)
        known[name].add_arguments(group)
        owners[name] = [(a.dest, a.default, a.option_strings[0]) for a in group._group_actions[before:]]
    parser.set_defaults(_source_flag_owners=owners)


def resolve_source(args: argparse.Namespace, serves: str, shared: Iterable[str] = ()) -> tuple[str, dict[str, Any]]:
    """(name, options) from parsed flags; SourceError for a wrong source or a stray flag.

    `shared` names destinations that the stage itself also reads (predict-map's ``--preset``
    picks the AOI too), so they are not stray when another source is chosen.
    """
    plugin = get_plugin(args.source, serves)
    owners = getattr(args, "_source_flag_owners", {})
    allowed = set(shared) | {dest for dest, _, _ in owners.get(plugin.name, [])}
    for name, flags in owners.items():
        if name == plugin.name:
            continue
        for dest, default, flag in flags:
            if dest in allowed:
                continue
            if getattr(args, dest, default) != default:
                raise SourceError(f"{flag} is a flag of the '{name}' source, not of '{plugin.name}' "
                                  f"(add --source {name}, or drop {flag})")
    return plugin.name, dict(plugin.options(args))
