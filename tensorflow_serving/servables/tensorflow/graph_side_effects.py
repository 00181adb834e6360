"""Whether running part of a graph can change anything besides its outputs.

Why: the idle warmer (idle_warmer.py) reruns the latest request and throws
the answer away. That is only harmless when the call reads state and writes
none: a signature that counts its calls, updates a variable, writes a file,
prints, or draws random numbers from a seeded stream must run exactly once
per request. TensorFlow marks every op that touches state as stateful; of
those, the ops below only read it. Random ops count only when seeded: an
unseeded one (seed and seed2 both 0, e.g. the dropout of a served CNN whose
keep_prob defaults to 1) draws from a stream seeded at random, so extra
draws cannot be observed. Everything else that is stateful, and every op
this process does not know, counts as a side effect.
"""

from __future__ import annotations

from collections.abc import Iterable

from tensorflow.core.framework import function_pb2, graph_pb2
from tensorflow.python.framework import op_def_registry

# Stateful ops that read variables or lookup tables, create handles to them,
# or check a condition, and change nothing.
READ_ONLY_STATEFUL_OPS = frozenset(
    {
        "VarHandleOp",
        "ReadVariableOp",
        "ResourceGather",
        "ResourceGatherNd",
        "VarIsInitializedOp",
        "VariableV2",
        "Variable",
        "HashTable",
        "HashTableV2",
        "LookupTableFind",
        "LookupTableFindV2",
        "LookupTableSize",
        "LookupTableSizeV2",
        "Assert",
    }
)

# Stateful random ops whose stream is fixed by their seed and seed2 attributes.
RANDOM_OPS = frozenset(
    {
        "RandomUniform",
        "RandomUniformInt",
        "RandomStandardNormal",
        "TruncatedNormal",
        "ParameterizedTruncatedNormal",
        "RandomGamma",
        "RandomPoisson",
        "RandomPoissonV2",
        "Multinomial",
        "RandomShuffle",
    }
)

# Ops that call functions: stateful or not, what they do is what their functions do.
FUNCTION_CALL_OPS = frozenset(
    {
        "PartitionedCall",
        "StatefulPartitionedCall",
        "If",
        "StatelessIf",
        "While",
        "StatelessWhile",
        "Case",
        "StatelessCase",
    }
)


def _node_name(input_name: str) -> str:
    """'^name', 'name:1', 'name' -> 'name' (a node's input as written in a GraphDef)."""
    return input_name.lstrip("^").split(":", 1)[0]


def _called_functions(attrs) -> Iterable[str]:
    """Names of the functions a node calls through its attributes (f, then_branch, body...)."""
    for value in attrs.values():
        kind = value.WhichOneof("value")
        if kind == "func":
            yield value.func.name
        elif kind == "list":
            yield from (func.name for func in value.list.func)


def _reachable_nodes(graph_def: graph_pb2.GraphDef, feeds: Iterable[str], fetches: Iterable[str]):
    """The nodes a run with these feeds and fetches executes (fed nodes are not run)."""
    nodes = {node.name: node for node in graph_def.node}
    fed = {_node_name(name) for name in feeds}
    pending = [_node_name(name) for name in fetches]
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen or name in fed or name not in nodes:
            continue
        seen.add(name)
        node = nodes[name]
        yield node
        pending.extend(_node_name(inp) for inp in node.input)


def first_side_effect(
    graph_def: graph_pb2.GraphDef, feeds: Iterable[str], fetches: Iterable[str]
) -> str | None:
    """The first op found that could change state when fetching `fetches`; None if none.

    Functions the run calls (a TF2 export's StatefulPartitionedCall, cond and
    while bodies) are searched too, whole.
    """
    library: dict[str, function_pb2.FunctionDef] = {
        func.signature.name: func for func in graph_def.library.function
    }
    searched: set[str] = set()

    def search(nodes) -> str | None:
        for node in nodes:
            if node.op in library:  # a direct call of a library function
                found = search_function(node.op)
            elif node.op in FUNCTION_CALL_OPS:
                found = None  # judged by the functions it calls, below
            else:
                found = _side_effect_of(node)
            if found is None:
                for name in _called_functions(node.attr):
                    found = search_function(name)
                    if found is not None:
                        break
            if found is not None:
                return found
        return None

    def search_function(name: str) -> str | None:
        if name in searched:
            return None
        searched.add(name)
        function = library.get(name)
        if function is None:
            return f"call of unknown function {name}"
        return search(function.node_def)

    return search(_reachable_nodes(graph_def, feeds, fetches))


def _side_effect_of(node) -> str | None:
    op_type = node.op
    if op_type in READ_ONLY_STATEFUL_OPS:
        return None
    if op_type in RANDOM_OPS:
        seeded = node.attr["seed"].i or node.attr["seed2"].i
        return f"{op_type} (seeded)" if seeded else None
    op_def = op_def_registry.get(op_type)
    if op_def is None:
        return f"unknown op {op_type}"
    return op_type if op_def.is_stateful else None
