"""gRPC server credentials from --ssl_config_file (upstream: server.cc,
BuildServerCredentialsFromSSLConfigFile).

The file is an ASCII SSLConfig, as the stock server reads it:

    server_key: "-----BEGIN PRIVATE KEY-----\\n..."
    server_cert: "-----BEGIN CERTIFICATE-----\\n..."
    custom_ca: "-----BEGIN CERTIFICATE-----\\n..."   # optional
    client_verify: true                              # optional

With `client_verify` the server requires a client certificate signed by
`custom_ca`, as upstream's GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
does. Upstream would fall back to the system's root certificates when
`custom_ca` is empty; trusting every public CA to vouch for a client is
never what a model server wants, so here that combination is refused at
start-up. Problems surface as INVALID_ARGUMENT before any model loads.
"""

from __future__ import annotations

import concurrent.futures

import grpc

from tensorflow_serving.util import config_protos, status

_PEM_KEY = "-----BEGIN"


def _require_pem(value: str, field: str, path: str) -> bytes:
    if _PEM_KEY not in value:
        raise status.invalid_argument(
            f"--ssl_config_file '{path}': {field} must hold PEM text "
            f"(-----BEGIN ...), got {len(value)} characters without it"
        )
    return value.encode("utf-8")


def server_credentials(ssl_config_file: str) -> grpc.ServerCredentials | None:
    """The TLS credentials the gRPC port uses; None (plaintext) when no file is given."""
    if not ssl_config_file:
        return None
    config = config_protos.parse_text_file(ssl_config_file, config_protos.SSLConfig)
    key = _require_pem(config.server_key, "server_key", ssl_config_file)
    cert = _require_pem(config.server_cert, "server_cert", ssl_config_file)
    custom_ca = (
        _require_pem(config.custom_ca, "custom_ca", ssl_config_file) if config.custom_ca else None
    )
    if config.client_verify and custom_ca is None:
        raise status.invalid_argument(
            f"--ssl_config_file '{ssl_config_file}': client_verify needs custom_ca, the CA "
            "that signs the client certificates"
        )
    try:
        credentials = grpc.ssl_server_credentials(
            [(key, cert)],
            root_certificates=custom_ca,
            require_client_auth=config.client_verify,
        )
    except (ValueError, TypeError) as error:
        raise status.invalid_argument(f"--ssl_config_file '{ssl_config_file}': {error}") from None
    _check_usable(credentials, ssl_config_file)
    return credentials


def _check_usable(credentials: grpc.ServerCredentials, path: str) -> None:
    """gRPC reads the PEM only when a port opens: open one on loopback to say which file is bad.

    Otherwise a wrong key would surface as "Failed to bind to address".
    """
    probe = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=1))
    try:
        probe.add_secure_port("127.0.0.1:0", credentials)
    except RuntimeError:
        raise status.invalid_argument(
            f"--ssl_config_file '{path}': server_key and server_cert (and custom_ca) are not a "
            "usable PEM private key and certificate chain"
        ) from None
    finally:
        probe.stop(None)
