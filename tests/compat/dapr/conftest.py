"""Fixtures for the official Dapr Python SDK tests: a layotto sidecar started the way `daprd`
is (`--resources-path` with Dapr Component YAML, `--app-id`, `--app-port`, `--app-protocol`,
`--dapr-grpc-port`, `--dapr-http-port`), plus the two kinds of app it talks to: an HTTP app and a
gRPC app built with the SDK's `dapr.ext.grpc.App`."""
import json
import subprocess
import sys
import tempfile
import threading
import urllib.request
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import free_port, generate_layotto_stubs, layotto_binary, stop, wait_until  # noqa: E402

sys.path.insert(0, str(generate_layotto_stubs()))
# dapr-ext-grpc installed beside dapr >= 1.19 warns at import; the code is the same.
warnings.filterwarnings("ignore", category=FutureWarning)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dapr"
COMPONENTS = (FIXTURES / "components.yaml").read_text()
SECRETS_FILE = FIXTURES / "secrets.json"


class DaprSidecar:
    """`layotto start` in Dapr mode on free ports; `env` gives the SDK its ports."""

    def __init__(self, app_port: int, app_protocol: str, token: str | None = None,
                 extra_resources: str = ""):
        self.dir = tempfile.TemporaryDirectory()
        d = Path(self.dir.name)
        res = d / "resources"
        res.mkdir()
        (res / "components.yaml").write_text(COMPONENTS.replace("{secrets}", str(SECRETS_FILE)))
        if extra_resources:
            (res / "extra.yaml").write_text(extra_resources)
        self.grpc_port, self.http_port = free_port(), free_port()
        self.app_id = "pyapp"
        env = dict(__import__("os").environ)
        env.pop("DAPR_API_TOKEN", None)
        if token:
            env["DAPR_API_TOKEN"] = token
        self.proc = subprocess.Popen([
            layotto_binary(), "start",
            "--resources-path", str(res),
            "--app-id", self.app_id,
            "--app-port", str(app_port),
            "--app-protocol", app_protocol,
            "--dapr-grpc-port", str(self.grpc_port),
            "--dapr-http-port", str(self.http_port),
            # Every sidecar its own metrics port: several run at once.
            "--metrics-port", str(free_port()),
            "--metrics-listen-address", "127.0.0.1",
        ], env=env)
        wait_until(self.proc, self._healthy, "Dapr healthz")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/v1.0/healthz", timeout=1) as r:
                return r.status == 204
        except Exception:  # noqa: BLE001
            return False

    def sdk_env(self, monkeypatch, token: str | None = None):
        monkeypatch.setenv("DAPR_GRPC_PORT", str(self.grpc_port))
        monkeypatch.setenv("DAPR_HTTP_PORT", str(self.http_port))
        monkeypatch.setenv("DAPR_RUNTIME_HOST", "127.0.0.1")
        monkeypatch.setenv("DAPR_HEALTH_TIMEOUT", "10")
        if token is None:
            monkeypatch.delenv("DAPR_API_TOKEN", raising=False)
        else:
            monkeypatch.setenv("DAPR_API_TOKEN", token)

    def stop(self):
        stop(self.proc)
        self.dir.cleanup()


class HttpApp:
    """A Dapr HTTP app: subscribes to `orders` on `pubsub`, records events and configuration
    updates, and answers `/echo/...` with what it received."""

    def __init__(self):
        self.events = []
        self.config_updates = []
        self.port = free_port()
        app = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status, body=b"", ctype="application/json", headers=()):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def do_GET(self):
                if self.path == "/dapr/subscribe":
                    subs = [{"pubsubname": "pubsub", "topic": "orders", "route": "/orders"}]
                    return self._send(200, json.dumps(subs).encode())
                return self._echo(b"")

            def do_POST(self):
                body = self._body()
                if self.path == "/orders":
                    app.events.append(json.loads(body))
                    return self._send(200, b'{"status": "SUCCESS"}')
                if self.path.startswith("/configuration/"):
                    app.config_updates.append((self.path, json.loads(body)))
                    return self._send(200)
                return self._echo(body)

            def do_PUT(self):
                return self._echo(self._body())

            def _echo(self, body):
                if not self.path.startswith("/echo"):
                    return self._send(404, b"not found", "text/plain")
                answer = {
                    "method": self.command,
                    "path": self.path,
                    "body": body.decode(),
                    "token": self.headers.get("dapr-api-token"),
                    "x-custom": self.headers.get("x-custom"),
                }
                return self._send(200, json.dumps(answer).encode(), headers=[("x-app", "yes")])

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


@pytest.fixture
def http_app():
    app = HttpApp()
    yield app
    app.stop()


@pytest.fixture
def http_sidecar(http_app):
    s = DaprSidecar(http_app.port, "http")
    yield s
    s.stop()
