"""How the trainer connects to Temporal: the SDK's environment configuration (TEMPORAL_* variables
and TOML profiles) with segflow's own variables on top, so that the ConfigMap/Secret of the
TypeScript workers serves the trainer too. Nothing here connects anywhere: the tests check the
keyword arguments Client.connect gets."""

import inspect

import pytest
from temporalio.client import Client
from temporalio.service import TLSConfig

from segflow_trainer.errors import ConfigError
from segflow_trainer.settings import load_settings

CA, CERT, KEY = b"-----BEGIN CERTIFICATE-----\nca\n", b"-----BEGIN CERTIFICATE-----\ncrt\n", b"-----BEGIN PRIVATE KEY-----\nk\n"


@pytest.fixture
def pki(tmp_path):
    for name, data in (("ca.pem", CA), ("client.pem", CERT), ("client.key", KEY)):
        (tmp_path / name).write_bytes(data)
    return tmp_path


def connect_kwargs(tmp_path, **env) -> dict:
    # HOME: the default profile file (~/.config/temporalio/temporal.toml) is the test's, i.e. none.
    kw = load_settings({"HOME": str(tmp_path), **env}).temporal.connect_kwargs()
    inspect.signature(Client.connect).bind(**kw)  # every name is one Client.connect takes
    return kw


def test_the_dev_stack_is_plain_grpc_on_its_port(tmp_path):
    assert connect_kwargs(tmp_path, SEGFLOW_DEV_TEMPORAL_PORT="47833") == {
        "target_host": "127.0.0.1:47833",
        "namespace": "default",
    }


def test_the_shipped_configmap_turns_tls_on(tmp_path):
    # infra/k8s/segflow.yaml: the same three variables the TypeScript workers read.
    kw = connect_kwargs(
        tmp_path,
        SEGFLOW_TEMPORAL_ADDRESS="ns.a1b2c.tmprl.cloud:7233",
        SEGFLOW_TEMPORAL_NAMESPACE="ns.a1b2c",
        SEGFLOW_TEMPORAL_TLS="true",
    )
    assert kw == {"target_host": "ns.a1b2c.tmprl.cloud:7233", "namespace": "ns.a1b2c", "tls": True}


def test_an_api_key_implies_tls_and_is_never_printed(tmp_path):
    settings = load_settings(
        {"HOME": str(tmp_path), "TEMPORAL_ADDRESS": "x.tmprl.cloud:7233", "TEMPORAL_NAMESPACE": "x.acct", "TEMPORAL_API_KEY": "sekret-key"}
    )
    kw = settings.temporal.connect_kwargs()
    assert kw == {"target_host": "x.tmprl.cloud:7233", "namespace": "x.acct", "api_key": "sekret-key", "tls": True}
    assert "sekret-key" not in repr(settings) and "sekret-key" not in settings.temporal.describe()
    assert settings.temporal.describe() == "x.tmprl.cloud:7233 namespace x.acct (TLS, API key)"
    # segflow's names win over the standard ones
    kw = connect_kwargs(tmp_path, TEMPORAL_ADDRESS="a:1", SEGFLOW_TEMPORAL_ADDRESS="b:2", TEMPORAL_NAMESPACE="n1", SEGFLOW_TEMPORAL_NAMESPACE="n2")
    assert (kw["target_host"], kw["namespace"]) == ("b:2", "n2")


def test_mtls_from_the_variables_the_typescript_side_reads(tmp_path, pki):
    kw = connect_kwargs(
        tmp_path,
        SEGFLOW_TEMPORAL_ADDRESS="temporal.internal:7233",
        SEGFLOW_TEMPORAL_TLS="true",
        SEGFLOW_TEMPORAL_TLS_SERVER_NAME="temporal.internal",
        TEMPORAL_TLS_CA=str(pki / "ca.pem"),
        TEMPORAL_TLS_CERT=str(pki / "client.pem"),
        TEMPORAL_TLS_KEY=str(pki / "client.key"),
    )
    assert kw["tls"] == TLSConfig(domain="temporal.internal", server_root_ca_cert=CA, client_cert=CERT, client_private_key=KEY)


def test_mtls_from_the_standard_variables(tmp_path, pki):
    kw = connect_kwargs(
        tmp_path,
        TEMPORAL_ADDRESS="t:7233",
        TEMPORAL_TLS_CLIENT_CERT_PATH=str(pki / "client.pem"),
        TEMPORAL_TLS_CLIENT_KEY_PATH=str(pki / "client.key"),
        TEMPORAL_TLS_SERVER_CA_CERT_PATH=str(pki / "ca.pem"),
    )
    assert kw["tls"] == TLSConfig(server_root_ca_cert=CA, client_cert=CERT, client_private_key=KEY)


