"""Hostile runs: crafted run directories and zips, their checksums recomputed as a forger would,
are refused with one RunError that names the problem, before anything of the size they declare
is allocated (:mod:`mrta.runs.bounds`).

Memory is measured per case in a fresh process: one child interpreter imports mrta once (the
import alone takes seconds on a busy 2-core machine) and forks a new process for each case, which
reports its own ``ru_maxrss`` before and after the load; each case's growth must stay under
:data:`MEMORY_CAP`. Each forked process also runs under an address-space limit, so that a
regression fails its case instead of exhausting the machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from mrta.errors import RunError
from mrta.nn.model import build_meta_model
from mrta.runs.bounds import JSON_BYTES_ENV, MAX_JSON_DEPTH, RUN_BYTES_ENV
from mrta.runs.manifest import CONTROL_FILE, CONTROL_WEIGHTS, MANIFEST, TABLE_FILE, WEIGHTS
from mrta.runs.manifest import file_digest as digest
from mrta.runs.run import Run

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "run_v1_row"  # a tiny saved run, with its rows
MEMORY_CAP = 640 << 20  # bytes a refused case may add to its process's peak (the issue: 1 GB)
ADDRESS_HEADROOM = 4 << 30  # address space a forked case may add before it fails


# -- crafting ----------------------------------------------------------------------------------
def copy_run(tmp_path: Path, name: str = "run") -> Path:
    """A fresh copy of the tiny saved run."""
    return Path(shutil.copytree(FIXTURE, tmp_path / name))


def forge(run: Path, name: str, data: bytes) -> None:
    """Write `data` as the run's file `name` and recompute its checksum, as a forger would."""
    (run / name).write_bytes(data)
    manifest = json.loads((run / MANIFEST).read_text())
    manifest["files"][name] = digest(data)
    (run / MANIFEST).write_text(json.dumps(manifest))


def forge_json(run: Path, name: str, edit: Callable[[Any], None]) -> None:
    """Edit a JSON file of the run in place, its checksum recomputed."""
    content = json.loads((run / name).read_text())
    edit(content)
    forge(run, name, json.dumps(content).encode())


def safetensors_parts(data: bytes) -> tuple[dict[str, Any], bytes]:
    """A safetensors file's header (as JSON) and its data."""
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + length]), data[8 + length :]


def safetensors_bytes(header: Any, data: bytes) -> bytes:
    """A safetensors file of `header` (any JSON, or bytes as they are) and `data`."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def forge_header(run: Path, name: str, edit: Callable[[dict[str, Any]], None]) -> None:
    """Edit the header of the run's safetensors file `name`, its data kept."""
    header, data = safetensors_parts((run / name).read_bytes())
    edit(header)
    forge(run, name, safetensors_bytes(header, data))


def model_spec(run: Path) -> dict[str, Any]:
    return json.loads((run / "config.json").read_text())["model"]


def set_vocabulary(size: int | float) -> Callable[[Any], None]:
    def edit(config: Any) -> None:
        config["model"]["vocabulary_sizes"][0] = size

    return edit


def set_d_model(config: Any) -> None:
    config["model"]["config"]["d_model"] = 8192


def add_control(run: Path) -> None:
    """Make the run format 2 with a control: a copy of the model, the model's history."""
    history = json.loads((run / "history.json").read_text())
    facts = {
        "trained": True,
        "permutation_seed": 1,
        "steps": history["steps"],
        "epochs": history["epochs"],
        "metric": "roc_auc",
        "value": 0.5,
        "seconds": 1.0,
        "test_rows": 10,
        "training": history,
    }
    forge(run, CONTROL_FILE, json.dumps(facts).encode())
    forge(run, TABLE_FILE, json.dumps({"table": None, "test_table": None}).encode())
    forge(run, CONTROL_WEIGHTS, (run / WEIGHTS).read_bytes())
    manifest = json.loads((run / MANIFEST).read_text())
    manifest["format_version"] = 2
    (run / MANIFEST).write_text(json.dumps(manifest))


def transpose_first_matrix(header: dict[str, Any]) -> None:
    """Swap the shape of the first non-square matrix: same bytes, another shape."""
    name = next(
        key
        for key, entry in header.items()
        if key != "__metadata__" and len(entry["shape"]) == 2 and len(set(entry["shape"])) == 2
    )
    header[name]["shape"] = header[name]["shape"][::-1]


