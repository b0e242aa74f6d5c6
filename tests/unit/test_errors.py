"""Every operating error and every exit code lives in ledger/errors.py, and docs/cli.md's table says each one."""

import importlib
import pkgutil
import re
from pathlib import Path

import consumers
import ledger
import projections
from ledger import errors

CLI_DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def _all_modules() -> None:
    for package in (ledger, projections, consumers):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if not info.name.endswith("__main__"):  # running it would start the command line
                importlib.import_module(info.name)


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    return found.union(*(_subclasses(sub) for sub in found)) if found else found


def _documented() -> dict[int, str]:
    table = CLI_DOC.read_text().split("## Exit codes", 1)[1]
    return {int(code): names for code, names in re.findall(r"^\| (\d+) \| ([^|]*) \|", table, re.MULTILINE)}


def test_every_operating_error_is_defined_in_ledger_errors() -> None:
    _all_modules()
    elsewhere = sorted(f"{cls.__module__}.{cls.__qualname__}" for cls in _subclasses(errors.LedgerError)
                       if cls.__module__ != errors.__name__)
    assert elsewhere == []


def test_every_exit_code_is_in_the_documented_table_under_its_name() -> None:
    """Every operating error, whether it sets its exit code or inherits it, is named in the row of its code."""
    _all_modules()
    documented = _documented()
    codes = {cls.__name__: cls.exit_code for cls in _subclasses(errors.LedgerError) | {errors.LedgerError}}
    codes |= {name: value for name, value in vars(errors).items() if name.startswith("EXIT_")}
    for name, code in codes.items():
        assert f"`{name}`" in documented.get(code, ""), f"{name} (exit {code}) is not in docs/cli.md's table"
    assert set(documented) - {0, 2} <= set(codes.values()) | {2}, "the table lists a code no error has"
