"""CURVE security over real loopback sockets: keys, authorized/unauthorized clients, and the
refusal to bind beyond loopback without CURVE."""

from __future__ import annotations

import stat

import pytest
import zmq

from g2h_edge.errors import ConfigError, DataError
from g2h_edge.io.synth import make_stream
from g2h_edge.runtime.config import ServerConfig
from g2h_edge.runtime.local import LocalServer, OutputCollector
from g2h_edge.security import check_exposure, client_curve, generate_keys, is_local_endpoint
from g2h_edge.sources.replay import ReplayConfig, open_publisher, replay

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys") / "g2h"
    generate_keys(root, ("client", "client2"))
    return root


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generate_keys_files_and_permissions(keys, tmp_path):
    for name in ("server", "client", "client2"):
        assert _mode(keys / f"{name}.key_secret") == 0o600
        assert _mode(keys / f"{name}.key") == 0o600
    assert _mode(keys) == 0o700
    assert sorted(p.name for p in (keys / "authorized_clients").iterdir()) == ["client.key", "client2.key"]
    with pytest.raises(ConfigError, match="already holds a server key"):
        generate_keys(keys)
    with pytest.raises(ConfigError, match="client name"):
        generate_keys(tmp_path / "k", ("server",))


def test_keys_generate_cli(tmp_path, capsys):
    from g2h_edge.cli import main

    assert main(["keys", "generate", str(tmp_path / "k"), "--client", "lab1"]) == 0
    assert (tmp_path / "k" / "authorized_clients" / "lab1.key").is_file()
    with pytest.raises(SystemExit) as exc:
        main(["keys", "generate", str(tmp_path / "k")])
    assert exc.value.code == 2 and "already holds a server key" in capsys.readouterr().err
    assert main(["keys", "generate", str(tmp_path / "k"), "--client", "lab2", "--force"]) == 0
    assert [p.name for p in (tmp_path / "k" / "authorized_clients").iterdir()] == ["lab2.key"]


@pytest.mark.parametrize(
    "addr, local",
    [
        ("tcp://127.0.0.1:5555", True),
        ("tcp://127.3.2.1:*", True),
        ("tcp://localhost:5", True),
        ("tcp://[::1]:5555", True),
        ("ipc:///tmp/g2h.sock", True),
        ("inproc://x", True),
        ("tcp://0.0.0.0:5555", False),
        ("tcp://*:5555", False),
        ("tcp://eth0:5555", False),
        ("tcp://192.168.1.20:5555", False),
        ("tcp://[::]:5555", False),
        ("tcp://127.0.0.1:0;10.0.0.2:5555", False),
        ("epgm://eth0;239.1.1.1:5555", False),
    ],
)
def test_is_local_endpoint(addr, local):
    assert is_local_endpoint(addr) is local


def test_non_loopback_bind_is_refused_without_curve(jm_bundle_path, keys, capsys):
    with pytest.raises(ConfigError, match="insecure-public-bind"):
        ServerConfig(engines=("m.onnx",), listen="tcp://0.0.0.0:5555")
    with pytest.raises(ConfigError, match="would expose"):
        ServerConfig(engines=("m.onnx",), publish="tcp://*:5556")
    warned = []
    check_exposure(("tcp://*:1",), allow_insecure=True, warn=warned.append)
    assert "WARNING: unencrypted" in warned[0]
    # with keys it is accepted (config only: nothing is bound here)
    ServerConfig(engines=("m.onnx",), listen="tcp://0.0.0.0:5555", curve_keys=str(keys))
    with pytest.raises(ConfigError, match="authorized_clients"):
        ServerConfig(engines=("m.onnx",), curve_keys=str(keys / "authorized_clients"))
    with pytest.raises(ConfigError, match="would expose"):
        open_publisher(zmq.Context.instance(), ReplayConfig(address="tcp://0.0.0.0:5999", bind=True))
    from g2h_edge.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["serve", "--engine", str(jm_bundle_path), "--listen", "tcp://0.0.0.0:5555"])
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def _curve_server(engine, keys):
    cfg = ServerConfig(
        engines=("in-memory",),
        listen="tcp://127.0.0.1:*",
        publish="tcp://127.0.0.1:*",
        allow_synthetic=True,
        status_interval_s=0.1,
        curve_keys=str(keys),
    )
    return LocalServer(cfg, engines=[engine])


def test_curve_client_with_keys_works_end_to_end(engine, keys):
    trial = make_stream(5.0, 100.0, seed=3)
    with _curve_server(engine, keys) as srv:
        with OutputCollector(srv.endpoints["publish"], curve_keys=str(keys)) as col:
            assert col.wait_ready(20)
            replay(
                trial,
                ReplayConfig(
                    address=srv.endpoints["listen"],
                    stream="sec",
                    max_rate=True,
                    with_events=True,
                    curve_keys=str(keys),
                    wait_subscriber_s=20,
                ),
            )
            assert col.wait_ended("sec", 30)
    assert len(col.of_type("cycle", "sec")) >= 4
    assert not col.of_type("reject", "sec")