def overlap_second_tensor(header: dict[str, Any]) -> None:
    """Move the second tensor (by offset) 4 bytes back, into the first."""
    entries = sorted(
        (entry for key, entry in header.items() if key != "__metadata__"),
        key=lambda entry: entry["data_offsets"][0],
    )
    entries[1]["data_offsets"] = [offset - 4 for offset in entries[1]["data_offsets"]]


def claim_d_model_8192(run: Path) -> None:
    """config.json and the header both claim d_model 8192 (~5 GB of tensors); no data."""
    forge_json(run, "config.json", set_d_model)
    expected = build_meta_model(model_spec(run)).state_dict()
    header, begin = {}, 0
    for name, tensor in expected.items():
        end = begin + tensor.numel() * 4
        header[name] = {"dtype": "F32", "shape": list(tensor.shape), "data_offsets": [begin, end]}
        begin = end
    forge(run, WEIGHTS, safetensors_bytes(header, b""))


def consistent_vocabulary(size: int) -> Callable[[Path], None]:
    """config.json and preprocessor.json both declare a first vocabulary of `size` (its levels
    all alike: nothing reads them apart)."""

    def craft(run: Path) -> None:
        forge_json(run, "config.json", set_vocabulary(size))
        preprocessor = json.loads((run / "preprocessor.json").read_text())
        preprocessor["vocabularies"][0] = "LEVELS"
        levels = b"[" + (b'"a level",' * (size - 1))[:-1] + b"]"
        forge(
            run, "preprocessor.json", json.dumps(preprocessor).encode().replace(b'"LEVELS"', levels)
        )

    return craft


def link_weights_to_dev_zero(run: Path) -> None:
    (run / WEIGHTS).unlink()
    (run / WEIGHTS).symlink_to("/dev/zero")


def link_weights_elsewhere(run: Path) -> None:
    """weights.safetensors a link to the same bytes outside the run: its checksum matches."""
    shutil.move(run / WEIGHTS, run.parent / "elsewhere.safetensors")
    (run / WEIGHTS).symlink_to(run.parent / "elsewhere.safetensors")


def add_control_of_other_shapes(run: Path) -> None:
    add_control(run)
    forge_header(run, CONTROL_WEIGHTS, transpose_first_matrix)


def fill_metrics_to_the_json_limit(run: Path) -> None:
    """metrics.json a list of 4.19 million one-emoji strings: the run's JSON just within the
    default bound on values, the costliest values to parse per byte."""
    forge(run, "metrics.json", b"[" + '"\U0001f600",'.encode() * 4_190_000 + b"0]")


def zip_folder(run: Path) -> Path:
    """The run directory zipped, as the dashboard's upload takes it."""
    target = run.with_suffix(".zip")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(run.iterdir()):
            archive.write(file, f"run/{file.name}")
    return target


