"""Every default of the project in one table, generated from the option dataclasses.

Each option class is a frozen dataclass whose fields carry their reason in
``field.metadata["why"]``. ``python -m mrta.cli.defaults`` prints the README's table; a test
checks that the README holds exactly this output, so the two never drift apart.
"""

from __future__ import annotations

import dataclasses

from mrta.config import ModelConfig, TrainConfig
from mrta.data.preprocessing import PreprocessingOptions
from mrta.data.read import ReadingOptions
from mrta.data.schema import SchemaOptions
from mrta.data.splits import SplitOptions

#: The option dataclasses, in the order a table flows through the project.
OPTION_CLASSES: tuple[type, ...] = (
    ReadingOptions,
    SchemaOptions,
    PreprocessingOptions,
    SplitOptions,
    ModelConfig,
    TrainConfig,
)


def markdown_table() -> str:
    """A markdown table: option class, field, default, reason."""
    lines = ["| options | name | default | why |", "|---|---|---|---|"]
    for cls in OPTION_CLASSES:
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
