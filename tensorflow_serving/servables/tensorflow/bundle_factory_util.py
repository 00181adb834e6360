"""Per-model batching parameters (upstream: GetPerModelBatchingParams in
bundle_factory_util.cc, --enable_per_model_batching_parameters).

Why: models served together differ in the batch sizes and timeouts that suit
them; with per-model parameters each version directory may carry its own
`batching_params.pbtxt`, while the batch threads stay shared by all models.
"""

from __future__ import annotations

from tensorflow_serving.batching.batching_session import BatchingOptions, batching_options
from tensorflow_serving.util import config_protos, file_io, status

BATCHING_PARAMS_FILENAME = "batching_params.pbtxt"


def model_batching_options(
    export_dir: str, common: BatchingOptions, per_model: bool
) -> BatchingOptions | None:
    """How the version at `export_dir` batches; None: it is served without batching.

    Without `per_model`, every model batches with `common` (the server's
    parameters). With it, as upstream: a version whose directory holds
    `batching_params.pbtxt` batches with that file's parameters instead
    (its num_batch_threads is ignored: the batch threads are the server's,
    shared by every model), and a version without one is not batched. A file that
    does not parse or fails the parameters' checks raises INVALID_ARGUMENT
    naming it, so that version's load fails with the reason.
    """
    if not per_model:
        return common
    path = file_io.join(export_dir, BATCHING_PARAMS_FILENAME)
    if not file_io.isfile(path):
        return None
    params = config_protos.parse_text_file(path, config_protos.BatchingParameters)
    params.ClearField("num_batch_threads")
    try:
        return batching_options(params)
    except status.ServingError as error:
        raise status.invalid_argument(f"{error.message} (in {path})") from None
