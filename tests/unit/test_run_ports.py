"""`make run`'s check of its fixed ports: every taken one is named at once, with one command that moves them."""

import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from devkit.__main__ import _taken_port


@contextmanager
def busy_ports(count: int) -> Iterator[list[int]]:
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            ports.append(sock.getsockname()[1])
        yield ports


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_every_taken_port_is_named_with_one_command_that_moves_them_all() -> None:
    with busy_ports(2) as (api, sandbox):
        said = _taken_port({"PORT": api, "SANDBOX_PORT": sandbox, "AWS_PORT": free_port()})
    assert said is not None
    assert f"port {api} (PORT)" in said and f"port {sandbox} (SANDBOX_PORT)" in said and "AWS_PORT" not in said
    assert said.endswith(f"e.g. PORT={api + 10} SANDBOX_PORT={sandbox + 10} make run")


def test_one_taken_port_names_only_its_variable() -> None:
    with busy_ports(1) as (aws,):
        said = _taken_port({"PORT": free_port(), "SANDBOX_PORT": 0, "AWS_PORT": aws})
    assert said == f"port {aws} (AWS_PORT) is in use; e.g. AWS_PORT={aws + 10} make run"


def test_free_and_ephemeral_ports_are_not_reported() -> None:
    assert _taken_port({"PORT": free_port(), "SANDBOX_PORT": 0, "AWS_PORT": 0}) is None
