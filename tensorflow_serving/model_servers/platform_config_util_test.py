"""The TensorFlow platform's config comes from the flags or from a platform config
file, as upstream's server builds it."""

import sys

import pytest

from tensorflow_serving.model_servers import main, platform_config_util
from tensorflow_serving.model_servers.server import server_core_options
from tensorflow_serving.model_servers.server_options import check_start_up_options
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import status

PLATFORM_CONFIG = """
platform_configs {
  key: "tensorflow"
  value {
    source_adapter_config {
      [type.googleapis.com/tensorflow.serving.SavedModelBundleSourceAdapterConfig] {
        legacy_config {
          session_config { intra_op_parallelism_threads: 1 inter_op_parallelism_threads: 2 }
          batching_parameters {
            max_batch_size { value: 128 }
            enable_large_batch_splitting { value: true }
            max_execution_batch_size { value: 32 }
          }
          saved_model_tags: "serve"
          saved_model_tags: "cpu"
          enable_model_warmup: true
          model_warmup_options { num_request_iterations { value: 3 } }
          %s
        }
      }
    }
  }
}
"""


def config_for(argv: list[str]):
    return platform_config_util.session_bundle_config(main.parse_options(argv)[0])


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_the_session_config_file_is_every_models_session_config(tmp_path):
    path = write(
        tmp_path,
        "session.config",
        "intra_op_parallelism_threads: 3\ninter_op_parallelism_threads: 5\n"
        "operation_timeout_in_ms: 7000\n",
    )
    config = config_for([f"--tensorflow_session_config_file={path}"]).session_config
    assert (config.intra_op_parallelism_threads, config.inter_op_parallelism_threads) == (3, 5)
    assert config.operation_timeout_in_ms == 7000
    options = main.parse_options(
        [f"--tensorflow_session_config_file={path}", "--model_base_path=/m"]
    )
    assert server_core_options(options[0]).bundle.config.operation_timeout_in_ms == 7000


@pytest.mark.parametrize(
    "flags,threads",
    [
        (["--tensorflow_intra_op_parallelism=1"], (1, 5)),
        (["--tensorflow_inter_op_parallelism=2"], (3, 2)),
        (["--tensorflow_session_parallelism=4"], (4, 4)),
        (["--tensorflow_session_parallelism=4", "--tensorflow_intra_op_parallelism=1"], (1, 5)),
    ],
)
def test_parallelism_flags_that_are_set_override_the_files_thread_counts(tmp_path, flags, threads):
    path = write(
        tmp_path,
        "session.config",
        "intra_op_parallelism_threads: 3 inter_op_parallelism_threads: 5",
    )
    config = config_for([f"--tensorflow_session_config_file={path}", *flags]).session_config
    assert (config.intra_op_parallelism_threads, config.inter_op_parallelism_threads) == threads
    assert config.operation_timeout_in_ms == 0


def test_without_a_file_the_flags_alone_give_the_thread_counts():
    config = config_for(["--tensorflow_intra_op_parallelism=2"]).session_config
    assert (config.intra_op_parallelism_threads, config.inter_op_parallelism_threads) == (2, 0)
    assert config.allow_soft_placement, "our default session config stays"


def test_a_session_config_file_that_does_not_parse_is_named_as_upstream_words_it(tmp_path):
    path = write(tmp_path, "session.config", "intra_op_threads: 3\n")
    with pytest.raises(status.ServingError) as raised:
        config_for([f"--tensorflow_session_config_file={path}"])
    assert raised.value.code.name == "INVALID_ARGUMENT"
    assert raised.value.message.startswith("Error parsing text-format tensorflow.ConfigProto: ")
    assert "intra_op_threads" in raised.value.message and path in raised.value.message


