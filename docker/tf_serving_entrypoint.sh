#!/bin/sh
# Entrypoint of both serving images: docker/Dockerfile (this repo's server) and
# docker/Dockerfile.stock (the stock C++ tensorflow/serving binary). It is the
# stock image's entrypoint with the chapter's gRPC port as the default, kept in
# the repo so that docker/entrypoint_test.py runs this very file outside a
# container.
#
# Environment, as in the stock image:
#   MODEL_NAME       the name clients ask for (default "model")
#   MODEL_BASE_PATH  folder of models (default /models); versions are read
#                    from $MODEL_BASE_PATH/$MODEL_NAME/<version>/
#   GRPC_PORT        gRPC port (default 8000, the chapter's; stock says 8500)
#   PORT             REST port (default 8501)
# Arguments go to tensorflow_model_server after these flags, so a later flag
# wins, e.g.  docker run IMAGE --model_config_file=/models/models.config
#
# `exec` makes the server PID 1: `docker stop` and Kubernetes send SIGTERM to
# it directly, and it drains in-flight requests before exiting.
set -eu
exec tensorflow_model_server \
  --port="${GRPC_PORT:-8000}" \
  --rest_api_port="${PORT:-8501}" \
  --model_name="${MODEL_NAME:-model}" \
  --model_base_path="${MODEL_BASE_PATH:-/models}/${MODEL_NAME:-model}" \
  "$@"
