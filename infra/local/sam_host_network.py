"""The SAM CLI with every Lambda container on the host's network: `python sam_host_network.py local
start-api …` runs `sam local start-api …` (the SAM CLI of the project's venv, unchanged otherwise).

Why this exists: SAM CLI 1.170's `--docker-network host` does not put a function's container in the
host's network namespace. It leaves the container on Docker's default bridge and publishes the
runtime interface emulator's port 8080 to a free port of 127.0.0.1 (samcli/local/docker/container.py
skips only the network `connect` for "host"; aws/aws-sam-cli#7278, which would have handled it, was
closed unmerged). Here Docker runs without a bridge and without iptables (`make sam-local` must not
touch the host's network), and the functions must reach Redis, Postgres, LocalStack, DynamoDB Local
and localstripe on 127.0.0.1. So each Lambda container SAM creates is given `network_mode=host`, and
its emulator listens on the port SAM chose for it, with its runtime API on another free port, so
that several warm containers share the host's ports without clashing (with the defaults, every one
would bind 0.0.0.0:8080 and 127.0.0.1:9001: aws/aws-sam-cli#6347). The emulator's own flags
(`--runtime-interface-emulator-address`, `--runtime-api-address`) do the rest; SAM keeps talking to
the port it chose. Nothing else is changed: images, mounts, environment and timeouts are SAM's.
"""

import socket
import sys

import docker.models.containers as containers

LAMBDA_LABEL = "sam.cli.container.type"
EMULATOR_PORT = "8080"

_create = containers.ContainerCollection.create


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def on_host_network(kwargs: dict) -> dict:
    """The container options SAM built, for the host's network: the emulator on SAM's port."""
    ports = kwargs.pop("ports", None) or {}
    _, port = ports[EMULATOR_PORT]
    kwargs["network_mode"] = "host"
    kwargs["entrypoint"] = list(kwargs["entrypoint"]) + [
        "--runtime-interface-emulator-address",
        f"127.0.0.1:{port}",
        "--runtime-api-address",
        f"127.0.0.1:{free_port()}",
    ]
    return kwargs


def create(self, image=None, command=None, **kwargs):
    if (kwargs.get("labels") or {}).get(LAMBDA_LABEL) == "lambda":
        kwargs = on_host_network(kwargs)
    return _create(self, image, command, **kwargs)


containers.ContainerCollection.create = create

if __name__ == "__main__":
    from samcli.cli.main import cli

    sys.argv[0] = "sam"
    sys.exit(cli())
