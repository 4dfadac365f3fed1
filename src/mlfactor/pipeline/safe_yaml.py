"""Parse a pipeline file's YAML with bounded alias expansion.

``yaml.safe_load`` builds aliases (``*name``) as shared references, so a
"billion laughs" file loads in microseconds and then explodes in whatever
walks it (parameter checks, JSON, papermill). :func:`load_bounded` composes
the node graph first, counts the values it would expand to (each node once,
iteratively) and refuses a file over :data:`MAX_VALUES` or one whose alias
refers to itself, before anything is built.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_VALUES = 100_000
"""Most scalars, lists and mappings a pipeline file may expand to (a 1 200-step file needs ~15 000)."""

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ExpansionError(ValueError):
    """Raised when a YAML document expands beyond :data:`MAX_VALUES` or through a self-referring alias."""


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def expanded_size(root: yaml.Node, limit: int = MAX_VALUES) -> int:
    """Values ``root`` expands to with every alias copied out; ExpansionError past ``limit`` or on a cycle."""
    size: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            size[key] = 1 + sum(size[id(child)] for child in _children(node))
            if size[key] > limit:
                raise ExpansionError(
                    f"the file expands to more than {limit} values through YAML aliases (*name); "
                    "write the values out or use fewer nested aliases."
                )
            continue
        if key in size:
            continue
        if key in open_nodes:
            raise ExpansionError("a YAML alias (*name) refers to a value that contains it; remove the cycle.")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in size)
    return size[id(root)]


def load_bounded(raw: bytes) -> Any:
    """Parse one YAML document from ``raw`` safely; yaml.YAMLError or ExpansionError on failure."""
    loader = _Loader(raw)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        expanded_size(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()