def test_a_one_thread_session_config_file_lets_a_model_be_kept_warm(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    monkeypatch.delenv("TF_NUM_INTEROP_THREADS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    path = write(
        tmp_path, "one.config", "intra_op_parallelism_threads: 1 inter_op_parallelism_threads: 1"
    )
    argv = ["--keep_model_warm_micros=1000", f"--tensorflow_session_config_file={path}"]
    assert main.parse_options(argv)[0].keep_model_warm_micros == 1000


def test_batching_flags_make_the_batching_parameters(tmp_path):
    assert not config_for([]).HasField("batching_parameters")
    config = config_for(["--enable_batching"])
    assert config.batching_parameters.thread_pool_name.value == "model_server_batch_threads"
    assert not config.enable_per_model_batching_params
    path = write(tmp_path, "batching.config", "max_batch_size { value: 8 }")
    config = config_for(
        [
            "--enable_batching",
            f"--batching_parameters_file={path}",
            "--enable_per_model_batching_parameters",
        ]
    )
    assert config.batching_parameters.max_batch_size.value == 8
    assert config.enable_per_model_batching_params


def test_tags_and_warmup_flags_reach_the_bundle_options():
    options = main.parse_options(
        [
            "--saved_model_tags=serve, gpu",
            "--num_request_iterations_for_warmup=4",
            "--model_base_path=/m",
        ]
    )[0]
    bundle = server_core_options(options).bundle
    assert (bundle.tags, bundle.enable_model_warmup, bundle.warmup_iterations) == (
        ("serve", "gpu"),
        True,
        4,
    )


def test_the_tflite_flags_reach_the_bundle_options():
    flags = [
        "--prefer_tflite_model",
        "--num_tflite_pools=3",
        "--num_tflite_interpreters_per_pool=2",
    ]
    options = main.parse_options([*flags, "--model_base_path=/m"])[0]
    tflite = server_core_options(options).bundle.tflite
    assert (tflite.prefer_tflite_model, tflite.num_pools, tflite.interpreters_per_pool) == (
        True,
        3,
        2,
    )


def test_a_platform_config_may_prefer_tflite_models(tmp_path):
    text = PLATFORM_CONFIG % "prefer_tflite_model: true num_tflite_interpreters: 2"
    config = platform_config_util.read_platform_config_file(write(tmp_path, "p.config", text))
    tflite = platform_config_util.bundle_options(config).tflite
    assert (tflite.prefer_tflite_model, tflite.num_pools) == (True, 2)


def test_the_platform_config_file_gives_the_whole_session_bundle_config(tmp_path):
    path = write(tmp_path, "platform.config", PLATFORM_CONFIG % "")
    argv = [f"--platform_config_file={path}", "--model_base_path=/m"]
    config = config_for(argv)
    assert config.session_config.inter_op_parallelism_threads == 2
    assert config.batching_parameters.max_execution_batch_size.value == 32
    bundle = server_core_options(main.parse_options(argv)[0]).bundle
    assert (bundle.tags, bundle.warmup_iterations) == (("serve", "cpu"), 3)
    assert bundle.config.intra_op_parallelism_threads == 1


def test_a_platform_config_without_tags_or_warmup_gets_upstreams_defaults(tmp_path):
    text = PLATFORM_CONFIG.replace('saved_model_tags: "serve"', "").replace(
        'saved_model_tags: "cpu"', ""
    )
    text = text.replace("enable_model_warmup: true", "").replace(
        "model_warmup_options { num_request_iterations { value: 3 } }", ""
    )
    path = write(tmp_path, "platform.config", text % "")
    options = main.parse_options([f"--platform_config_file={path}", "--model_base_path=/m"])[0]
    bundle = server_core_options(options).bundle
    assert (bundle.tags, bundle.enable_model_warmup, bundle.warmup_iterations) == (
        ("serve",),
        False,
        1,
    )


def test_the_platform_config_file_makes_the_flags_it_replaces_moot(tmp_path):
    path = write(tmp_path, "platform.config", PLATFORM_CONFIG % "")
    argv = [
        f"--platform_config_file={path}",
        "--batching_parameters_file=/tmp/b.config",
        "--tensorflow_session_parallelism=2",
        "--tensorflow_intra_op_parallelism=2",
        "--tensorflow_inter_op_parallelism=2",
    ]
    options = main.parse_options(argv)[0]
    check_start_up_options(options)  # upstream checks these flags only without the file
    assert platform_config_util.overridden_flags(options) == [
        "--batching_parameters_file=/tmp/b.config",
        "--tensorflow_session_parallelism=2",
        "--tensorflow_intra_op_parallelism=2",
        "--tensorflow_inter_op_parallelism=2",
    ]
    assert config_for(argv).session_config.intra_op_parallelism_threads == 1


@pytest.mark.parametrize(
    "text,message",
    [
        (
            PLATFORM_CONFIG.replace('key: "tensorflow"', 'key: "tflite"') % "",
            "platform(s) ['tflite'] are not served here",
        ),
        ("", "has no 'tensorflow' entry"),
        (
            'platform_configs { key: "tensorflow" value { source_adapter_config { '
            'type_url: "type.googleapis.com/tensorflow.serving.Other" } } }',
            "got type_url 'type.googleapis.com/tensorflow.serving.Other'",
        ),
        (PLATFORM_CONFIG % 'session_target: "grpc://elsewhere:2222"', "session_target is not"),
        (PLATFORM_CONFIG % "no_such_field: 1", "Error parsing text-format"),
    ],
    ids=["other_platform", "no_tensorflow", "other_adapter", "remote", "bad_field"],
)
def test_a_platform_config_this_server_cannot_honour_is_refused_by_name(tmp_path, text, message):
    path = write(tmp_path, "platform.config", text)
    with pytest.raises(status.ServingError) as raised:
        config_for([f"--platform_config_file={path}"])
    assert raised.value.code.name == "INVALID_ARGUMENT"
    assert message in raised.value.message
    assert path in raised.value.message


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
