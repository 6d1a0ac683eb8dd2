"""Speed and memory of our layer against the Keras reference (kerasfactory 0.1.1, Keras 3, torch).

Both run on the same torch with the same thread count. Times: the two implementations
alternate run by run in one process, and the median of each is reported. Peak memory: each
implementation runs in a subprocess of its own (a process's peak-memory counter only rises),
and the figure is the peak resident memory minus the resident memory just before the first call.

Configurations (8 heads, d_model 64, dropout 0.1):
- quick start: batch 32, 100 tokens, 10 numerical and 5 categorical features; a training step
  (forward + backward, train mode) and inference (eval mode, no grad);
- seed example 1: batch 32, 1,000 tokens, 8 and 6 features; inference only;
- recording: our inference at the quick-start shapes with a streaming recorder attached.

Run: ``python -m benchmarks.layer_speed`` (about two minutes on 2 cores); it writes
``benchmarks/results/layer_speed.json`` and prints the README's table.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import torch

from benchmarks.memory import memory_mb

RESULTS = Path(__file__).parent / "results" / "layer_speed.json"
HEADS, D_MODEL, DROPOUT = 8, 64, 0.1
QUICK = (32, 100, 10, 5)  # batch, tokens, numerical features, categorical features
LONG = (32, 1000, 8, 6)


def build(impl: str, fn: int, fc: int):
    """A layer of either implementation, built for ``fn``/``fc`` features."""
    if impl == "ours":
        from mrta import MultiResolutionTabularAttention

        return MultiResolutionTabularAttention(
            HEADS, D_MODEL, DROPOUT, num_features=fn, cat_features=fc
        )
    import keras
    from kerasfactory.layers import MultiResolutionTabularAttention as KerasMRTA
    from loguru import logger

    logger.remove()
    layer = KerasMRTA(num_heads=HEADS, d_model=D_MODEL, dropout_rate=DROPOUT)
    layer([keras.ops.zeros((1, 2, fn)), keras.ops.zeros((1, 2, fc))])
    return layer


def inputs(shape: tuple[int, int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    b, t, fn, fc = shape
    g = torch.Generator().manual_seed(0)
    return torch.randn(b, t, fn, generator=g), torch.randn(b, t, fc, generator=g)


def step_fn(impl: str, layer, num, cat, mode: str):
    """A zero-argument callable running one training step or one inference."""
    if impl == "ours":
        if mode == "train":
            layer.train()

            def train():
                n, c = layer(num, cat)
                (n.mean() + c.mean()).backward()
                layer.zero_grad(set_to_none=True)

            return train
        layer.eval()

        def infer():
            with torch.no_grad():
                layer(num, cat)

        return infer

    params = [v.value for v in layer.trainable_variables]
    if mode == "train":

        def train_keras():
            n, c = layer([num, cat], training=True)
            (n.mean() + c.mean()).backward()
            for p in params:
                p.grad = None

        return train_keras

    def infer_keras():
        with torch.no_grad():
            layer([num, cat], training=False)

    return infer_keras


def recording_fn(layer, num, cat):
    """Inference through a copy of ``layer`` with a streaming recorder attached (the copy keeps
    the hooks off the layer the plain runs use)."""
    from mrta import AttentionRecorder

    layer = copy.deepcopy(layer).eval()
    recorder = AttentionRecorder(layer, mode="stream").attach()

    def infer_recorded():
        with torch.no_grad():
            layer(num, cat)
        recorder.commit()

    return infer_recorded


def alternate(fns: dict[str, callable], repeats: int, warmup: int = 2) -> dict[str, dict]:
    """Run the callables in turn ``repeats`` times; median and spread of each, in ms."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {
        k: {
            "median_ms": statistics.median(v),
            "min_ms": min(v),
            "max_ms": max(v),
            "repeats": len(v),
        }
        for k, v in times.items()
    }


def memory_child(impl: str, shape: tuple[int, int, int, int]) -> None:
    """Subprocess body: one inference, then print the peak memory it added, in MB."""
    layer = build(impl, shape[2], shape[3])
    num, cat = inputs(shape)
    run = step_fn(impl, layer, num, cat, "infer")
    before = memory_mb("VmRSS")
    run()
    peak = memory_mb("VmHWM")
    print(json.dumps({"peak_added_mb": peak - before, "peak_rss_mb": peak}))


def measure_memory(impl: str, shape: tuple[int, int, int, int]) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.layer_speed", "--memory-child", impl, "--shape"]
        + [str(size) for size in shape],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--long-repeats", type=int, default=5)
    parser.add_argument("--memory-child", choices=["ours", "keras"])
    parser.add_argument("--shape", type=int, nargs=4)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, tuple(args.shape))
        return

    torch.manual_seed(0)
    results: dict = {
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "config": {"num_heads": HEADS, "d_model": D_MODEL, "dropout_rate": DROPOUT},
    }
    results["long_infer_memory"] = {impl: measure_memory(impl, LONG) for impl in ("ours", "keras")}
    import keras

    results["keras"] = keras.__version__
    layers = {impl: build(impl, QUICK[2], QUICK[3]) for impl in ("ours", "keras")}
    num, cat = inputs(QUICK)
    for mode in ("train", "infer"):
        fns = {impl: step_fn(impl, layer, num, cat, mode) for impl, layer in layers.items()}
        results[f"quick_{mode}"] = alternate(fns, args.repeats)

    results["recording"] = alternate(
        {
            "plain": step_fn("ours", layers["ours"], num, cat, "infer"),
            "recorded": recording_fn(layers["ours"], num, cat),
        },
        args.repeats,
    )

    long_layers = {impl: build(impl, LONG[2], LONG[3]) for impl in ("ours", "keras")}
    num, cat = inputs(LONG)
    fns = {impl: step_fn(impl, layer, num, cat, "infer") for impl, layer in long_layers.items()}
    results["long_infer"] = alternate(fns, args.long_repeats, warmup=1)

    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))


def table(r: dict) -> str:
    def row(label: str, key: str, a: str = "ours", b: str = "keras") -> str:
        ours, ref = r[key][a]["median_ms"], r[key][b]["median_ms"]
        return f"| {label} | {ours:.1f} ms | {ref:.1f} ms | {ref / ours:.2f}x |"

    mem = r["long_infer_memory"]
    rec = r["recording"]
    lines = [
        f"| configuration (8 heads, d_model 64, {r['threads']} threads) | ours | Keras reference "
        "| speed-up |",
        "|---|---|---|---|",
        row("training step, batch 32, 100 tokens", "quick_train"),
        row("inference, batch 32, 100 tokens", "quick_infer"),
        row("inference, batch 32, 1,000 tokens", "long_infer"),
        f"| peak memory added, inference at 1,000 tokens | {mem['ours']['peak_added_mb']:.0f} MB "
        f"| {mem['keras']['peak_added_mb']:.0f} MB "
        f"| {mem['keras']['peak_added_mb'] / max(mem['ours']['peak_added_mb'], 1):.1f}x less |",
        f"| inference with a streaming recorder, 100 tokens | "
        f"{rec['recorded']['median_ms']:.1f} ms | plain: {rec['plain']['median_ms']:.1f} ms | "
        f"{rec['recorded']['median_ms'] / rec['plain']['median_ms']:.2f}x plain |",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    np.random.seed(0)
    main()
