"""--ssl_config_file: a usable file gives TLS credentials, a bad one a clear start-up error."""

import shutil
import subprocess
import sys

import grpc
import pytest

from tensorflow_serving.model_servers.server import Server, ServerOptions
from tensorflow_serving.model_servers.server_credentials import server_credentials
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import status


@pytest.fixture(scope="module")
def pem(tmp_path_factory):
    """A self-signed EC key and certificate for localhost."""
    directory = tmp_path_factory.mktemp("pem")
    openssl = shutil.which("openssl")
    assert openssl, "the openssl command line tool is needed to make a test certificate"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", "1", "-subj", "/CN=localhost"],
        cwd=directory, check=True, capture_output=True,
    )  # fmt: skip
    return (directory / "key.pem").read_text(), (directory / "cert.pem").read_text()


def _write(tmp_path, **fields) -> str:
    lines = []
    for name, value in fields.items():
        if isinstance(value, bool):
            lines.append(f"{name}: {str(value).lower()}")
        else:
            lines.append(f'{name}: "{value.encode("unicode_escape").decode()}"')
    path = tmp_path / "ssl.config"
    path.write_text("\n".join(lines))
    return str(path)


def _error(path: str) -> str:
    with pytest.raises(status.ServingError) as raised:
        server_credentials(path)
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    return raised.value.message


def test_no_file_means_plaintext():
    assert server_credentials("") is None


def test_key_and_certificate_give_credentials(tmp_path, pem):
    key, cert = pem
    assert isinstance(
        server_credentials(_write(tmp_path, server_key=key, server_cert=cert)),
        grpc.ServerCredentials,
    )
    with_ca = _write(tmp_path, server_key=key, server_cert=cert, custom_ca=cert, client_verify=True)
    assert isinstance(server_credentials(with_ca), grpc.ServerCredentials)


def test_unreadable_and_unparsable_files_are_named(tmp_path):
    assert "Cannot read" in _error(str(tmp_path / "missing.config"))
    (tmp_path / "garbage.config").write_text("this is { not an SSLConfig")
    assert "Invalid protobuf file" in _error(str(tmp_path / "garbage.config"))


def test_fields_that_are_not_pem_are_named(tmp_path, pem):
    key, cert = pem
    message = _error(_write(tmp_path, server_key="/path/to/key.pem", server_cert=cert))
    assert "server_key must hold PEM text" in message
    assert "server_cert must hold PEM text" in _error(_write(tmp_path, server_key=key))


def test_pem_that_grpc_cannot_use_is_refused(tmp_path, pem):
    key, cert = pem
    broken = key.replace(key.splitlines()[1], "AAAA" * 16)
    assert "not a usable PEM private key" in _error(
        _write(tmp_path, server_key=broken, server_cert=cert)
    )
    assert "not a usable PEM" in _error(_write(tmp_path, server_key=cert, server_cert=key))


def test_client_verify_needs_a_custom_ca(tmp_path, pem):
    key, cert = pem
    message = _error(_write(tmp_path, server_key=key, server_cert=cert, client_verify=True))
    assert "client_verify needs custom_ca" in message


def test_server_refuses_to_start_before_loading_any_model(tmp_path):
    options = ServerOptions(
        port=testing.free_port(),
        model_base_path=str(tmp_path / "no-such-model"),
        ssl_config_file=_write(tmp_path, server_key="nope"),
    )
    server = Server()
    with pytest.raises(status.ServingError) as raised:
        server.build_and_start(options)
    assert "server_key must hold PEM text" in raised.value.message
    assert server.core is None, "no model is loaded when the TLS set-up is wrong"
    server.stop(grace_seconds=0)


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
