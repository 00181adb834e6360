"""The in-process limit of a SavedModel signature, and the requests the benchmark sends.

With `--tflite` the limit is the version's `model.tflite` on one TFLite
interpreter, called through the server's TfLiteSession (what a server with
--prefer_tflite_model runs).

Runs in its own process, pinned to the server's core(s) before TensorFlow
starts, and calls the signature the way the model server does: a graph-mode
Session with the server's intra/inter-op thread settings, one
`Session._make_callable_from_options` callable (the Python twin of the C++
`Session::MakeCallable`), numpy in and out, called from one thread. No server
can run the model faster than this on the same cores.

For each batch size: warm-up, then `runs` timed runs of `run_seconds`; each
run gives inferences/s, call latency p50/p99 and process CPU per inference;
the reported value is the median run.

The same process writes the request payloads of every batch size into
`--payload_dir` (gRPC PredictRequest bytes, REST JSON body) and returns the
signature's inputs and outputs, so the benchmark's parent process never
imports TensorFlow.

    python -m tensorflow_serving.tools.inprocess_limit --model_dir /m/1 \\
        --signature predict_images --batches 1,32 --cpus 0 --intra 1 --inter 1 \\
        --payload_dir /tmp/p --model_name mnist --result /tmp/limit.json

`--idle_gap_us` measures the limit a server at concurrency 1 can reach: see
timed_runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable

from tensorflow_serving.tools.percentiles import percentile


def timed_runs(
    call: Callable[[], object],
    runs: int,
    run_seconds: float,
    warmup_seconds: float,
    batch: int,
    idle_gap_seconds: float = 0.0,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Median over `runs` runs of `call()` in a loop; throughput in inferences/s.

    With `idle_gap_seconds`, the process sleeps that long before each call, as a
    server at concurrency 1 idles while the answer travels and the next request
    comes; only the calls are timed, and throughput is calls over their own time.
    During such gaps an idle vCPU may halt (costly to wake on a VM) and the
    caches cool, so this is the limit a one-client server can actually reach
    (docs/performance/2026-11-28-one-client-ceiling.md).

    `clock` and `sleep` time the calls and make the gaps; tests pass a fake pair.
    """
    stop = clock() + warmup_seconds
    while clock() < stop:
        call()
    from tensorflow_serving.tools import processes

    own_cpus = os.sched_getaffinity(0)
    per_run = []
    for _ in range(runs):
        latencies = []
        busy = processes.CpuBusyMeter()
        busy.start()
        cpu0, start = time.process_time(), clock()
        stop = start + run_seconds
        while True:
            if idle_gap_seconds:
                sleep(idle_gap_seconds)
            t0 = clock()
            if t0 >= stop:
                break
            call()
            latencies.append(clock() - t0)
        wall, cpu = clock() - start, time.process_time() - cpu0
        busy_seconds = sum(latencies) if idle_gap_seconds else wall
        busy_by_cpu = busy.stop()
        others = sum(busy_by_cpu.get(c, 0.0) for c in own_cpus) - cpu / wall
        latencies.sort()
        n = max(len(latencies), 1)
        per_run.append(
            {
                "inferences_per_s": len(latencies) * batch / max(busy_seconds, 1e-9),
                "p50_ms": percentile(latencies, 50) * 1e3,
                "p99_ms": percentile(latencies, 99) * 1e3,
                "cpu_us_per_inference": cpu / (n * batch) * 1e6,
                "cpu_cores": cpu / max(busy_seconds, 1e-9),
                # Cores of this process's CPUs that other processes kept busy: noise.
                "others_cores": max(0.0, others),
            }
        )
    result = {k: round(statistics.median(r[k] for r in per_run), 3) for k in per_run[0]}
    result["runs_inferences_per_s"] = [round(r["inferences_per_s"], 1) for r in per_run]
    return result


@dataclasses.dataclass
class LoadedSignature:
    """A signature ready to call as the model server calls it: `fn(*feeds)` in `inputs` order."""

    session: object
    fn: Callable
    inputs: list
    outputs: list


