"""README.md's settings table is the contract of `ledger.settings.Settings`: every setting is in it under its
variable's name, with the default the code has, and it lists no variable the code does not read."""

import re
from pathlib import Path

from ledger.settings import ENV_PREFIX, Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def documented_defaults() -> dict[str, str]:
    """Each variable of the table -> its documented default, as written. A row may name several variables, the later
    ones by their suffix only (`LEDGER_POSTGRES_HOST`, `_PORT`), with one default each or one for all."""
    table = README.read_text(encoding="utf-8").split("| variable | default | meaning |", 1)[1].split("\n\n", 1)[0]
    found: dict[str, str] = {}
    for names, default in re.findall(r"^\| ([^|]+) \| ([^|]+) \|", table, re.MULTILINE):
        variables = re.findall(r"`([A-Z_]+)`", names)
        if not variables:
            continue  # the separator row
        stem = variables[0].rsplit("_", 1)[0]
        variables = [variables[0], *(f"{stem}{name}" if name.startswith("_") else name for name in variables[1:])]
        parts = [part.strip() for part in default.split(",")] if len(variables) > 1 else [default.strip()]
        if len(parts) != len(variables):
            parts = [default.strip()] * len(variables)
        found |= dict(zip(variables, parts, strict=True))
    return found


def written(value: object) -> str | None:
    """A default as the table writes it, in backticks; None for none (the table says what happens then)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def test_every_setting_is_in_the_readme_table_with_its_default() -> None:
    documented = documented_defaults()
    for name, field in Settings.model_fields.items():
        variable = ENV_PREFIX + name.upper()
        assert variable in documented, f"{variable} is not in README.md's settings table"
        expected, says = written(field.default), documented[variable]
        if expected is None:
            assert "`" not in says.split(":")[0], f"{variable} has no default; README says {says!r}"
        else:
            assert says == expected, f"{variable}: the default is {expected}; README says {says!r}"


def test_the_readme_table_lists_no_variable_the_settings_do_not_read() -> None:
    read = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    assert set(documented_defaults()) - read == set()
