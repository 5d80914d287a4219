"""Parameters injected into a notebook template as data, papermill-style.

A template has one code cell tagged ``parameters`` that holds the defaults. Rendering adds
a cell tagged ``injected-parameters`` right after it whose source is *generated only from
literals*: every value is validated to be a JSON-like primitive (None, bool, int, finite
float, str, and lists/dicts of those with string keys) and written with :func:`repr`,
which for these types is a Python literal that evaluates back to the same value. The
generated source is then checked with :func:`ast.literal_eval` per assignment, so an
experiment name such as ``"'); __import__('os').system('rm -rf /') #"`` can only ever
become a string, never code.
"""

from __future__ import annotations

import ast
import keyword
import math
from collections.abc import Mapping
from typing import Any

import nbformat

from abkit.errors import ConfigError

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"

_MAX_DEPTH = 8


def _check_value(name: str, value: Any, depth: int = 0) -> None:
    if depth > _MAX_DEPTH:
        raise ConfigError("value nested too deeply", field=name)
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"must be a finite number, got {value!r}", field=name)
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_value(name, item, depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"mapping keys must be strings, got {key!r}", field=name)
            _check_value(name, item, depth + 1)
        return
    raise ConfigError(
        f"a report parameter must be None, bool, int, float, str, list or dict; "
        f"got {type(value).__name__}",
        field=name,
    )


def _literal(value: Any) -> str:
    """The Python literal of a validated value (tuples become lists, as JSON would)."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k!r}: {_literal(v)}" for k, v in value.items()) + "}"
    # bool before int is irrelevant here: repr(True) == "True" is the literal either way.
    return repr(value)


def validate_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Check names are plain identifiers and values are primitive data; return a copy."""
    checked: dict[str, Any] = {}
    for name, value in parameters.items():
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ConfigError(f"not a valid parameter name: {name!r}", field=str(name))
        _check_value(name, value)
        checked[name] = value
    return checked


def parameters_source(parameters: Mapping[str, Any]) -> str:
    """Source of the injected-parameters cell: one ``name = <literal>`` line per value."""
    checked = validate_parameters(parameters)
    lines = ["# Parameters injected by abkit.report.render_report (data only)."]
    for name, value in checked.items():
        literal = _literal(value)
        # Belt and braces: the literal must parse as a literal and give the value back.
        expected = list(value) if isinstance(value, tuple) else value
        if ast.literal_eval(literal) != expected:  # pragma: no cover - repr is exact
            raise ConfigError("value does not round-trip as a literal", field=name)
        lines.append(f"{name} = {literal}")
    return "\n".join(lines) + "\n"


def template_parameter_names(nb: nbformat.NotebookNode) -> list[str]:
    """Names assigned in the template's ``parameters`` cell (its defaults)."""
    cell = _parameters_cell_index(nb)
    if cell is None:
        return []
    tree = ast.parse(nb.cells[cell].source)
    names: list[str] = []
    for node in tree.body:
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Name):
                names.append(target.id)
    return names


def _parameters_cell_index(nb: nbformat.NotebookNode) -> int | None:
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
            return index
    return None


def inject_parameters(
    nb: nbformat.NotebookNode, parameters: Mapping[str, Any], *, template: str = "template"
) -> nbformat.NotebookNode:
    """Insert an ``injected-parameters`` cell after the ``parameters`` cell (in place).

    Names the template does not declare are refused: a typo would otherwise be silently
    ignored and the report rendered with the default.
    """
    checked = validate_parameters(parameters)
    declared = template_parameter_names(nb)
    unknown = sorted(set(checked) - set(declared))
    if unknown:
        raise ConfigError(
            f"{template} has no parameter {', '.join(unknown)}; it accepts: "
            f"{', '.join(declared) or 'none'}",
            field=unknown[0],
        )
    # Drop a previously injected cell so re-rendering an executed notebook is idempotent.
    nb.cells = [c for c in nb.cells if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    cell = nbformat.v4.new_code_cell(
        source=parameters_source(checked), metadata={"tags": [INJECTED_TAG]}
    )
    index = _parameters_cell_index(nb)
    nb.cells.insert(0 if index is None else index + 1, cell)
    return nb
