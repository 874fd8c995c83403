"""Nodes a dosimetry run shows, found again by their role so that a re-run replaces them.

Every node a run makes carries the attribute ``startnet.run.role`` (e.g. ``dose``,
``tac_fit:kidney_left``). A new run reuses the node of each role (same node ID, so references
to it, the user's display settings and the parameter node stay valid) and
:meth:`RunNodes.remove_unused` removes the previous run's nodes whose role did not come back
(a structure the new segmentation no longer has), with their display and storage nodes.
"""

from __future__ import annotations

from typing import Dict, List, Set

ROLE_ATTRIBUTE = "startnet.run.role"


def nodes_with_role(scene) -> Dict[str, object]:
    """role -> node of every node a run made in ``scene`` (the first one of each role)."""
    found: Dict[str, object] = {}
    for i in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(i)
        role = node.GetAttribute(ROLE_ATTRIBUTE) if node is not None else None
        if role and role not in found:
            found[role] = node
    return found


def remove_node(scene, node) -> None:
    """Remove ``node`` and the display and storage nodes only it used."""
    dependants: List[object] = []
    for getter, count in (("GetNthDisplayNode", "GetNumberOfDisplayNodes"),
                          ("GetNthStorageNode", "GetNumberOfStorageNodes")):
        if hasattr(node, count):
            dependants += [getattr(node, getter)(i) for i in range(getattr(node, count)())]
    scene.RemoveNode(node)
    for dependant in dependants:
        if dependant is not None and dependant.GetScene() is scene:
            scene.RemoveNode(dependant)


class RunNodes:
    """Node of each role in ``scene``: the previous run's when there is one, else a new one."""

    def __init__(self, scene):
        self.scene = scene
        self._existing = nodes_with_role(scene)
        self.used: Set[str] = set()

    def get(self, class_name: str, role: str, name: str):
        """The node of ``role`` (renamed ``name``); a new ``class_name`` node if none or of another class."""
        node = self._existing.get(role)
        if node is not None and not node.IsA(class_name):
            remove_node(self.scene, node)
            node = None
        if node is None:
            node = self.scene.AddNewNodeByClass(class_name, name)
            node.SetAttribute(ROLE_ATTRIBUTE, role)
            self._existing[role] = node
        else:
            node.SetName(name)
        self.used.add(role)
        return node

    def existing(self, role: str):
        return self._existing.get(role)

    def remove_unused(self, prefixes=("",)) -> List[str]:
        """Remove the nodes of roles (starting with one of ``prefixes``) not used since this object was made."""
        removed = []
        for role, node in list(self._existing.items()):
            if role in self.used or not any(role.startswith(p) for p in prefixes):
                continue
            remove_node(self.scene, node)
            del self._existing[role]
            removed.append(role)
        return removed