def _wrong_dir(tmp_path, keys, *, server_key_from=None):
    """A key dir with an unauthorized client pair and (by default) the right server key."""
    other = tmp_path / "other"
    generate_keys(other)
    if server_key_from is not None:
        (other / "server.key").write_bytes((server_key_from / "server.key").read_bytes())
    return other


@pytest.mark.parametrize("client", ["plain", "unauthorized", "wrong_server_key"])
def test_clients_without_valid_keys_get_nothing_through(engine, keys, tmp_path, client):
    wrong = {
        "plain": lambda: None,
        "unauthorized": lambda: _wrong_dir(tmp_path, keys, server_key_from=keys),
        "wrong_server_key": lambda: _wrong_dir(tmp_path, keys),
    }[client]()
    trial = make_stream(3.0, 100.0, seed=4)
    with _curve_server(engine, keys) as srv:
        with (
            OutputCollector(srv.endpoints["publish"], curve_keys=str(keys)) as good,
            OutputCollector(srv.endpoints["publish"], curve_keys=wrong and str(wrong)) as bad,
        ):
            assert good.wait_ready(20)
            with pytest.raises(DataError, match="no subscriber"):
                replay(
                    trial,
                    ReplayConfig(
                        address=srv.endpoints["listen"],
                        stream="intruder",
                        max_rate=True,
                        wait_subscriber_s=1.5,
                        linger_s=0.5,
                        curve_keys=wrong and str(wrong),
                    ),
                )
            # a raw socket that does not wait for a subscription: its sends go nowhere
            ctx = zmq.Context.instance()
            pub = ctx.socket(zmq.PUB)
            client_curve(pub, wrong and str(wrong))
            pub.connect(srv.endpoints["listen"])
            from g2h_edge import wire

            for _ in range(20):
                pub.send_multipart(wire.encode_meta("intruder2", 100.0))
                good.wait_for(lambda m: False, 0.05)
            pub.close(0)
            n_status = good.statuses_
            assert good.wait_for(lambda c: c.statuses_ >= n_status + 3, 10, on_self=True)
    assert good.of_type("status") and not bad.messages
    last = good.of_type("status")[-1]
    assert last["totals"]["live_streams"] == 0 and last["totals"].get("messages", 0) == 0
    assert not [m for m in good.messages if m.get("stream") in ("intruder", "intruder2")]


def test_curve_through_the_proxy(engine, keys):
    """The proxy binds (CURVE server on both sides); the server behind it connects as a
    CURVE client; a keyed publisher gets through, a plain one does not."""
    from g2h_edge.runtime.scale import Proxy, ProxyConfig

    with Proxy(
        ProxyConfig(frontend="tcp://127.0.0.1:*", backend="tcp://127.0.0.1:*", curve_keys=str(keys))
    ) as px:
        cfg = ServerConfig(
            engines=("in-memory",),
            listen=None,
            connect=(px.endpoints["backend"],),
            publish="tcp://127.0.0.1:*",
            allow_synthetic=True,
            status_interval_s=0.1,
            curve_keys=str(keys),
        )
        with (
            LocalServer(cfg, engines=[engine]) as srv,
            OutputCollector(srv.endpoints["publish"], curve_keys=str(keys)) as col,
        ):
            assert col.wait_ready(20)
            with pytest.raises(DataError, match="no subscriber"):
                replay(
                    make_stream(3.0, 100.0, seed=1),
                    ReplayConfig(
                        address=px.endpoints["frontend"],
                        stream="plain",
                        max_rate=True,
                        wait_subscriber_s=1.5,
                        linger_s=0.5,
                    ),
                )
            replay(
                make_stream(5.0, 100.0, seed=2),
                ReplayConfig(
                    address=px.endpoints["frontend"],
                    stream="viaproxy",
                    max_rate=True,
                    with_events=True,
                    curve_keys=str(keys),
                    wait_subscriber_s=20,
                ),
            )
            assert col.wait_ended("viaproxy", 30)
    assert len(col.of_type("cycle", "viaproxy")) >= 4
    assert not col.of_type("cycle", "plain")


def test_a_source_cannot_bind_with_curve(keys):
    with pytest.raises(ConfigError, match="cannot --bind with --curve-keys"):
        open_publisher(
            zmq.Context.instance(), ReplayConfig(address="tcp://127.0.0.1:*", bind=True, curve_keys=str(keys))
        )


def test_a_client_dir_with_only_its_own_pair(engine, keys, tmp_path):
    """What a client machine gets: server.key + lab1.key_secret (no server secret)."""
    client_dir = tmp_path / "lab1"
    client_dir.mkdir()
    for name in ("server.key", "client2.key_secret"):
        (client_dir / name).write_bytes((keys / name).read_bytes())
    with _curve_server(engine, keys) as srv:
        with OutputCollector(srv.endpoints["publish"], curve_keys=str(client_dir)) as col:
            assert col.wait_ready(20)
            replay(
                make_stream(4.0, 100.0, seed=6),
                ReplayConfig(
                    address=srv.endpoints["listen"],
                    stream="lab1",
                    max_rate=True,
                    with_events=True,
                    curve_keys=str(client_dir),
                    wait_subscriber_s=20,
                ),
            )
            assert col.wait_ended("lab1", 30)
    assert col.of_type("cycle", "lab1")
