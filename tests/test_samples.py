"""The sample catalogue matches the files and sample_data/README.md."""

import pandas as pd

from mrta.data.samples import SAMPLE_DIR, SAMPLE_TABLES


def test_every_data_file_is_catalogued_with_its_target():
    files = {p.name for p in SAMPLE_DIR.iterdir() if p.name.endswith((".csv", ".csv.gz"))}
    assert files == {t.file for t in SAMPLE_TABLES}
    readme = (SAMPLE_DIR / "README.md").read_text()
    for table in SAMPLE_TABLES:
        assert f"`{table.file}`" in readme and f"`{table.target}`" in readme
        assert table.target in pd.read_csv(table.path, nrows=5).columns
