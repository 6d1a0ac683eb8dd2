"""Every default of the project in one table, generated from the option dataclasses.

Each option class is a frozen dataclass whose fields carry their reason in
``field.metadata["why"]``. ``python -m mrta.defaults`` prints the README's table; a test checks
that the README holds exactly this output, so the two never drift apart.
"""

from __future__ import annotations

import dataclasses
import importlib

# (module, class) of each option dataclass, in the order a table flows through the project.
OPTION_CLASSES: tuple[tuple[str, str], ...] = (
    ("mrta.data.read", "ReadingOptions"),
    ("mrta.data.schema", "SchemaOptions"),
    ("mrta.data.preprocessing", "PreprocessingOptions"),
    ("mrta.data.splits", "SplitOptions"),
    ("mrta.config", "ModelConfig"),
    ("mrta.config", "TrainConfig"),
)


def option_classes() -> list[type]:
    return [getattr(importlib.import_module(m), name) for m, name in OPTION_CLASSES]


def markdown_table() -> str:
    """A markdown table: option class, field, default, reason."""
    lines = ["| options | name | default | why |", "|---|---|---|---|"]
    for cls in option_classes():
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            value = default.value if hasattr(default, "value") else default
            why = f.metadata.get("why", "")
            if not why:
                raise ValueError(f"{cls.__name__}.{f.name} has no 'why' in its metadata")
            lines.append(f"| `{cls.__name__}` | `{f.name}` | `{value!r}` | {why} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
