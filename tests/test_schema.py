"""Schema inference from small CSVs: each column's role, kind and reason; target and task."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mrta.data.preprocessing import Preprocessor
from mrta.data.read import read_table
from mrta.data.schema import Kind, Role, SchemaOptions, TableSchema, infer_schema
from mrta.data.splits import make_splits
from mrta.errors import TableError
from mrta.task import Task

N = 40  # rows in the generated tables: above SchemaOptions.min_rows_for_cardinality


def table(**columns: list) -> pd.DataFrame:
    """A CSV with the given columns (each a list of N cells; None = empty), read back."""
    names = list(columns)
    lines = [",".join(names)]
    for i in range(N):
        cells = ["" if columns[n][i] is None else str(columns[n][i]) for n in names]
        lines.append(",".join(f'"{cell}"' if "," in cell else cell for cell in cells))
    return read_table("\n".join(lines).encode()).frame


def cycle(values: list, n: int = N) -> list:
    return [values[i % len(values)] for i in range(n)]


RNG = np.random.default_rng(0)
NOISE = [f"{x:.4f}" for x in RNG.normal(size=N)]


@pytest.mark.parametrize(
    ("cells", "role", "kind", "reason"),
    [
        (NOISE, Role.NUMERICAL, Kind.NUMBER, "numbers (40 distinct values)"),
        (
            [f"${x:,}.50" for x in range(1000, 1000 + 97 * N, 97)],
            Role.NUMERICAL,
            Kind.NUMBER_TEXT,
            "numbers written as text (like '$1,000.50'): parsed as numbers",
        ),
        (
            [f"{x}%" for x in range(N)],
            Role.NUMERICAL,
            Kind.NUMBER_TEXT,
            "numbers written as text (like '0%')",
        ),
        (
            [f"{x:,}" for x in range(1000, 1000 + 37 * N, 37)],
            Role.NUMERICAL,
            Kind.NUMBER_TEXT,
            "(like '1,000')",
        ),
        (
            cycle(["yes", "no", "No", "YES"]),
            Role.CATEGORICAL,
            Kind.BOOLEAN,
            "yes/no values ('No' / 'YES' / 'no' / 'yes'): categories",
        ),
        (cycle(["True", "False"]), Role.CATEGORICAL, Kind.BOOLEAN, "('False' / 'True')"),
        (cycle(["Y", "N", None]), Role.CATEGORICAL, Kind.BOOLEAN, "('N' / 'Y')"),
        (cycle(["t", "f"]), Role.CATEGORICAL, Kind.BOOLEAN, "yes/no values"),
        (cycle([0, 1, 1]), Role.CATEGORICAL, Kind.BOOLEAN, "0/1 values: categories"),
        (
            cycle([1, 2, 3, 4, 5]),
            Role.CATEGORICAL,
            Kind.INTEGER_CODES,
            "whole numbers with only 5 distinct values (codes or ratings): categories",
        ),
        (cycle(["red", "green", "blue"]), Role.CATEGORICAL, Kind.TEXT, "text with 3 distinct"),
        (
            [f"user{i:03d}" for i in range(N)],
            Role.IGNORED,
            Kind.IDENTIFIER,
            "an identifier: a different value in each row",
        ),
        (
            list(RNG.permutation(np.arange(7, 7 + N))),
            Role.IGNORED,
            Kind.IDENTIFIER,
            "whole numbers, a different one in each row, forming a range",
        ),
        (cycle(["k"]), Role.IGNORED, Kind.CONSTANT, "constant: 'k' in every row"),
        (cycle([None]), Role.IGNORED, Kind.EMPTY, "empty: every value is missing"),
        (cycle(["x", None]), Role.CATEGORICAL, Kind.BOOLEAN, "one value ('x') or missing"),
        (
            [f"comment number {i}" for i in range(N)],
            Role.IGNORED,
            Kind.FREE_TEXT,
            "free text: 40 distinct values in 40 rows, too many to learn as categories",
        ),
        (
            [f"w{i}" for i in range(30)] + [f"w{i}" for i in range(10)],
            Role.IGNORED,
            Kind.FREE_TEXT,
            "free text: 30 distinct values in 40 rows",
        ),
        (
            NOISE[:30] + cycle(["unknown", "n/a", "-"], 10),
            Role.NUMERICAL,
            Kind.MIXED,
            "mostly numbers (81%) mixed with text (like 'unknown', '-'): numerical, "
            "the text counts as missing",
        ),
        (
            cycle(["1", "2", "3", "unknown"]),
            Role.CATEGORICAL,
            Kind.MIXED,
            "numbers mixed with text with only 4 distinct values (codes or ratings)",
        ),
        (
            cycle(["01234", "02139", "10001", "unknown"]),
            Role.CATEGORICAL,
            Kind.TEXT,
            "codes with leading zeros with 4 distinct values",
        ),
    ],
)
def test_column_decisions(cells, role, kind, reason):
    schema = infer_schema(table(col=cells, other=NOISE))
    spec = schema.column("col")
    assert (spec.role, spec.kind) == (role, kind)
    assert reason in spec.reason
    assert spec.tokens == (("col",) if role in (Role.NUMERICAL, Role.CATEGORICAL) else ())


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        (["$1,234", "$12.50", "(7)", "-$3", "45%", "1 000", None], [1234, 12.5, -7, -3, 45, 1000]),
        (["1.234,5", "2,25", "3", "4.000.000,75"], [1234.5, 2.25, 3, 4000000.75]),
    ],
)
def test_numbers_written_as_text_are_parsed(cells, expected):
    frame = pd.DataFrame({"col": cycle(cells), "other": NOISE})
    schema = infer_schema(frame)
    assert schema.column("col").role is Role.NUMERICAL
    parsed = schema.features(frame).numerical[: len(cells), 0]
    np.testing.assert_array_equal(parsed[: len(expected)], expected)


def test_identifier_names_and_the_leading_unnamed_index():
    lines = ",rownames,customer_id,PassengerId,paid,store_id,portfolio_id,x\n" + "".join(
        f"{i},{i + 1},c{i % 30},{100 + i},{i * 1.5},s{i % 4},p{i % 120},{v}\n"
        for i, v in enumerate(NOISE * 10)
    )
    schema = infer_schema(read_table(lines.encode()).frame)
    for name, levels in [
        ("Unnamed: 0", 400),
        ("rownames", 400),
        ("PassengerId", 400),
        ("portfolio_id", 120),  # more than identifier_max_levels: entities, not codes
    ]:
        spec = schema.column(name)
        assert (spec.role, spec.kind) == (Role.IGNORED, Kind.IDENTIFIER), name
        assert (
            spec.reason
            == f"an identifier: named like one, with {levels} distinct values in 400 rows"
        )
    assert schema.column("customer_id").role is Role.CATEGORICAL  # 30 customers, 400 rows
    assert schema.column("store_id").role is Role.CATEGORICAL
    assert schema.column("paid").role is Role.NUMERICAL  # ends in "id" but is not named like one
    assert schema.notes[-1] == (
        "Ignored column(s), each for the reason given with it: 'Unnamed: 0', 'rownames', "
        "'PassengerId', 'portfolio_id'."
    )


def test_small_tables_skip_the_cardinality_rules():
    frame = read_table(b"name,x\nann,1.5\nbob,2.5\ncid,3.5\n").frame
    assert infer_schema(frame).column("name").role is Role.CATEGORICAL


def test_a_5000_level_categorical_is_kept():
    levels = [f"L{i:04d}" for i in range(5000)]
    frame = pd.DataFrame({"code": levels * 3, "x": np.arange(15000.0) % 7.5})
    spec = infer_schema(frame).column("code")
    assert (spec.role, spec.kind) == (Role.CATEGORICAL, Kind.TEXT)
    assert spec.reason == "text with 5,000 distinct values: categories"


@pytest.mark.parametrize(
    ("cells", "date_format"),
    [
        (["2021-01-15", "2022-06-30", "2023-11-02 14:30:00"], "ISO8601"),
        (["15/01/2021", "30/06/2022", "02/11/2023"], "%d/%m/%Y"),
        (["01/15/2021", "06/30/2022", "11/02/2023"], "%m/%d/%Y"),
        (["15.01.2021", "30.06.2022", "02.11.2023"], "%d.%m.%Y"),
    ],
)
def test_dates_become_numerical_parts(cells, date_format):
    frame = table(when=cycle(cells), x=NOISE)
    schema = infer_schema(frame)
    spec = schema.column("when")
    assert (spec.role, spec.kind, spec.date_format) == (Role.NUMERICAL, Kind.DATE, date_format)
    parts = (
        ("year", "month", "weekday", "hour")
        if "14:30" in cells[2]
        else ("year", "month", "weekday")
    )
    assert spec.date_parts == parts
    assert spec.tokens == tuple(f"when ({part})" for part in parts)
    assert spec.reason.startswith(f"dates (like '{cells[0].split()[0]}'")
    assert f"'when' holds dates; the model sees its {', '.join(parts)}." in schema.notes
    numbers = schema.features(frame).numerical
    assert numbers[:3, 0].tolist() == [2021, 2022, 2023]
    assert numbers[:3, 1].tolist() == [1, 6, 11]


def test_dates_can_be_ignored_and_single_parts_dropped():
    frame = table(when=cycle(["2021-01-15", "2021-03-04"]), x=NOISE)
    spec = infer_schema(frame).column("when")
    assert spec.date_parts == ("month", "weekday")  # one year only: no year token
    ignored = infer_schema(frame, options=SchemaOptions(dates="ignore")).column("when")
    assert (ignored.role, ignored.kind) == (Role.IGNORED, Kind.DATE)
    assert ignored.reason == "dates (like '2021-01-15'): ignored, as dates are set to be"


def test_timezone_aware_datetimes_are_parsed():
    frame = table(when=cycle(["2021-01-15T10:00:00Z", "2022-06-30T23:30:00+02:00"]), x=NOISE)
    schema = infer_schema(frame)
    assert schema.column("when").date_parts == ("year", "month", "weekday", "hour")
    assert schema.features(frame).numerical[:2, 3].tolist() == [10, 21]


@pytest.mark.parametrize(
    ("role", "reason"),
    [
        (Role.CATEGORICAL, "categorical, as you chose (it looked like numbers (40 distinct"),
        (Role.IGNORED, "ignored, as you chose (it looked like numbers"),
    ],
)
def test_roles_can_be_overridden(role, reason):
    frame = table(x=NOISE, c=cycle(["a", "b"]))
    spec = infer_schema(frame, roles={"x": role.value}).column("x")
    assert spec.role is role
    assert spec.reason.startswith(reason)


def test_override_to_numerical():
    frame = table(
        code=cycle(["1", "2", "3", "n/a x"]),
        when=cycle(["2021-01-15", "2022-02-01"]),
        ident=[f"u{i}" for i in range(N)],
        x=NOISE,
    )
    schema = infer_schema(
        frame,
        options=SchemaOptions(dates="ignore"),
        roles={"code": "numerical", "when": Role.NUMERICAL},
    )
    assert schema.column("code").role is Role.NUMERICAL
    assert schema.column("when").tokens == ("when (year)", "when (month)", "when (weekday)")
    assert schema.features(frame).numerical[:4, 0].tolist()[:3] == [1, 2, 3]
    with pytest.raises(TableError, match=r"Column 'ident' holds no numbers .* choose categorical"):
        infer_schema(frame, roles={"ident": "numerical"})


def test_unknown_names_and_a_target_role_are_refused():
    frame = table(species=cycle(["a", "b"]), x=NOISE)
    with pytest.raises(
        TableError, match="There is no column named 'spcies': did you mean 'species'"
    ):
        infer_schema(frame, target="spcies")
    with pytest.raises(TableError, match="no column named 'zzz': check the spelling"):
        infer_schema(frame, roles={"zzz": "ignored"})
    with pytest.raises(TableError, match="by being chosen as the target, not through its role"):
        infer_schema(frame, roles={"x": "target"})
    with pytest.raises(TableError, match="A task needs a target: choose the column"):
        infer_schema(frame, task="binary")


@pytest.mark.parametrize(
    ("cells", "task", "labels"),
    [
        (cycle(["yes", "no"]), Task.BINARY, ("no", "yes")),
        (
            cycle(["Adelie", "Gentoo", "Chinstrap"]),
            Task.MULTICLASS,
            ("Adelie", "Chinstrap", "Gentoo"),
        ),
        (cycle([0, 1]), Task.BINARY, ("0", "1")),
        (cycle([10, 2, 1]), Task.MULTICLASS, ("1", "2", "10")),
        (cycle(["TRUE", "FALSE"]), Task.BINARY, ("FALSE", "TRUE")),
        (NOISE, Task.REGRESSION, ()),
        ([f"${x},000" for x in range(N)], Task.REGRESSION, ()),
        (list(range(N)), Task.REGRESSION, ()),
    ],
)
def test_task_is_inferred_and_labels_keep_their_names(cells, task, labels):
    frame = table(y=cells, x=NOISE)
    schema = infer_schema(frame, target="y")
    assert (schema.task, schema.class_labels) == (task, labels)
    assert schema.column("y").role is Role.TARGET
    assert schema.column("y").reason.startswith(f"the target: {task.value}")
    assert schema.feature_columns == ("x",)
    y = schema.encode_target(frame)
    if task is Task.REGRESSION:
        assert y.dtype == np.float64
        np.testing.assert_array_equal(
            y, [float(str(c).replace("$", "").replace(",", "")) for c in cells]
        )
    else:
        assert [labels[i] for i in y[:2]] == [str(c) for c in cells[:2]]


def test_task_override():
    frame = table(y=cycle([1, 2, 3]), x=NOISE)
    assert infer_schema(frame, target="y").task is Task.MULTICLASS
    schema = infer_schema(frame, target="y", task="regression")
    assert schema.task is Task.REGRESSION
    assert schema.class_labels == ()


def test_rows_without_target_are_counted():
    frame = table(y=cycle(["a", "b", None, None]), x=NOISE)
    schema = infer_schema(frame, target="y")
    assert "20 row(s) have no value in the target 'y' and are left out." in schema.notes
    assert (schema.encode_target(frame)[:4] == [0, 1, -1, -1]).all()


@pytest.mark.parametrize(
    ("cells", "task", "message"),
    [
        (
            cycle(["yes", None]),
            None,
            "The target 'y' has a single class ('yes') in every row that has a value; a "
            "classifier needs at least two: choose another target.",
        ),
        (cycle([3.5]), None, "The target 'y' has the same value (3.5) in every row: choose"),
        (cycle([None]), None, "The target 'y' has no values: choose another target."),
        (
            cycle(["a", "b"]),
            "regression",
            "The target 'y' holds text (like 'a'), so it cannot be a regression target: choose "
            "binary or multiclass.",
        ),
        (cycle(["a", "b", "c"]), "binary", "The target 'y' has 3 classes, not two: choose"),
        (
            [f"c{i}" for i in range(N)],
            None,
            "The target 'y' has 40 distinct values, more than 30 classes: if it is a number",
        ),
        (cycle(["2021-01-02", "2022-01-03"]), None, "holds dates, which cannot be predicted"),
    ],
)
def test_unusable_targets_are_refused(cells, task, message):
    frame = table(y=cells, x=NOISE)
    with pytest.raises(TableError) as error:
        infer_schema(frame, target="y", task=task, options=SchemaOptions(max_classes=30))
    assert message in str(error.value)


def test_unknown_labels_in_new_data_are_refused():
    schema = infer_schema(table(y=cycle(["a", "b"]), x=NOISE), target="y")
    new = pd.DataFrame({"y": ["a", "zebra"], "x": [1.0, 2.0]})
    with pytest.raises(TableError, match=r"holds label\(s\) the model does not know \('zebra'\)"):
        schema.encode_target(new)


@pytest.mark.parametrize(
    ("columns", "streams"),
    [
        ({"x": NOISE, "z": NOISE[::-1]}, ("numerical",)),
        ({"c": cycle(["a", "b"]), "d": cycle(["p", "q", "r"])}, ("categorical",)),
        ({"x": NOISE, "c": cycle(["a", "b"])}, ("numerical", "categorical")),
    ],
)
def test_streams(columns, streams):
    schema = infer_schema(table(**columns, y=cycle(["u", "v"])), target="y")
    assert schema.streams == streams
    features = schema.features(table(**columns, y=cycle(["u", "v"])))
    assert features.numerical.shape == (N, len(schema.numerical_tokens))
    assert features.categorical.shape == (N, len(schema.categorical_tokens))


def test_a_table_with_nothing_to_learn_from_is_refused():
    frame = table(id=[f"u{i}" for i in range(N)], k=cycle(["const"]), y=cycle(["a", "b"]))
    with pytest.raises(TableError, match=r"No column is left to learn from .* set at least one"):
        infer_schema(frame, target="y")


def test_missing_feature_columns_are_named():
    frame = table(x=NOISE, c=cycle(["a", "b"]), d=cycle(["p", "q"]))
    schema = infer_schema(frame)
    with pytest.raises(TableError, match=r"lacks the column\(s\) 'c', 'd' that the model"):
        schema.features(frame[["x"]])


def test_new_data_parses_like_the_training_data():
    schema = infer_schema(table(price=[f"${x},000" for x in range(N)], c=cycle([1, 2, 3])))
    new = pd.DataFrame({"price": ["$5,000", "free", None], "c": [2.0, np.nan, 7.0]})
    features = schema.features(new)
    np.testing.assert_array_equal(features.numerical[:, 0], [5000, np.nan, np.nan])
    assert features.categorical[:, 0].tolist() == ["2", None, "7"]


def test_json_round_trip():
    frame = table(
        y=cycle(["a", "b"]),
        when=cycle(["2021-01-15", "2022-02-01"]),
        x=NOISE,
        p=[f"{x}%" for x in range(N)],
    )
    schema = infer_schema(frame, target="y", roles={"x": "categorical"})
    again = TableSchema.from_dict(json.loads(json.dumps(schema.to_dict())))
    assert again == schema


SAMPLE_DATA = Path(__file__).resolve().parent.parent / "sample_data"
# file: (target, task, {column: (role, kind or None)}), as sample_data/README.md documents them
SAMPLE_TABLES = {
    "penguins.csv": (
        "species",
        Task.MULTICLASS,
        {
            "island": (Role.CATEGORICAL, Kind.TEXT),
            "bill_length_mm": (Role.NUMERICAL, Kind.NUMBER),
            "body_mass_g": (Role.NUMERICAL, Kind.NUMBER),
            "sex": (Role.CATEGORICAL, Kind.TEXT),
        },
    ),
    "wage.csv": (
        "wage",
        Task.REGRESSION,
        {
            "rownames": (Role.IGNORED, Kind.IDENTIFIER),
            "region": (Role.IGNORED, Kind.CONSTANT),
            "age": (Role.NUMERICAL, Kind.NUMBER),
            "education": (Role.CATEGORICAL, Kind.TEXT),
        },
    ),
    "hmda.csv": (
        "deny",
        Task.BINARY,
        {
            "rownames": (Role.IGNORED, Kind.IDENTIFIER),
            "lvrat": (Role.NUMERICAL, Kind.NUMBER),
            "chist": (Role.CATEGORICAL, Kind.INTEGER_CODES),
            "afam": (Role.CATEGORICAL, Kind.BOOLEAN),
        },
    ),
    "loans.csv.gz": (
        "interest_rate",
        Task.REGRESSION,
        {
            "rownames": (Role.IGNORED, Kind.IDENTIFIER),
            "annual_income": (Role.NUMERICAL, Kind.NUMBER),
            "state": (Role.CATEGORICAL, Kind.TEXT),
            "term": (Role.CATEGORICAL, Kind.INTEGER_CODES),
        },
    ),
    "synthetic_binary.csv": (
        "churned",
        Task.BINARY,
        {"plan": (Role.CATEGORICAL, Kind.TEXT), "monthly_spend": (Role.NUMERICAL, Kind.NUMBER)},
    ),
    "synthetic_regression.csv": (
        "net_revenue",
        Task.REGRESSION,
        {
            "customer_segment": (Role.CATEGORICAL, Kind.TEXT),
            "avg_item_price": (Role.NUMERICAL, Kind.NUMBER),
        },
    ),
    "synthetic_set.csv": (
        "aggressive",
        Task.BINARY,
        {
            "portfolio_id": (Role.IGNORED, Kind.IDENTIFIER),
            "asset_class": (Role.CATEGORICAL, Kind.TEXT),
            "amount_k": (Role.NUMERICAL, Kind.NUMBER),
        },
    ),
}


def test_every_sample_table_is_documented_here():
    files = {path.name for path in SAMPLE_DATA.iterdir() if ".csv" in path.suffixes}
    assert files == set(SAMPLE_TABLES)


@pytest.mark.parametrize("name", sorted(SAMPLE_TABLES))
def test_sample_tables_are_typed_as_documented(name):
    target, task, expected = SAMPLE_TABLES[name]
    result = read_table(SAMPLE_DATA / name)
    assert result.compressed == name.endswith(".gz")
    assert result.notes == ()
    schema = infer_schema(result.frame, target=target)
    assert schema.task is task
    assert schema.column(target).role is Role.TARGET
    if name == "penguins.csv":
        assert schema.class_labels == ("Adelie", "Chinstrap", "Gentoo")
    for column, (role, kind) in expected.items():
        spec = schema.column(column)
        assert (spec.role, spec.kind) == (role, kind), (column, spec.reason)
    # the whole pipeline runs on it
    splits = make_splits(result.frame, schema)
    preprocessor = Preprocessor.fit(result.frame.iloc[list(splits.train)], schema)
    encoded = preprocessor.transform(result.frame.iloc[list(splits.test)])
    assert torch.isfinite(encoded.numerical).all()
    assert len(encoded) == len(splits.test) == len(encoded.target)
