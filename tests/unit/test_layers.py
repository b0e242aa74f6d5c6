"""The README's picture of the layers says what the import-linter contracts in pyproject.toml enforce.

`lint-imports` (run by scripts/test) checks the code against the contracts; this test checks the picture against the
contracts: every module of the three packages is in the picture, and a module drawn above another is never in a
lower layer of a contract.
"""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ledger", "projections", "consumers")


def _picture() -> list[list[str]]:
    """The rows of the README's layer picture, each as the module names drawn on it (separator rows dropped)."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Layout", 1)[1].split("```", 2)[1]
    rows = []
    for line in block.splitlines():
        paths = re.findall(r"\b((?:ledger|projections|consumers)(?:/\w+)*)(?:\.py|/)(?=\s|$)", line)
        if paths:
            rows.append([path.replace("/", ".") for path in paths])
    return rows


def _contract_layers() -> list[list[list[str]]]:
    """Each layers contract as its layers (top first), each layer as full module names."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    contracts = []
    for contract in config:
        if contract["type"] != "layers":
            continue
        containers = contract.get("containers", [""])
        for container in containers:
            prefix = f"{container}." if container else ""
            contracts.append([[prefix + name.strip() for name in re.split(r"[|:]", layer) if name.strip()]
                              for layer in contract["layers"]])
    return contracts


def _modules() -> set[str]:
    found = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] != "__init__":
                found.add(".".join(parts))
    return found


def _drawn_row(module: str, rows: list[list[str]]) -> int | None:
    """The row that draws the module, or its package (`ledger/audit/` draws every module in it)."""
    for number, row in enumerate(rows):
        if any(module == name or module.startswith(f"{name}.") for name in row):
            return number
    return None


def test_every_module_is_in_the_picture() -> None:
    rows = _picture()
    missing = sorted(module for module in _modules() if _drawn_row(module, rows) is None)
    assert missing == []


def test_the_picture_never_draws_a_lower_layer_above_a_higher_one() -> None:
    rows = _picture()
    wrong = []
    for layers in _contract_layers():
        drawn = [(index, name, _drawn_row(name, rows)) for index, layer in enumerate(layers) for name in layer]
        for index, name, row in drawn:
            for other_index, other, other_row in drawn:
                # `name` is in a higher layer than `other`: it must be drawn on a row above, or on the same row
                # when the picture draws them together as one package (the package's own contract orders them).
                if index < other_index and row is not None and other_row is not None and row > other_row:
                    wrong.append(f"{name} (row {row}) is drawn below {other} (row {other_row})")
    assert wrong == []
