"""Service invocation across three layotto-rs sidecars, with the official Dapr Python SDK as the
calling client: the client asks sidecar A for app `b` (an HTTP app), which relays to app `c` (a
gRPC app built with `dapr.ext.grpc.App`) through its own sidecar. The sidecars are started as
daprd is (no subcommand, `--dapr-internal-grpc-port`, `--config` with a Configuration naming
Dapr's SQLite name resolution over one shared file) and find each other by app id."""
import json
import subprocess
import tempfile
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from dapr.clients import DaprClient
from dapr.ext.grpc import App, InvokeMethodRequest

from harness import free_port, layotto_binary, stop, wait_until


class Sidecar:
    """The binary with daprd's flags for app `app_id`, registered in the SQLite file `db`."""

    def __init__(self, app_id: str, db: Path, app_port: int | None = None, protocol: str = "http",
                 env: dict | None = None):
        self.dir = tempfile.TemporaryDirectory()
        cfg = Path(self.dir.name) / "config.yaml"
        cfg.write_text(
            "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: nr\nspec:\n"
            "  nameResolution:\n    component: sqlite\n    configuration:\n"
            f"      connectionString: \"{db}\"\n"
        )
        self.http_port, self.grpc_port = free_port(), free_port()
        args = [
            layotto_binary(), "--app-id", app_id, "--config", str(cfg),
            "--dapr-http-port", str(self.http_port), "--dapr-grpc-port", str(self.grpc_port),
            "--dapr-internal-grpc-port", str(free_port()),
            "--dapr-internal-grpc-listen-address", "127.0.0.1",
            "--metrics-port", str(free_port()), "--app-protocol", protocol,
        ]
        if app_port:
            args += ["--app-port", str(app_port)]
        self.proc = subprocess.Popen(args, env={**__import__("os").environ, **(env or {})})
        wait_until(self.proc, self._healthy, f"sidecar {app_id}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/v1.0/healthz", timeout=1) as r:
                return r.status == 204
        except Exception:  # noqa: BLE001
            return False

    def stop(self):
        stop(self.proc)
        self.dir.cleanup()


class RelayApp:
    """HTTP app `b`: `POST /relay/<method>` calls app `c`'s <method> through its own sidecar and
    answers `b>` + what `c` answered; it records the caller headers it was given."""

    def __init__(self):
        self.port = free_port()
        self.sidecar_http = None
        self.callers = []
        app = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                app.callers.append((self.headers.get("dapr-caller-app-id"), self.headers.get("dapr-callee-app-id")))
                method = self.path.removeprefix("/relay/")
                req = urllib.request.Request(
                    f"http://127.0.0.1:{app.sidecar_http}/v1.0/invoke/c/method/{method}",
                    data=body, method="POST", headers={"Content-Type": "text/plain"},
                )
                with urllib.request.urlopen(req, timeout=10) as r:
                    answer = b"b>" + r.read()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_sdk_calls_through_three_sidecars(monkeypatch, tmp_path):
    db = tmp_path / "nr.db"
    grpc_app = App()
    seen = []

    @grpc_app.method(name="greet")
    def greet(req: InvokeMethodRequest):
        seen.append(dict(req.metadata))
        return json.dumps({"c got": req.data.decode()})

    c_port = free_port()
    threading.Thread(target=grpc_app.run, args=(c_port, "127.0.0.1"), daemon=True).start()
    relay = RelayApp()
    sidecars = []
    try:
        sidecars.append(Sidecar("c", db, c_port, "grpc", env={"APP_API_TOKEN": "c-app-token"}))
        b = Sidecar("b", db, relay.port)
        sidecars.append(b)
        relay.sidecar_http = b.http_port
        a = Sidecar("a", db)
        sidecars.append(a)
        monkeypatch.setenv("DAPR_HTTP_PORT", str(a.http_port))
        monkeypatch.setenv("DAPR_GRPC_PORT", str(a.grpc_port))
        monkeypatch.setenv("DAPR_RUNTIME_HOST", "127.0.0.1")
        monkeypatch.delenv("DAPR_API_TOKEN", raising=False)
        for protocol in ("http", "grpc"):
            monkeypatch.setenv("DAPR_API_METHOD_INVOCATION_PROTOCOL", protocol)
            with DaprClient(address=f"127.0.0.1:{a.grpc_port}") as d:
                resp = d.invoke_method("b", f"relay/greet", data=f"hi over {protocol}".encode(),
                                       content_type="text/plain", http_verb="POST")
            assert resp.data == f'b>{{"c got": "hi over {protocol}"}}'.encode(), protocol
        assert relay.callers == [("a", "b"), ("a", "b")]
        # The gRPC app gets the caller's id and its own sidecar's app token in its metadata.
        assert seen[-1].get("dapr-caller-app-id") in (["b"], "b"), seen[-1]
        assert seen[-1].get("dapr-api-token") in (["c-app-token"], "c-app-token"), seen[-1]
        # An unknown id is Dapr's ERR_DIRECT_INVOKE.
        monkeypatch.setenv("DAPR_API_METHOD_INVOCATION_PROTOCOL", "http")
        with DaprClient(address=f"127.0.0.1:{a.grpc_port}") as d:
            try:
                d.invoke_method("nobody", "x", data=b"", http_verb="POST")
                raise AssertionError("an unknown app id was invoked")
            except Exception as e:  # noqa: BLE001
                assert "ERR_DIRECT_INVOKE" in str(e) or "no host found" in str(e), e
    finally:
        for s in sidecars:
            s.stop()
        relay.server.shutdown()
        grpc_app.stop()
