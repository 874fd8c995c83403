"""Table nodes <-> column dictionaries / records.

Columns keep their type: numbers become double columns, everything else string columns.
"""

from __future__ import annotations

import math
from typing import Dict, List, Mapping, Sequence

import vtk

from startnet.errors import InputError


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def table_from_records(scene, records: Sequence[Mapping], name: str, *, node=None, columns=None):
    """Create (or refill) a vtkMRMLTableNode from a list of dicts (one dict per row).

    ``columns`` fixes the column order (default: keys in first-seen order). Missing values are
    written as NaN (numeric columns) or "" (text columns).
    """
    if columns is None:
        columns = []
        for record in records:
            for key in record:
                if key not in columns:
                    columns.append(key)
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    table = node.GetTable()
    table.Initialize()
    for column in columns:
        values = [record.get(column) for record in records]
        numeric = all(v is None or _is_number(v) for v in values) and any(v is not None for v in values)
        array = vtk.vtkDoubleArray() if numeric else vtk.vtkStringArray()
        array.SetName(str(column))
        for v in values:
            if numeric:
                array.InsertNextValue(float("nan") if v is None else float(v))
            else:
                array.InsertNextValue("" if v is None else str(v))
        table.AddColumn(array)
    node.Modified()
    return node


def records_from_table(table_node) -> List[Dict[str, object]]:
    """Rows of a table node as dicts; numeric columns give floats (NaN -> None)."""
    table = table_node.GetTable()
    names = [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())]
    rows: List[Dict[str, object]] = []
    for r in range(table.GetNumberOfRows()):
        row: Dict[str, object] = {}
        for c, name in enumerate(names):
            column = table.GetColumn(c)
            if isinstance(column, vtk.vtkStringArray):
                row[name] = column.GetValue(r)
            elif isinstance(column, vtk.vtkDataArray):
                value = float(column.GetTuple1(r))
                row[name] = None if math.isnan(value) else value
            else:
                raise InputError(
                    f"table '{table_node.GetName()}' column '{name}' has unsupported type "
                    f"{column.GetClassName()}"
                )
        rows.append(row)
    return rows