# One crafted run per case: how it is made, the environment it loads under, and what the
# refusal must say.
CASES: dict[str, tuple[Callable[[Path], None], dict[str, str], str]] = {
    "vocabulary of 25 million": (
        lambda run: forge_json(run, "config.json", set_vocabulary(25_000_000)),
        {},
        r"does not match its preprocessor \(their vocabulary_sizes differ\)",
    ),
    "vocabulary of 1 million, preprocessor too": (
        consistent_vocabulary(1_000_000),
        {},
        r"weights in weights\.safetensors .* do not fit its model \(tokenizer\.embeddings\.0",
    ),
    "vocabulary of 7 million, preprocessor too": (
        consistent_vocabulary(7_000_000),
        {},
        rf"JSON files .* hold \d+\.\d MiB, more than the 64\.0 MiB .*{JSON_BYTES_ENV}",
    ),
    "vocabulary of 1.6e13": (
        lambda run: forge_json(run, "config.json", set_vocabulary(16_000_000_000_000)),
        {},
        r"declares a vocabulary size \(categorical token 1\) of 16,000,000,000,000 in config",
    ),
    "vocabulary of 1.6e13, a float": (
        lambda run: forge_json(run, "config.json", set_vocabulary(1.6e13)),
        {},
        r"vocabulary size \(categorical token 1\) of 16,000,000,000,000\.0 .* whole number",
    ),
    "d_model 8192": (
        lambda run: forge_json(run, "config.json", set_d_model),
        {},
        rf"declares 4\.\d GiB of weights .* than the 2\.0 GiB .*set {RUN_BYTES_ENV} to at least",
    ),
    "d_model 8192, limit raised": (
        lambda run: forge_json(run, "config.json", set_d_model),
        {RUN_BYTES_ENV: str(1 << 40)},
        r"do not fit its model \(.* of shape .* config\.json declares",
    ),
    "d_model 8192 in the header too, no data": (
        claim_d_model_8192,
        {RUN_BYTES_ENV: str(1 << 40)},
        r"weights\.safetensors .* not a valid safetensors file \(its tensors end at byte "
        r"[\d,]+ of its data, but the file holds 0 bytes",
    ),
    "header length beyond the file": (
        lambda run: forge(run, WEIGHTS, struct.pack("<Q", 1 << 60) + (run / WEIGHTS).read_bytes()),
        {},
        r"weights\.safetensors .* \(its header length 1,152,921,504,606,846,976 exceeds the file",
    ),
    "overlapping offsets": (
        lambda run: forge_header(run, WEIGHTS, overlap_second_tensor),
        {},
        r"weights\.safetensors .* not a valid safetensors file \(tensor '.*' overlaps tensor",
    ),
    "shapes that disagree with config.json": (
        lambda run: forge_header(run, WEIGHTS, transpose_first_matrix),
        {},
        r"do not fit its model \(.* of shape \(\d+, \d+\), where the model that config\.json",
    ),
    "100,000 nested brackets in config.json": (
        lambda run: forge(run, "config.json", b"[" * 100_000),
        {},
        rf"config\.json .* nests 100,000 levels deep, more than the {MAX_JSON_DEPTH}",
    ),
    "100,000 nested brackets in the header": (
        lambda run: forge(run, WEIGHTS, safetensors_bytes(b"[" * 100_000, b"")),
        {},
        r"header of the file weights\.safetensors .* nests 100,000 levels deep",
    ),
    "20 million values in metrics.json": (
        lambda run: forge(run, "metrics.json", b"[" + b"[]," * 20_000_000 + b"[]]"),
        {},
        rf"hold up to 40,0\d\d,\d{{3}} values, more than the 4,194,304 .*{JSON_BYTES_ENV}",
    ),
    "4.19 million strings, within the JSON bounds": (
        fill_metrics_to_the_json_limit,
        {},
        r"holds settings this version cannot read \(dictionary update sequence element",
    ),
    "weights a link to /dev/zero": (
        link_weights_to_dev_zero,
        {},
        r"file weights\.safetensors .* is a link: runs are read from regular files only",
    ),
    "weights a link to a copy with its checksum": (
        link_weights_elsewhere,
        {},
        r"file weights\.safetensors .* is a link",
    ),
    "control shapes that disagree": (
        add_control_of_other_shapes,
        {},
        r"weights in control\.safetensors .* do not fit its model",
    ),
}


def craft(tmp_path: Path, case: str) -> Path:
    """The crafted run directory of `case`, under `tmp_path`."""
    run = copy_run(tmp_path, re.sub(r"\W+", "_", case))
    CASES[case][0](run)
    return run


def craft_linked_folder(tmp_path: Path) -> Path:
    """A link to an intact run directory."""
    link = tmp_path / "linked"
    link.symlink_to(copy_run(tmp_path, "real"), target_is_directory=True)
    return link


def craft_zip(tmp_path: Path) -> Path:
    """A zip of the run whose config claims a vocabulary of 25 million."""
    return zip_folder(craft(tmp_path / "zipped", "vocabulary of 25 million"))


# -- loading each case in a fresh process --------------------------------------------------------
CHILD = textwrap.dedent(
    """
    import gc, json, os, resource, sys
    from mrta.data.read import read_table
    from mrta.data.stream import scan_table
    from mrta.errors import MrtaError
    from mrta.pipelines.archive import open_zip
    from mrta.runs.run import Run

    OPS = {
        "run": Run.load,
        "zip": open_zip,
        "table": read_table,
        "scan": lambda path: scan_table(path, max_rows=1_000_000, chunk_rows=100_000),
    }

    def measure(case):
        os.environ.update(case["env"])
        vm = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
        limit = vm + case["headroom"]
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        gc.collect()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            OPS[case["op"]](case["path"])
            outcome, message, is_run_error = "loaded", "", False
        except BaseException as error:
            outcome, message = type(error).__name__, str(error)[:2000]
            is_run_error = isinstance(error, MrtaError)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {"before": before * 1024, "after": after * 1024, "outcome": outcome,
                "message": message, "is_run_error": is_run_error}

    for line in sys.stdin:
        case = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                result = measure(case)
            except BaseException as error:
                result = {"outcome": "harness failed", "message": repr(error)}
            sys.stdout.write(json.dumps({"id": case["id"], **result}) + "\\n")
            sys.stdout.flush()
            os._exit(0)
        os.waitpid(pid, 0)
    """
)