def test_a_profile_file(tmp_path, pki):
    config = tmp_path / "temporal.toml"
    config.write_text(
        f"""
[profile.default]
address = "localhost:7233"

[profile.prod]
address = "prod.a1b2c.tmprl.cloud:7233"
namespace = "prod.a1b2c"

[profile.prod.tls]
server_name = "prod.a1b2c.tmprl.cloud"
client_cert_path = "{pki / 'client.pem'}"
client_key_path = "{pki / 'client.key'}"

[profile.keyed]
address = "k.tmprl.cloud:7233"
namespace = "k.acct"
api_key = "profile-key"

[profile.keyed.grpc_meta]
team = "rl"
"""
    )
    assert connect_kwargs(tmp_path, TEMPORAL_CONFIG_FILE=str(config)) == {"target_host": "localhost:7233", "namespace": "default"}
    kw = connect_kwargs(tmp_path, TEMPORAL_CONFIG_FILE=str(config), TEMPORAL_PROFILE="prod")
    assert kw == {
        "target_host": "prod.a1b2c.tmprl.cloud:7233",
        "namespace": "prod.a1b2c",
        "tls": TLSConfig(domain="prod.a1b2c.tmprl.cloud", client_cert=CERT, client_private_key=KEY),
    }
    kw = connect_kwargs(tmp_path, TEMPORAL_CONFIG_FILE=str(config), TEMPORAL_PROFILE="keyed", SEGFLOW_TEMPORAL_NAMESPACE="other")
    assert kw == {
        "target_host": "k.tmprl.cloud:7233",
        "namespace": "other",
        "api_key": "profile-key",
        "tls": True,
        "rpc_metadata": {"team": "rl"},
    }
    with pytest.raises(ConfigError, match=r"profile 'nope' \(TEMPORAL_PROFILE\) from TEMPORAL_CONFIG_FILE=.*temporal.toml does not load"):
        load_settings({"HOME": str(tmp_path), "TEMPORAL_CONFIG_FILE": str(config), "TEMPORAL_PROFILE": "nope"})
    with pytest.raises(ConfigError, match=r"TEMPORAL_CONFIG_FILE=.*missing.toml: no such file"):
        load_settings({"HOME": str(tmp_path), "TEMPORAL_CONFIG_FILE": str(tmp_path / "missing.toml")})


@pytest.mark.parametrize(
    "env, message",
    [
        ({"TEMPORAL_TLS_CERT": "client.pem"}, r"mTLS is half configured: TEMPORAL_TLS_CERT .* is set but TEMPORAL_TLS_KEY is not"),
        ({"TEMPORAL_TLS_CLIENT_KEY_PATH": "client.key"}, r"mTLS is half configured: TEMPORAL_TLS_KEY .* is set but TEMPORAL_TLS_CERT is not"),
        ({"TEMPORAL_TLS_CA": "gone.pem"}, r"TEMPORAL_TLS_CA=.*gone.pem: the server CA certificate cannot be read \(No such file"),
        ({"TEMPORAL_TLS_CLIENT_CERT_PATH": "gone.pem", "TEMPORAL_TLS_CLIENT_KEY_PATH": "client.key"}, r"client certificate file .*gone.pem .* cannot be read"),
        ({"TEMPORAL_API_KEY": "k", "SEGFLOW_TEMPORAL_TLS": "false"}, r"TLS is turned off \(SEGFLOW_TEMPORAL_TLS=false\) but a Temporal API key is set"),
        ({"TEMPORAL_API_KEY": "k", "TEMPORAL_TLS": "false"}, r"TLS is turned off \(TEMPORAL_TLS .*\) but a Temporal API key is set"),
        ({"SEGFLOW_TEMPORAL_TLS": "maybe"}, r"SEGFLOW_TEMPORAL_TLS='maybe': expected true or false"),
    ],
)
def test_settings_that_cannot_work_are_refused_with_what_to_do(tmp_path, pki, env, message):
    env = {k: (str(pki / v) if v.endswith((".pem", ".key")) else v) for k, v in env.items()}
    with pytest.raises(ConfigError, match=message):
        load_settings({"HOME": str(tmp_path), **env})


def test_keep_versions_is_a_whole_number(tmp_path):
    assert load_settings({"HOME": str(tmp_path)}).keep_versions == 1
    assert load_settings({"HOME": str(tmp_path), "SEGFLOW_TRAINER_KEEP_VERSIONS": "3"}).keep_versions == 3
    with pytest.raises(ConfigError, match=r"SEGFLOW_TRAINER_KEEP_VERSIONS='-1': expected a whole number >= 0"):
        load_settings({"HOME": str(tmp_path), "SEGFLOW_TRAINER_KEEP_VERSIONS": "-1"})