def load_signature(
    model_dir: str, tags: str, signature: str, input_shape: list[str], intra: int, inter: int
) -> LoadedSignature:
    """Loads `signature` of the SavedModel into a graph-mode Session with the server's
    thread settings, and makes the callable the server would (same options)."""
    import tensorflow as tf

    from tensorflow_serving.servables.tensorflow import saved_model_bundle
    from tensorflow_serving.tools import signature_inputs

    config = saved_model_bundle.session_config(intra, inter)
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph, config=config)
    with graph.as_default():
        meta_graph = tf.compat.v1.saved_model.loader.load(session, tags.split(","), model_dir)
    if signature not in meta_graph.signature_def:
        raise SystemExit(
            f"signature {signature!r} not in {model_dir}; it has "
            f"{sorted(k for k in meta_graph.signature_def if not k.startswith('__'))}"
        )
    overrides = signature_inputs.parse_shape_overrides(input_shape)

    def graph_shape(tensor_name: str) -> tuple[int, ...] | None:
        shape = graph.get_tensor_by_name(tensor_name).shape
        if shape.rank is None:
            return None
        return tuple(-1 if d is None else d for d in shape.as_list())

    inputs, outputs = signature_inputs.signature_specs(
        meta_graph.signature_def[signature], overrides, graph_shape
    )
    # Called as the server calls it: the limit must not be slower than the server.
    options = saved_model_bundle.callable_options(
        [s.tensor_name for s in inputs], [s.tensor_name for s in outputs], config
    )
    fn = session._make_callable_from_options(options)
    return LoadedSignature(session=session, fn=fn, inputs=inputs, outputs=outputs)


def load_tflite_signature(
    model_dir: str, signature: str, input_shape: list[str]
) -> LoadedSignature:
    """Loads `<model_dir>/model.tflite` as the server does with --prefer_tflite_model (one
    interpreter: one caller) and calls `signature` through the same TfLiteSession.run."""
    from tensorflow_serving.servables.tensorflow.tflite_session import (
        TfLiteOptions,
        load_tflite_session,
    )
    from tensorflow_serving.tools import signature_inputs

    servable = load_tflite_session(model_dir, TfLiteOptions(prefer_tflite_model=True, num_pools=1))
    if signature not in servable.signatures:
        raise SystemExit(
            f"signature {signature!r} not in {model_dir}/model.tflite; it has "
            f"{sorted(servable.signatures)}"
        )
    overrides = signature_inputs.parse_shape_overrides(input_shape)
    inputs, outputs = signature_inputs.signature_specs(
        servable.meta_graph_def.signature_def[signature], overrides
    )
    runs = servable.signature(signature)
    aliases = [s.alias for s in inputs]
    fetch = tuple(s.alias for s in outputs)

    def fn(*feeds):
        values = servable.run(runs, dict(zip(aliases, feeds, strict=True)), fetch)
        return [values[alias] for alias in fetch]

    return LoadedSignature(session=servable, fn=fn, inputs=inputs, outputs=outputs)


