"""A sphere phantom described in the scene: centres as markups control points, volumes in a table.

The Camera Calibration panel places the spheres' centres as control points of a
vtkMRMLMarkupsFiducialNode (label = sphere name) on the sphere phantom's SPECT and takes their
volumes from a table node (columns ``name``, ``volume_ml``) or from a SPHERES.json file. Together
with the concentrations and their reference time they make the same SPHERES.json document that
``startnet calibrate recovery --spheres`` reads, validated by the same code
(:func:`startnet.calibration.spheres.parse_spheres`).

Coordinates: control points are world RAS (``GetNthControlPointPositionWorld``: the position as
shown, parent transforms applied); SPHERES.json ``centre_mm`` is patient LPS, so x and y change
sign. Markups API (vtkMRMLMarkupsNode.h: Modules/Loadable/Markups/MRML in v5.8.1,
Libs/MRML/Core in v5.10.0; same methods): ``GetNumberOfControlPoints``,
``GetNthControlPointLabel``, ``GetNthControlPointPositionStatus`` / ``PositionDefined``,
``GetNthControlPointPositionWorld(i, double[3])``, ``AddControlPointWorld(x, y, z, label)``,
``RemoveAllControlPoints``.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from startnet.calibration.spheres import SpherePhantom, parse_spheres
from startnet.errors import InputError
from startnet.mrml.tables import records_from_table, table_from_records

VOLUME_COLUMNS = ("name", "volume_ml")


def ras_to_lps(point) -> List[float]:
    return [-float(point[0]), -float(point[1]), float(point[2])]


def markups_centres_lps(markups_node) -> Dict[str, List[float]]:
    """name -> centre (patient LPS, mm) of every control point; InputError for an unnamed, repeated or
    unplaced point."""
    where = f"markups '{markups_node.GetName()}'"
    count = markups_node.GetNumberOfControlPoints()
    if count == 0:
        raise InputError(f"{where}: no control points; place one at each sphere's centre (label = sphere name)")
    centres: Dict[str, List[float]] = {}
    for index in range(count):
        name = str(markups_node.GetNthControlPointLabel(index) or "").strip()
        if not name:
            raise InputError(f"{where}: control point {index + 1} has no label; name it as its sphere")
        if name in centres:
            raise InputError(f"{where}: two control points are labelled '{name}'; each sphere once")
        if markups_node.GetNthControlPointPositionStatus(index) != markups_node.PositionDefined:
            raise InputError(f"{where}: control point '{name}' is not placed yet")
        ras = [0.0, 0.0, 0.0]
        markups_node.GetNthControlPointPositionWorld(index, ras)
        centres[name] = ras_to_lps(ras)
    return centres


def volumes_from_table(table_node) -> Dict[str, float]:
    """name -> volume (mL) from a table with columns ``name`` and ``volume_ml``."""
    rows = records_from_table(table_node)
    where = f"table '{table_node.GetName()}'"
    if not rows or any(column not in rows[0] for column in VOLUME_COLUMNS):
        raise InputError(f"{where}: expected columns {', '.join(VOLUME_COLUMNS)} with one row per sphere")
    volumes: Dict[str, float] = {}
    for row in rows:
        name = str(row["name"] or "").strip()
        if name:
            volumes[name] = row["volume_ml"]  # validated with the document (parse_spheres)
    return volumes


def spheres_document(centres_lps: Mapping[str, List[float]], volumes_ml: Mapping[str, Any], *,
                     sphere_kbq_ml: float, background_kbq_ml: float, reference_datetime: str,
                     concentration_rel_sd: Optional[float] = None, where: str = "") -> Dict[str, Any]:
    """The SPHERES.json document of the placed centres and the volumes (matched by sphere name)."""
    missing = [name for name in centres_lps if name not in volumes_ml]
    if missing:
        raise InputError(f"{where or 'spheres'}: no volume for {', '.join(missing)} (volumes are given for "
                         f"{', '.join(volumes_ml) or 'no sphere'}); name each control point as its sphere")
    document: Dict[str, Any] = {
        "spheres": [{"name": name, "centre_mm": [round(c, 4) for c in centre], "volume_ml": volumes_ml[name]}
                    for name, centre in centres_lps.items()],
        "sphere_concentration_kbq_ml": sphere_kbq_ml, "background_concentration_kbq_ml": background_kbq_ml,
        "reference_datetime": reference_datetime}
    if concentration_rel_sd is not None:
        document["concentration_rel_sd"] = concentration_rel_sd
    return document


def phantom_from_markups(markups_node, volumes_ml: Mapping[str, Any], *, sphere_kbq_ml: float,
                         background_kbq_ml: float, reference_datetime: str, zone: _dt.tzinfo,
                         concentration_rel_sd: Optional[float] = None):
    """(SpherePhantom, SPHERES.json document) from the markups' centres and the volumes."""
    where = f"markups '{markups_node.GetName()}'"
    document = spheres_document(markups_centres_lps(markups_node), volumes_ml, sphere_kbq_ml=sphere_kbq_ml,
                                background_kbq_ml=background_kbq_ml, reference_datetime=reference_datetime,
                                concentration_rel_sd=concentration_rel_sd, where=where)
    return parse_spheres(document, zone, where, where), document


def read_spheres_document(path) -> Dict[str, Any]:
    """A SPHERES.json file's document (validated by the caller with parse_spheres)."""
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"spheres file {p}: not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"spheres file {p}: not readable JSON ({exc})") from None


def show_spheres(scene, phantom: SpherePhantom, *, markups_node=None, table_node=None):
    """Markups (one control point per sphere centre, RAS) and a volumes table from a phantom's description;
    the given nodes are refilled. Returns (markups node, table node)."""
    markups = markups_node or scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Sphere centres")
    if markups.GetDisplayNode() is None:  # shown in the views (and its labels) also without the Markups logic
        markups.CreateDefaultDisplayNodes()
    markups.RemoveAllControlPoints()
    for sphere in phantom.spheres:
        x, y, z = sphere.centre_mm
        markups.AddControlPointWorld(-x, -y, z, sphere.name)
    records = [{"name": s.name, "volume_ml": s.volume_ml} for s in phantom.spheres]
    table = table_from_records(scene, records, "Sphere volumes", node=table_node, columns=list(VOLUME_COLUMNS))
    return markups, table
