"""What a serialized Earth Engine expression asks for, read by the fake of tests/ee_fake.py (and
the tests) the way Earth Engine would read it: the collections, points, dates, bands, filters,
grids and constants of the request."""
from __future__ import annotations

from typing import Any

STATUS_NAMES = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
                500: "INTERNAL", 503: "UNAVAILABLE"}


def parse_expression(expr: dict) -> dict[str, Any]:
    """What a serialized expression asks for: collections loaded, points (id, lon, lat),
    date ranges, selected bands, property filters, linked collections."""
    found: dict[str, Any] = {"collections": [], "points": [], "dates": [], "select": [], "filters": [],
                             "linked": [], "rect": [], "crs": [], "in_list": [], "to_bands": False,
                             "unmask": []}

    values = expr.get("values", {})

    def const(v):
        """A constant argument, through value references and arrays of constants."""
        if not isinstance(v, dict):
            return None
        if "valueReference" in v:
            return const(values[v["valueReference"]])
        if "arrayValue" in v:
            return [const(x) for x in v["arrayValue"].get("values", [])]
        return v.get("constantValue")

    def walk(node):
        if isinstance(node, dict):
            inv = node.get("functionInvocationValue")
            if inv:
                name, args = inv["functionName"], inv.get("arguments", {})
                c = {k: const(v) for k, v in args.items()}
                if name == "ImageCollection.load":
                    found["collections"].append(c["id"])
                elif name == "Feature" and isinstance(c.get("metadata"), dict) and "point_id" in c["metadata"]:
                    geom = args["geometry"]
                    geom = (values[geom["valueReference"]] if "valueReference" in geom else geom)["functionInvocationValue"]
                    lon, lat = const(geom["arguments"]["coordinates"])
                    found["points"].append((c["metadata"]["point_id"], lon, lat))
                elif name == "DateRange":
                    found["dates"].append((c["start"], c["end"]))
                elif name == "Image.select":
                    found["select"].append(c["bandSelectors"])
                elif name == "Filter.listContains" and "leftValue" in c:          # ee.Filter.inList
                    found["in_list"].append((c.get("rightField"), c.get("leftValue")))
                elif name in ("Filter.equals", "Filter.listContains"):
                    found["filters"].append((name, c.get("leftField"), c.get("rightValue")))
                elif name == "Image.linkCollection":
                    found["linked"].append(c.get("linkedBands"))
                elif name == "GeometryConstructors.Rectangle":
                    found["rect"].append(c["coordinates"])
                elif name == "Projection":
                    found["crs"].append(c["crs"])
                elif name == "ImageCollection.toBands":
                    found["to_bands"] = True
                elif name == "Image.constant":
                    found["unmask"].append(c.get("value"))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(expr)
    return found
