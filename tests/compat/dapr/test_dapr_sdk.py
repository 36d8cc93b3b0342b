"""The official Dapr Python SDK (`dapr` from PyPI, unmodified) against layotto started like
`daprd`: state with ETags and transactions, publish to an HTTP app and to a gRPC app built with
`dapr.ext.grpc` (and its input binding), the streaming subscribe API, service invocation, secrets, configuration,
locks, metadata, the API token and Dapr's HTTP error shape."""
import json
import threading
import time
import urllib.error
import urllib.request

import grpc
import pytest
from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError
from dapr.clients.grpc._state import Concurrency, StateItem, StateOptions
from dapr.clients.grpc._request import TransactionalStateOperation, TransactionOperationType

from conftest import DaprSidecar, free_port


def wait_for(pred, what, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def client(sidecar, monkeypatch, token=None) -> DaprClient:
    sidecar.sdk_env(monkeypatch, token)
    return DaprClient(address=f"127.0.0.1:{sidecar.grpc_port}")


def test_state_with_etags_bulk_and_transactions(http_sidecar, monkeypatch):
    with client(http_sidecar, monkeypatch) as d:
        d.save_state("statestore", "order-1", "v1")
        got = d.get_state("statestore", "order-1")
        assert got.data == b"v1" and got.etag
        # A stale ETag is refused with Dapr's code; the right one wins.
        d.save_state("statestore", "order-1", "v2", etag=got.etag)
        with pytest.raises(DaprGrpcError) as e:
            d.save_state("statestore", "order-1", "v3", etag=got.etag,
                         options=StateOptions(concurrency=Concurrency.first_write))
        assert e.value.code() == grpc.StatusCode.ABORTED
        assert d.get_state("statestore", "order-1").data == b"v2"

        d.save_bulk_state("statestore", [StateItem("a", "1"), StateItem("b", "2")])
        items = {i.key: i.data for i in d.get_bulk_state("statestore", ["a", "b", "missing"]).items}
        assert items == {"a": b"1", "b": b"2", "missing": b""}

        d.execute_state_transaction("statestore", [
            TransactionalStateOperation(key="a", data="10"),
            TransactionalStateOperation(key="b", operation_type=TransactionOperationType.delete),
        ])
        assert d.get_state("statestore", "a").data == b"10"
        assert d.get_state("statestore", "b").data == b""

        d.delete_state("statestore", "a")
        assert d.get_state("statestore", "a").data == b""

        # Unknown store: Dapr's rich error (ErrorInfo reason) survives the SDK.
        with pytest.raises(DaprGrpcError) as e:
            d.get_state("nope", "k")
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert e.value.error_code() == "DAPR_STATE_NOT_FOUND"


def test_query_state(http_sidecar, monkeypatch):
    """The SDK's query_state (QueryStateAlpha1) on the in-memory store, an extension Dapr's
    in-memory store lacks: typed filters, sort and paging."""
    with client(http_sidecar, monkeypatch) as d:
        for key, doc in [("p1", {"city": "Oslo", "n": 3}), ("p2", {"city": "Rome", "n": 12}),
                         ("p3", {"city": "Oslo", "n": 40})]:
            d.save_state("statestore", key, json.dumps(doc),
                         state_metadata={"contentType": "application/json"})
        q = {"filter": {"EQ": {"city": "Oslo"}}, "sort": [{"key": "n", "order": "DESC"}],
             "page": {"limit": 1}}
        resp = d.query_state("statestore", json.dumps(q))
        assert [r.key for r in resp.results] == ["p3"]
        assert json.loads(resp.results[0].value) == {"city": "Oslo", "n": 40}
        assert resp.results[0].etag
        assert resp.token == "1"
        q["page"]["token"] = resp.token
        resp = d.query_state("statestore", json.dumps(q))
        assert [r.key for r in resp.results] == ["p1"]
        with pytest.raises(DaprGrpcError) as e:
            d.query_state("statestore", json.dumps({"filter": {"GT": {"n": "x"}}}))
        assert e.value.code() == grpc.StatusCode.INTERNAL
        assert e.value.error_code() == "DAPR_STATE_QUERY_FAILED"


def test_publish_reaches_http_app_subscription(http_sidecar, http_app, monkeypatch):
    wait_for(lambda: _metadata_subscriptions(http_sidecar), "the app's subscription")
    with client(http_sidecar, monkeypatch) as d:
        d.publish_event("pubsub", "orders", json.dumps({"id": 7}), data_content_type="application/json")
    wait_for(lambda: http_app.events, "the event at the HTTP app")
    ev = http_app.events[0]
    assert ev["data"] == {"id": 7}
    assert ev["topic"] == "orders" and ev["pubsubname"] == "pubsub"
    assert ev["specversion"] == "1.0" and ev["source"] == "pyapp"


def _metadata_subscriptions(sidecar):
    with urllib.request.urlopen(f"http://127.0.0.1:{sidecar.http_port}/v1.0/metadata") as r:
        return json.load(r).get("subscriptions")


def test_streaming_subscribe(http_sidecar, monkeypatch):
    with client(http_sidecar, monkeypatch) as d:
        sub = d.subscribe("pubsub", "stream-topic")
        try:
            d.publish_event("pubsub", "stream-topic", "hello", data_content_type="text/plain")
            msg = None
            deadline = time.time() + 10
            while msg is None and time.time() < deadline:
                msg = sub.next_message()
            assert msg is not None, "no message on the stream"
            assert msg.data() == "hello"
            assert msg.topic() == "stream-topic"
            sub.respond_success(msg)
        finally:
            sub.close()


def test_invoke_method_to_http_app(http_sidecar, monkeypatch):
    with client(http_sidecar, monkeypatch) as d:
        resp = d.invoke_method(
            "pyapp", "echo/items", data=b'{"n": 1}', content_type="application/json",
            http_verb="PUT", http_querystring=(("a", "1"),), metadata=(("x-custom", "v"),),
        )
    body = json.loads(resp.data)
    assert body["method"] == "PUT"
    assert body["path"] == "/echo/items?a=1"
    assert body["body"] == '{"n": 1}'
    assert body["x-custom"] == "v"


def test_secrets(http_sidecar, monkeypatch):
    with client(http_sidecar, monkeypatch) as d:
        assert d.get_secret("secretstore", "db-password").secret == {"db-password": "s3cret"}
        assert d.get_secret("secretstore", "nested:user").secret == {"nested:user": "alice"}
        bulk = d.get_bulk_secret("secretstore").secrets
        assert bulk["nested:port"] == {"nested:port": "5432"}


def test_configuration_get_and_subscribe(http_sidecar, monkeypatch):
    # Dapr has no write API for configuration: write through the Layotto API, which the same
    # port serves.
    from spec.proto.runtime.v1 import runtime_pb2 as lp, runtime_pb2_grpc as lg  # noqa: PLC0415

    layotto = lg.RuntimeStub(grpc.insecure_channel(f"127.0.0.1:{http_sidecar.grpc_port}"))

    def save(value):
        layotto.SaveConfiguration(lp.SaveConfigurationRequest(
            store_name="configstore", app_id="pyapp",
            items=[lp.ConfigurationItem(key="feature", content=value)]))

    save("off")
    seen = []
    with client(http_sidecar, monkeypatch) as d:
        got = d.get_configuration("configstore", ["feature"])
        assert got.items["feature"].value == "off"
        sub_id = d.subscribe_configuration(
            "configstore", ["feature"], lambda _id, resp: seen.extend(
                (k, v.value) for k, v in resp.items.items()))
        assert sub_id
        time.sleep(0.3)
        save("on")
        wait_for(lambda: ("feature", "on") in seen, "the configuration change")
        assert d.unsubscribe_configuration("configstore", sub_id)


def test_lock_and_metadata(http_sidecar, http_app, monkeypatch):
    with client(http_sidecar, monkeypatch) as d:
        assert d.try_lock("lockstore", "res", "owner-a", 10).success
        assert not d.try_lock("lockstore", "res", "owner-b", 10).success
        assert d.unlock("lockstore", "res", "owner-b").status.name.upper() == "LOCK_BELONGS_TO_OTHERS"
        assert d.unlock("lockstore", "res", "owner-a").status.name.upper() == "SUCCESS"
        assert d.unlock("lockstore", "res", "owner-a").status.name.upper() == "LOCK_DOES_NOT_EXIST"

        d.set_metadata("team", "blue")
        md = d.get_metadata()
        assert md.application_id == "pyapp"
        types = {c.name: c.type for c in md.registered_components}
        assert types["statestore"] == "state.in-memory"
        assert types["pubsub"] == "pubsub.in-memory"
        assert types["secretstore"] == "secretstores.local.file"
        assert md.extended_metadata["team"] == "blue"


def test_grpc_app_subscription_and_invocation(monkeypatch):
    from dapr.ext.grpc import App, InvokeMethodRequest  # noqa: PLC0415

    received = []
    app = App()

    @app.subscribe(pubsub_name="pubsub", topic="jobs")
    def on_job(event):
        received.append((event.data, event.subject))

    @app.method("hello")
    def hello(req: InvokeMethodRequest):
        return json.dumps({"got": req.data.decode(), "type": req.content_type})

    port = free_port()
    threading.Thread(target=app.run, args=(port, "127.0.0.1"), daemon=True).start()
    sidecar = DaprSidecar(port, "grpc")
    try:
        wait_for(lambda: _metadata_subscriptions(sidecar), "the gRPC app's subscription")
        with client(sidecar, monkeypatch) as d:
            d.publish_event("pubsub", "jobs", b"job-1", data_content_type="text/plain")
            wait_for(lambda: received, "the event at the gRPC app")
            assert received[0] == (b"job-1", "jobs")
            resp = d.invoke_method("pyapp", "hello", data=b"ping", content_type="text/plain",
                                   http_verb="POST")
            assert json.loads(resp.data) == {"got": "ping", "type": "text/plain"}
    finally:
        sidecar.stop()
        app.stop()


CRON = """apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: tick
spec:
  type: bindings.cron
  version: v1
  metadata:
  - name: schedule
    value: "@every 1s"
"""


def test_grpc_app_input_binding(monkeypatch):
    """A gRPC app built with dapr.ext.grpc gets `bindings.cron` ticks through OnBindingEvent
    once it lists the binding in ListInputBindings."""
    from dapr.ext.grpc import App  # noqa: PLC0415

    ticks = []
    app = App()

    @app.binding("tick")
    def on_tick(request):
        ticks.append(dict(request.binding_metadata))

    port = free_port()
    threading.Thread(target=app.run, args=(port, "127.0.0.1"), daemon=True).start()
    sidecar = DaprSidecar(port, "grpc", extra_resources=CRON)
    try:
        wait_for(lambda: len(ticks) >= 2, "two cron ticks at the gRPC app", timeout=15)
        assert ticks[0]["timeZone"] == "Local"
        assert ticks[0]["readTimeUTC"].endswith(" +0000 UTC")
    finally:
        sidecar.stop()
        app.stop()


def test_api_token_guards_every_route_but_healthz(http_app, monkeypatch):
    sidecar = DaprSidecar(http_app.port, "http", token="tok-123")
    try:
        base = f"http://127.0.0.1:{sidecar.http_port}/v1.0"
        for headers in ({}, {"dapr-api-token": "wrong"}):
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(urllib.request.Request(f"{base}/metadata", headers=headers))
            assert e.value.code == 401
        with urllib.request.urlopen(f"{base}/healthz") as r:
            assert r.status == 204
        # gRPC without the token is refused too.
        sidecar.sdk_env(monkeypatch, None)
        with pytest.raises(DaprGrpcError) as e:
            DaprClient(address=f"127.0.0.1:{sidecar.grpc_port}").get_state("statestore", "k")
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # With the token the SDK works, and the token is not forwarded to the app.
        with client(sidecar, monkeypatch, token="tok-123") as d:
            d.save_state("statestore", "k", "v")
            assert d.get_state("statestore", "k").data == b"v"
            body = json.loads(d.invoke_method("pyapp", "echo", data=b"x", http_verb="POST").data)
            assert body["token"] is None
    finally:
        sidecar.stop()


def test_bad_http_input_gets_dapr_error_shape(http_sidecar):
    base = f"http://127.0.0.1:{http_sidecar.http_port}/v1.0"
    cases = [
        ("POST", "/state/statestore", b"{not json", 400, "ERR_MALFORMED_REQUEST"),
        ("POST", "/state/statestore", b'{"key": "k"}', 400, "ERR_MALFORMED_REQUEST"),
        ("POST", "/state/nope", b'[{"key": "k", "value": 1}]', 400, "ERR_STATE_STORE_NOT_FOUND"),
        ("POST", "/state/statestore", b'[{"key": "k", "value": "' + b"x" * (5 << 20) + b'"}]', 413, None),
    ]
    for method, path, body, status, code in cases:
        req = urllib.request.Request(base + path, data=body, method=method,
                                     headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req)
        assert e.value.code == status, (path, body[:40])
        payload = json.loads(e.value.read() or b"{}")
        if code:
            assert payload["errorCode"] == code, payload
            assert payload["message"]
