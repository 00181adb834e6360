"""gRPC over TLS with --ssl_config_file, end to end against the built binary.

A throwaway CA, a server certificate (for 127.0.0.1 and localhost) and client
certificates are made in the test with the openssl command line. Two servers:
- "tls": server_key + server_cert; clients that trust the CA are served,
  plaintext clients and clients that do not trust the CA are refused;
- "mtls": the same plus custom_ca and client_verify: only clients showing a
  certificate signed by that CA are served.
"""

import shutil
import subprocess
import sys

import grpc
import numpy as np
import pytest

from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp
from tensorflow_serving.test_util import testing
from tensorflow_serving.test_util.model_server_process import RunningServer
from tensorflow_serving.util import tensor_codec

_EC = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"


def _openssl(command: str, cwd) -> None:
    """Runs `openssl <command>` (words split on spaces) in `cwd`."""
    openssl = shutil.which("openssl")
    assert openssl, "the openssl command line tool is needed to make test certificates"
    subprocess.run([openssl, *command.split()], cwd=cwd, check=True, capture_output=True)


def _signed(directory, name: str, usage: str, ca: str = "ca") -> None:
    """<name>.key and <name>.crt, signed by <ca>, valid for 127.0.0.1 and localhost."""
    (directory / f"{name}.ext").write_text(
        "basicConstraints=CA:FALSE\n"
        f"extendedKeyUsage={usage}\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    _openssl(f"req {_EC} -keyout {name}.key -out {name}.csr -subj /CN={name}", directory)
    _openssl(
        f"x509 -req -in {name}.csr -CA {ca}.crt -CAkey {ca}.key -CAcreateserial -days 2 "
        f"-extfile {name}.ext -out {name}.crt",
        directory,
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """PEM bytes: "<name>" certificates and "<name>.key" keys; stranger's CA is other_ca."""
    directory = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other_ca"):
        _openssl(
            f"req -x509 {_EC} -keyout {ca}.key -out {ca}.crt -days 2 -subj /CN={ca}", directory
        )
    _signed(directory, "server", "serverAuth")
    _signed(directory, "client", "clientAuth")
    _signed(directory, "stranger", "clientAuth", ca="other_ca")
    pems = {name: (directory / f"{name}.crt").read_bytes() for name in ("ca", "other_ca")}
    for name in ("server", "client", "stranger"):
        pems[name] = (directory / f"{name}.crt").read_bytes()
        pems[f"{name}.key"] = (directory / f"{name}.key").read_bytes()
    return pems


def _ssl_config(path, pki, client_verify: bool) -> None:
    def quoted(pem: bytes) -> str:
        return pem.decode().replace("\n", "\\n")

    lines = [
        f'server_key: "{quoted(pki["server.key"])}"',
        f'server_cert: "{quoted(pki["server"])}"',
    ]
    if client_verify:
        lines += [f'custom_ca: "{quoted(pki["ca"])}"', "client_verify: true"]
    path.write_text("\n".join(lines) + "\n")


def _start(tmp_path_factory, pki, name: str, client_verify: bool):
    base = tmp_path_factory.mktemp(name)
    hp.export_half_plus_two_tf1(str(base / "hp"), 1)
    _ssl_config(base / "ssl.config", pki, client_verify)
    server = RunningServer(
        base,
        name,
        [
            "--model_name=hp",
            f"--model_base_path={base / 'hp'}",
            f"--ssl_config_file={base / 'ssl.config'}",
        ],
    )
    server.wait_until_serving()  # REST stays plain HTTP and tells when the models are up
    return server


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory, pki):
    server = _start(tmp_path_factory, pki, "tls", client_verify=False)
    yield server
    assert server.stop() == 0, server.log_tail()


@pytest.fixture(scope="module")
def mtls_server(tmp_path_factory, pki):
    server = _start(tmp_path_factory, pki, "mtls", client_verify=True)
    yield server
    assert server.stop() == 0, server.log_tail()


def _secure_channel(server, root: bytes, key: bytes | None = None, cert: bytes | None = None):
    credentials = grpc.ssl_channel_credentials(
        root_certificates=root, private_key=key, certificate_chain=cert
    )
    return grpc.secure_channel(f"127.0.0.1:{server.grpc_port}", credentials)


def _predict(channel) -> float:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "hp"
    tensor_codec.to_tensor_proto(np.array([[4.0]], np.float32), request.inputs["x"])
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    return stub.Predict(request, timeout=10).outputs["y"].float_val[0]


def _refused(channel) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        _predict(channel)
    channel.close()
    return raised.value


def test_tls_client_trusting_the_ca_is_served(tls_server, pki):
    with _secure_channel(tls_server, pki["ca"]) as channel:
        assert _predict(channel) == 4.0
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
            get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "hp"}), timeout=10
        )
        assert status.model_version_status[0].version == 1


def test_plaintext_client_is_refused_by_the_tls_port(tls_server):
    error = _refused(grpc.insecure_channel(f"127.0.0.1:{tls_server.grpc_port}"))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_client_not_trusting_the_server_certificate_refuses_it(tls_server, pki):
    error = _refused(_secure_channel(tls_server, pki["other_ca"]))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_mtls_client_with_a_certificate_from_the_ca_is_served(mtls_server, pki):
    with _secure_channel(mtls_server, pki["ca"], pki["client.key"], pki["client"]) as channel:
        assert _predict(channel) == 4.0


@pytest.mark.parametrize("who", ["no certificate", "stranger", "plaintext"])
def test_mtls_refuses_clients_without_a_certificate_from_the_ca(mtls_server, pki, who):
    if who == "plaintext":
        channel = grpc.insecure_channel(f"127.0.0.1:{mtls_server.grpc_port}")
    elif who == "stranger":
        channel = _secure_channel(mtls_server, pki["ca"], pki["stranger.key"], pki["stranger"])
    else:
        channel = _secure_channel(mtls_server, pki["ca"])
    assert _refused(channel).code() == grpc.StatusCode.UNAVAILABLE
    # ... and the server goes on serving the right client.
    with _secure_channel(mtls_server, pki["ca"], pki["client.key"], pki["client"]) as channel:
        assert _predict(channel) == 4.0


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
