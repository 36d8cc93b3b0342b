// The SDK's app side (`DaprServer`, its HTTP app server) behind the sidecar: a subscription
// registered with `server.pubsub.subscribe` receives what the SDK's client publishes, and a
// method registered with `server.invoker.listen` answers `client.invoker.invoke`, over both
// client protocols.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { CommunicationProtocolEnum, DaprServer, HttpMethod } from "@dapr/dapr";

import { APP_ID, PROTOCOLS, QUIET, Sidecar, freePort, waitFor } from "../lib/sidecar.mjs";

describe("app behind the sidecar (DaprServer over HTTP)", () => {
  let sidecar;
  let server;
  const events = []; // [data, headers]
  const calls = []; // what the invoked method saw

  before(async () => {
    const appPort = await freePort();
    sidecar = await Sidecar.start({ appPort, appProtocol: "http" });
    server = new DaprServer({
      serverHost: "127.0.0.1",
      serverPort: String(appPort),
      communicationProtocol: CommunicationProtocolEnum.HTTP,
      clientOptions: {
        daprHost: "127.0.0.1",
        daprPort: String(sidecar.httpPort),
        communicationProtocol: CommunicationProtocolEnum.HTTP,
      },
      logger: QUIET,
    });
    await server.pubsub.subscribe("pubsub", "orders", async (data, headers) => {
      events.push([data, headers]);
    });
    await server.invoker.listen(
      "hello",
      async (req) => {
        calls.push(req);
        return { got: JSON.parse(req.body), contentType: req.metadata.contentType };
      },
      { method: HttpMethod.POST },
    );
    await server.start();
    // The sidecar retries `GET /dapr/subscribe` until the app answers.
    await waitFor(async () => {
      const md = await sidecar.metadata();
      return (md.subscriptions ?? []).some((s) => s.pubsubname === "pubsub" && s.topic === "orders");
    }, "the app's subscription in the sidecar's metadata");
  });

  after(async () => {
    try {
      await server?.stop();
    } finally {
      await sidecar?.stop();
    }
  });

  for (const [name, protocol] of PROTOCOLS) {
    describe(`client over ${name}`, () => {
      let client;
      before(() => {
        client = sidecar.client(protocol);
      });
      after(async () => {
        await client?.stop();
      });

      it("publishes a JSON event the subscription receives", async () => {
        events.length = 0;
        const res = await client.pubsub.publish("pubsub", "orders", { id: 7, via: name });
        assert.equal(res.error, undefined, String(res.error));
        await waitFor(() => events.length > 0, "the event at the DaprServer subscription");
        const [data, headers] = events[0];
        assert.deepEqual(data, { id: 7, via: name });
        assert.match(headers["content-type"], /^application\/cloudevents\+json/);
      });

      it("publishes a text event", async () => {
        events.length = 0;
        const res = await client.pubsub.publish("pubsub", "orders", `plain-${name}`);
        assert.equal(res.error, undefined, String(res.error));
        await waitFor(() => events.length > 0, "the event at the DaprServer subscription");
        assert.equal(events[0][0], `plain-${name}`);
      });

      it("invokes a method registered with server.invoker.listen", async () => {
        calls.length = 0;
        const res = await client.invoker.invoke(APP_ID, "hello", HttpMethod.POST, { ping: name });
        assert.deepEqual(res, { got: { ping: name }, contentType: "application/json" });
        assert.equal(calls.length, 1);
      });
    });
  }
});