def add_signature_flags(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """The flags that say which signature to load and how (see load_signature_from):
    the limit, the minimal server and the model floors take the same ones, so they load
    the same thing. `required=False`: --model_dir may be left out (no model)."""
    parser.add_argument(
        "--model_dir", required=required, default="", help="a SavedModel (version) directory"
    )
    parser.add_argument("--signature", default="serving_default")
    parser.add_argument("--tags", default="serve")
    parser.add_argument("--input_shape", action="append", default=[])
    parser.add_argument("--intra", type=int, default=0, help="intra-op threads (0: TF decides)")
    parser.add_argument("--inter", type=int, default=0, help="inter-op threads (0: TF decides)")
    parser.add_argument(
        "--tflite", action="store_true", help="the version's model.tflite, as --prefer_tflite_model"
    )


def load_signature_from(args: argparse.Namespace) -> LoadedSignature:
    """load_signature (or load_tflite_signature) with the flags of add_signature_flags."""
    if args.tflite:
        return load_tflite_signature(args.model_dir, args.signature, args.input_shape)
    return load_signature(
        args.model_dir, args.tags, args.signature, args.input_shape, args.intra, args.inter
    )


def measure(args: argparse.Namespace) -> dict:
    """Loads the model, writes payloads, times every batch size; returns the result record."""
    import numpy as np

    from tensorflow_serving.tools import signature_inputs

    loaded = load_signature_from(args)
    session, fn, inputs, outputs = loaded.session, loaded.fn, loaded.inputs, loaded.outputs
    data = signature_inputs.load_input_data(args.input_data, inputs) if args.input_data else None
    gc.collect()
    gc.freeze()  # as the server does once its models are loaded
    record: dict = {
        "model_dir": args.model_dir,
        "signature": args.signature,
        "runtime": "tflite" if args.tflite else "tensorflow",
        "intra_op_threads": args.intra,
        "inter_op_threads": args.inter,
        "cpus": sorted(os.sched_getaffinity(0)),
        "inputs": [s.to_dict() for s in inputs],
        "outputs": [s.to_dict() for s in outputs],
        "payloads": {},
        "limits": {},
    }
    for batch in sorted({int(b) for b in args.batches.split(",")}):
        arrays = signature_inputs.make_inputs(inputs, batch, args.data, args.seed, data)
        feeds = [arrays[s.alias] for s in inputs]
        results = fn(*feeds)
        record["output_rows"] = {
            s.alias: {"dtype": np.asarray(r).dtype.name, "row_shape": list(np.shape(r)[1:])}
            for s, r in zip(outputs, results, strict=True)
        }
        if args.payload_dir:
            grpc_path = os.path.join(args.payload_dir, f"grpc_b{batch}.bin")
            rest_path = os.path.join(args.payload_dir, f"rest_b{batch}.json")
            with open(grpc_path, "wb") as handle:
                handle.write(signature_inputs.grpc_request(args.model_name, args.signature, arrays))
            with open(rest_path, "wb") as handle:
                handle.write(signature_inputs.rest_body(args.signature, arrays, args.rest_format))
            record["payloads"][str(batch)] = {"grpc": grpc_path, "rest": rest_path}
        if args.runs > 0:
            limit = timed_runs(
                lambda feeds=feeds: fn(*feeds),
                args.runs,
                args.run_seconds,
                args.warmup_seconds,
                batch,
                args.idle_gap_us / 1e6,
            )
            limit["batch"] = batch
            limit["idle_gap_us"] = args.idle_gap_us
            record["limits"][str(batch)] = limit
            print(
                f"limit b{batch}: {limit['inferences_per_s']:.0f} inf/s, "
                f"p50 {limit['p50_ms']:.3f} ms",
                file=sys.stderr,
                flush=True,
            )
    session.close()
    return record


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_signature_flags(parser)
    parser.add_argument("--batches", default="1")
    parser.add_argument("--cpus", default="", help="pin to these CPUs first, e.g. 0")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per batch; 0: none")
    parser.add_argument("--run_seconds", type=float, default=1.0)
    parser.add_argument("--warmup_seconds", type=float, default=1.0)
    parser.add_argument(
        "--idle_gap_us",
        type=float,
        default=0.0,
        help="sleep this long before each timed call (the idle time a one-client server sees)",
    )
    parser.add_argument("--input_data", default="")
    parser.add_argument("--data", default="random")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model_name", default="model", help="model name in the requests")
    parser.add_argument("--rest_format", default="instances")
    parser.add_argument("--payload_dir", default="")
    parser.add_argument("--result", required=True, help="write the JSON record here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.runs < 0 or args.runs > 20 or not 0 < args.run_seconds <= 30:
        raise SystemExit("--runs must be in 0..20 and --run_seconds in (0, 30]")
    if args.cpus:
        from tensorflow_serving.tools import processes

        os.sched_setaffinity(0, processes.parse_cpus(args.cpus))  # before TF makes threads
    record = measure(args)
    with open(args.result, "w") as handle:
        json.dump(record, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
