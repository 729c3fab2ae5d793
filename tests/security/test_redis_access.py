"""Finding 2 of issue 17, replayed against the embedded Redis the fixtures start (the same code as
`eva00 up`): no client without the generated password, no administration for the stages' user
(the CONFIG SET dir + SAVE file write), loopback only, and not root when started by root."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from eva00 import stack_secrets
from eva00.ops.localstack import redis_server_bin
from tests.conftest import Stack


def _raw(port: int, *commands: bytes) -> list[bytes]:
    """Commands as an attacker's netcat would send them (no client library deciding anything)."""
    answers = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for command in commands:
            sock.sendall(command + b"\r\n")
            answers.append(sock.recv(4096))
    return answers


def test_a_client_without_the_password_is_refused(stack: Stack, redis_url: str) -> None:
    port = stack.redis_server.port
    answers = _raw(port, b"PING", b"XADD eva00:sync:priority * kind rfi", b"CONFIG SET dir /tmp",
                   b"AUTH default ''")
    assert all(answer.startswith(b"-") for answer in answers), answers
    assert b"NOAUTH" in answers[0]


@pytest.mark.parametrize("user", [stack_secrets.REDIS_APP_USER, stack_secrets.REDIS_ADMIN_USER, "default"])
def test_a_guessed_password_is_refused(stack: Stack, redis_url: str, user: str) -> None:
    answers = _raw(stack.redis_server.port, f"AUTH {user} eva00".encode(), b"PING")
    assert answers[0].startswith(b"-WRONGPASS"), answers
    assert answers[1].startswith(b"-NOAUTH"), answers


def test_the_app_user_cannot_make_redis_write_a_file(stack: Stack, redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.ping()
    for command in (("CONFIG", "SET", "dir", str(tmp_path)), ("CONFIG", "SET", "dbfilename", "x.rdb"),
                    ("SAVE",), ("BGSAVE",), ("BGREWRITEAOF",)):
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [("CONFIG", "GET", "*"), ("DEBUG", "SLEEP", "0"), ("SHUTDOWN",),
                                     ("MODULE", "LOAD", "/tmp/evil.so"), ("FLUSHALL",), ("FLUSHDB",),
                                     ("ACL", "SETUSER", "attacker", "on", ">x", "+@all"),
                                     ("REPLICAOF", "127.0.0.1", "1"), ("MONITOR",), ("KEYS", "*"),
                                     ("SWAPDB", "0", "1"), ("CLIENT", "KILL", "TYPE", "normal")])
def test_the_app_user_has_no_administration_command(stack: Stack, redis_url: str,
                                                    command: tuple[str, ...]) -> None:
    client = redis.Redis.from_url(redis_url)
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.execute_command(*command)
    assert client.ping()  # still up


def test_the_app_user_does_the_stages_work(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.xgroup_create("eva00:test:s", "g", id="0", mkstream=True)
    client.xadd("eva00:test:s", {"a": "1"})
    assert client.xreadgroup("g", "c", {"eva00:test:s": ">"}, count=1)
    assert client.register_script("return redis.call('INCR', KEYS[1])")(keys=["eva00:test:n"]) == 1
    client.set("eva00:test:kept", "1")
    with pytest.raises(redis.exceptions.ResponseError, match=r"permission|NOPERM|can't run this command"):
        client.eval("return redis.call('FLUSHALL')", 0)  # ACLs hold inside scripts too
    assert client.get("eva00:test:kept") == b"1"


def test_redis_listens_on_loopback_in_protected_mode(stack: Stack, redis_url: str) -> None:
    admin = redis.Redis.from_url(stack.redis_admin_url, decode_responses=True)
    assert admin.config_get("bind")["bind"] == "127.0.0.1"
    assert admin.config_get("protected-mode")["protected-mode"] == "yes"
    assert "off" in admin.acl_getuser("default")["flags"]


def test_no_password_is_on_the_command_line(stack: Stack, redis_url: str) -> None:
    assert stack.redis_server.process is not None
    cmdline = Path(f"/proc/{stack.redis_server.process.pid}/cmdline").read_bytes().decode()
    for name in (stack_secrets.REDIS_APP, stack_secrets.REDIS_ADMIN):
        assert stack_secrets.read_secret(stack.base / "secrets" / name) not in cmdline


@pytest.mark.skipif(os.geteuid() != 0, reason="the servers keep the account of a non-root starter")
def test_redis_started_by_root_runs_as_the_unprivileged_account(stack: Stack, redis_url: str) -> None:
    for server in (stack.redis_server, stack.pg):
        assert server.process is not None
        status = Path(f"/proc/{server.process.pid}/status").read_text()
        uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
        assert uid != "0", server.name


def test_redis_cli_authenticates_from_the_password_file(stack: Stack, redis_url: str) -> None:
    cli = redis_server_bin().with_name("redis-cli")
    secret = stack.base / "secrets" / stack_secrets.REDIS_APP
    env = {**os.environ, "REDISCLI_AUTH": secret.read_text().strip()}
    port = str(urlsplit(redis_url).port)
    done = subprocess.run([str(cli), "-p", port, "--user", stack_secrets.REDIS_APP_USER, "PING"],
                          capture_output=True, text=True, env=env, timeout=30)
    assert done.stdout.strip() == "PONG", done.stderr
    refused = subprocess.run([str(cli), "-p", port, "PING"], capture_output=True, text=True,
                             env={k: v for k, v in env.items() if k != "REDISCLI_AUTH"}, timeout=30)
    assert "NOAUTH" in refused.stdout + refused.stderr