describe("app started before the sidecar", () => {
  it("gets its subscription picked up and its events delivered", async () => {
    const [appPort, grpcPort, httpPort] = [await freePort(), await freePort(), await freePort()];
    const received = [];
    const server = new DaprServer({
      serverHost: "127.0.0.1",
      serverPort: String(appPort),
      communicationProtocol: CommunicationProtocolEnum.HTTP,
      clientOptions: { daprHost: "127.0.0.1", daprPort: String(httpPort) },
      logger: QUIET,
    });
    await server.pubsub.subscribe("pubsub", "early", async (data) => {
      received.push(data);
    });
    // DaprServer.start() listens, then waits (polling /v1.0/metadata) for the sidecar.
    const started = server.start();
    let sidecar;
    try {
      sidecar = await Sidecar.start({ appPort, grpcPort, httpPort });
      await started;
      await waitFor(
        async () => ((await sidecar.metadata()).subscriptions ?? []).some((s) => s.topic === "early"),
        "the subscription",
      );
      const client = sidecar.client(CommunicationProtocolEnum.GRPC);
      await client.pubsub.publish("pubsub", "early", { n: 1 });
      await waitFor(() => received.length > 0, "the event");
      assert.deepEqual(received[0], { n: 1 });
    } finally {
      await started.catch(() => {});
      await server.stop();
      await sidecar?.stop();
    }
  });
});

describe("app behind the sidecar (DaprServer over gRPC, --app-protocol grpc)", () => {
  let sidecar;
  let server;
  const events = [];
  const bulkEvents = [];

  before(async () => {
    const [appPort, grpcPort, httpPort] = [await freePort(), await freePort(), await freePort()];
    server = new DaprServer({
      serverHost: "127.0.0.1",
      serverPort: String(appPort),
      communicationProtocol: CommunicationProtocolEnum.GRPC,
      clientOptions: {
        daprHost: "127.0.0.1",
        daprPort: String(grpcPort),
        communicationProtocol: CommunicationProtocolEnum.GRPC,
      },
      logger: QUIET,
    });
    await server.pubsub.subscribe("pubsub", "jobs", async (data, headers) => {
      events.push([data, headers]);
    });
    // For a bulk subscription daprd would call the app's OnBulkTopicEventAlpha1; layotto calls
    // OnTopicEvent per event. The SDK's gRPC server serves both, so this handler sees the event.
    await server.pubsub.subscribeBulk("pubsub", "bulk-jobs", async (data) => {
      bulkEvents.push(data);
    });
    await server.invoker.listen("hello", async (req) => ({ got: JSON.parse(req.body) }), { method: HttpMethod.POST });
    await server.invoker.listen("ping", async () => ({ pong: true }), { method: HttpMethod.GET });
    const started = server.start();
    try {
      sidecar = await Sidecar.start({ appPort, appProtocol: "grpc", grpcPort, httpPort });
    } finally {
      await started;
    }
    await waitFor(
      async () => ((await sidecar.metadata()).subscriptions ?? []).length >= 2,
      "the gRPC app's subscriptions",
    );
  });

  after(async () => {
    // The sidecar first: the SDK's gRPC server (an http2 server) only finishes `stop()` once
    // its clients have hung up, and the sidecar keeps its connection to the app open (as daprd
    // does).
    try {
      await sidecar?.stop();
    } finally {
      await server?.stop();
    }
  });

  for (const [name, protocol] of PROTOCOLS) {
    describe(`client over ${name}`, () => {
      let client;
      before(() => {
        client = sidecar.client(protocol);
      });
      after(async () => {
        await client?.stop();
      });

      it("publishes to the gRPC app's subscriptions", async () => {
        events.length = 0;
        bulkEvents.length = 0;
        await client.pubsub.publish("pubsub", "jobs", { job: name });
        await client.pubsub.publish("pubsub", "bulk-jobs", { bulk: name });
        await waitFor(() => events.length > 0 && bulkEvents.length > 0, "the events at the gRPC app");
        assert.deepEqual(events[0][0], { job: name });
        assert.deepEqual(bulkEvents[0], { bulk: name });
      });

      it("invokes methods on the gRPC app", async () => {
        assert.deepEqual(await client.invoker.invoke(APP_ID, "hello", HttpMethod.POST, { n: name }), {
          got: { n: name },
        });
        assert.deepEqual(await client.invoker.invoke(APP_ID, "ping", HttpMethod.GET), { pong: true });
      });
    });
  }
});