def load_in_fresh_processes(
    cases: dict[str, dict[str, Any]], root: Path = ROOT, headroom: int = ADDRESS_HEADROOM
) -> dict[str, dict[str, Any]]:
    """Open each case (``path``; ``op``: run, zip, table or scan; ``env``) in a process of its
    own, forked from one child interpreter that imports `root`'s mrta; each case's outcome and
    ``ru_maxrss`` (bytes) before and after."""
    lines = "".join(
        json.dumps({"id": key, "headroom": headroom, **case}) + "\n" for key, case in cases.items()
    )
    environment = {**os.environ, "PYTHONPATH": str(root)}
    finished = subprocess.run(
        [sys.executable, "-c", CHILD],
        input=lines,
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
        cwd=root,
    )
    results = [json.loads(line) for line in finished.stdout.splitlines()]
    assert len(results) == len(cases), finished.stderr[-3000:]
    return {result["id"]: result for result in results}


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every crafted case, loaded in a fresh process each."""
    base = tmp_path_factory.mktemp("hostile")
    cases = {
        case: {"path": str(craft(base, case)), "op": "run", "env": env}
        for case, (_, env, _) in CASES.items()
    }
    cases["the run directory a link"] = {
        "path": str(craft_linked_folder(base)),
        "op": "run",
        "env": {},
    }
    cases["a zip claiming a vocabulary of 25 million"] = {
        "path": str(craft_zip(base)),
        "op": "zip",
        "env": {},
    }
    return load_in_fresh_processes(cases)


MEASURED_MESSAGES = {
    **{case: message for case, (_, _, message) in CASES.items()},
    "the run directory a link": r"The run directory '.*linked' is a link: runs are read from a",
    "a zip claiming a vocabulary of 25 million": r"does not match its preprocessor",
}


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB and /proc: Linux")
@pytest.mark.parametrize("case", list(MEASURED_MESSAGES))
def test_a_crafted_run_is_refused_within_the_memory_cap(case, measured):
    result = measured[case]
    assert result["outcome"] in ("RunError", "ArchiveError"), result
    assert result["is_run_error"], result
    assert re.search(MEASURED_MESSAGES[case], result["message"]), result["message"]
    growth = result["after"] - result["before"]
    assert growth < MEMORY_CAP, f"{case}: {growth / 2**20:.0f} MiB above the start"


# -- in process: what is checked, and that the checks pass intact runs ---------------------------
def test_an_intact_run_loads_as_views_of_one_buffer_with_no_meta_tensor(tmp_path):
    run = copy_run(tmp_path)
    add_control(run)
    loaded = Run.load(run)
    for model in (loaded.model, loaded.control.model):
        tensors = list(model.state_dict().values())
        assert all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
        assert all(p.requires_grad for p in model.parameters()) and not model.training
        start = min(t.data_ptr() for t in tensors)
        end = max(t.data_ptr() + t.nbytes for t in tensors)
        assert end - start == sum(t.nbytes for t in tensors)  # one buffer: the data, read once
    model, control = (m.state_dict().values() for m in (loaded.model, loaded.control.model))
    assert all(torch.equal(a, b) for a, b in zip(model, control, strict=True))


def test_the_limits_are_read_from_the_environment_and_can_be_raised(tmp_path, monkeypatch):
    run = copy_run(tmp_path)
    monkeypatch.setenv(RUN_BYTES_ENV, "1000")
    with pytest.raises(RunError, match=rf"than the 1,000 bytes .*set {RUN_BYTES_ENV} to at least"):
        Run.load(run)
    monkeypatch.setenv(RUN_BYTES_ENV, "10000")
    monkeypatch.setenv(JSON_BYTES_ENV, "1000")
    with pytest.raises(RunError, match=rf"JSON files .* set {JSON_BYTES_ENV} to at least"):
        Run.load(run)
    monkeypatch.setenv(JSON_BYTES_ENV, str(10 << 20))
    Run.load(run)
    monkeypatch.setenv(RUN_BYTES_ENV, "two gigabytes")
    with pytest.raises(RunError, match=rf"{RUN_BYTES_ENV} must be a positive whole number"):
        Run.load(run)


@pytest.mark.parametrize(
    "error",
    [
        OSError(5, "Input/output error", "weights.safetensors"),
        RecursionError("maximum recursion depth exceeded"),
        OverflowError("int too large to convert"),
        MemoryError(),
        RuntimeError("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator"),
        IndexError("list index out of range"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_whatever_python_raises_while_loading_becomes_one_run_error(tmp_path, monkeypatch, error):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr("mrta.runs.run.build_meta_model", fail)
    with pytest.raises(RunError, match=r"needs more memory|cannot be read|cannot read") as caught:
        Run.load(copy_run(tmp_path))
    assert caught.value.__cause__ is error
    assert "train the model again" in str(caught.value) or "more memory" in str(caught.value)


def test_a_pipe_or_a_folder_in_place_of_a_file_is_refused_by_name(tmp_path):
    run = copy_run(tmp_path)
    (run / WEIGHTS).unlink()
    os.mkfifo(run / WEIGHTS)
    with pytest.raises(RunError, match=r"file weights\.safetensors .* not a regular file"):
        Run.load(run)
    (run / WEIGHTS).unlink()
    (run / WEIGHTS).mkdir()
    with pytest.raises(RunError, match=r"file weights\.safetensors .* not a regular file"):
        Run.load(run)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda h: h.update({"__metadata__": {"format": 1}}), r"__metadata__ is not an object"),
        (lambda h: h["head.0.bias"].update(dtype="F128"), r"dtype 'F128', not one of F64"),
        (lambda h: h["head.0.bias"].update(shape=[8, -1]), r"shape \[8, -1\], not a list"),
        (lambda h: h["head.0.bias"].update(shape=[9]), r"spans bytes 0 to 32, but its shape"),
        (lambda h: h["head.0.bias"].update(data_offsets=[0]), r"data_offsets \[0\], not \["),
        (lambda h: h["head.0.bias"].pop("dtype"), r"not described by dtype, shape and data_off"),
        (lambda h: h.pop("head.0.bias"), r"the 32 bytes before tensor 'head\.0\.weight' are un"),
        (lambda h: h["head.0.bias"].update(dtype="F16", shape=[16]), r"do not fit its model"),
    ],
)
def test_a_malformed_header_is_refused_before_any_tensor_is_read(tmp_path, edit, message):
    run = copy_run(tmp_path)
    forge_header(run, WEIGHTS, edit)
    with pytest.raises(RunError, match=message):
        Run.load(run)


def test_json_that_hides_a_key_or_an_endless_number_is_refused(tmp_path):
    run = copy_run(tmp_path)
    text = (run / "config.json").read_bytes()
    forge(run, "config.json", text.replace(b'"init_seed": 0', b'"init_seed": 0, "init_seed": 1'))
    with pytest.raises(RunError, match=r"config\.json .* not valid JSON \(a key appears twice"):
        Run.load(run)
    forge(run, "config.json", text.replace(b'"init_seed": 0', b'"init_seed": ' + b"9" * 5000))
    with pytest.raises(RunError, match=r"config\.json .* not valid JSON \(Exceeds the limit"):
        Run.load(run)


def test_a_misaligned_or_trailing_byte_is_refused(tmp_path):
    run = copy_run(tmp_path)
    forge(run, WEIGHTS, (run / WEIGHTS).read_bytes() + b"\0")
    with pytest.raises(RunError, match=r"file holds [\d,]+ bytes of data"):
        Run.load(run)

    def shift(header: dict[str, Any]) -> None:
        for entry in header.values():
            if isinstance(entry, dict) and "data_offsets" in entry:
                entry["data_offsets"] = [offset + 2 for offset in entry["data_offsets"]]
        header["pad"] = {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}

    header, data = safetensors_parts((run / WEIGHTS).read_bytes()[:-1])
    shift(header)
    forge(run, WEIGHTS, safetensors_bytes(header, b"\0\0" + data))
    with pytest.raises(RunError, match=r"begins at byte 2, unaligned for F32"):
        Run.load(run)


def test_saved_rows_beyond_what_a_table_may_hold_are_refused_before_they_are_read(tmp_path):
    run = copy_run(tmp_path)
    os.truncate(run / "data.csv", 201 << 20)  # sparse: refused by its size, before any read
    with pytest.raises(RunError, match=r"data\.csv .* holds 201\.0 MiB, more than the 200\.0 MiB"):
        Run.load(run)
