// Pub/sub features of the SDK beyond a plain publish: bulk publish (`pubsub.publishBulk`), raw
// payloads (publish metadata `rawPayload`, subscription metadata `{ rawPayload: true }`) and
// bulk subscriptions (`server.pubsub.subscribeBulk`), against an HTTP `DaprServer` app.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { CommunicationProtocolEnum, DaprServer } from "@dapr/dapr";

import { PROTOCOLS, QUIET, Sidecar, freePort, waitFor } from "../lib/sidecar.mjs";

describe("pub/sub extras (HTTP app)", () => {
  let sidecar;
  let server;
  const got = { bulkIn: [], rawSub: [], rawPub: [], bulkSub: [] };

  before(async () => {
    const appPort = await freePort();
    sidecar = await Sidecar.start({ appPort });
    server = new DaprServer({
      serverHost: "127.0.0.1",
      serverPort: String(appPort),
      communicationProtocol: CommunicationProtocolEnum.HTTP,
      clientOptions: { daprHost: "127.0.0.1", daprPort: String(sidecar.httpPort) },
      logger: QUIET,
    });
    const push = (list) => async (data) => {
      list.push(data);
    };
    await server.pubsub.subscribe("pubsub", "bulk-in", push(got.bulkIn));
    // The SDK JSON-encodes subscription metadata values, so `true` (not "true") is what
    // reaches the sidecar as "true".
    await server.pubsub.subscribe("pubsub", "raw-sub", push(got.rawSub), "", { rawPayload: true });
    await server.pubsub.subscribe("pubsub", "raw-pub", push(got.rawPub));
    await server.pubsub.subscribeBulk("pubsub", "bulk-sub", push(got.bulkSub));
    await server.start();
    await waitFor(
      async () => ((await sidecar.metadata()).subscriptions ?? []).length >= 4,
      "the app's four subscriptions",
    );
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

      it("bulk-publishes to a subscription", async () => {
        got.bulkIn.length = 0;
        // The SDK sends each entry as {entryID, event, contentType, metadata}.
        const res = await client.pubsub.publishBulk("pubsub", "bulk-in", [{ n: 1, via: name }, `two-${name}`]);
        assert.deepEqual(
          res.failedMessages.map((f) => String(f.error?.message ?? f.error)),
          [],
          "the sidecar refused entries",
        );
        await waitFor(() => got.bulkIn.length >= 2, "both bulk-published events", 5000);
        assert.deepEqual(
          got.bulkIn.map((d) => JSON.stringify(d)).sort(),
          [JSON.stringify({ n: 1, via: name }), JSON.stringify(`two-${name}`)].sort(),
        );
      });

      it("publishes a raw payload to a rawPayload subscription", async () => {
        got.rawSub.length = 0;
        await client.pubsub.publish("pubsub", "raw-sub", { raw: name }, { metadata: { rawPayload: "true" } });
        await waitFor(() => got.rawSub.length > 0, "the raw event", 5000);
        assert.deepEqual(got.rawSub[0], { raw: name });
      });

      it("publishes a raw JSON payload to a plain subscription", async () => {
        // daprd posts the message bytes as they are (`WithRawDataBytes(msg.Data)` in its HTTP
        // postman) when they parse as a JSON object, and the SDK hands a body without
        // `data`/`data_base64` to the handler as it is.
        got.rawPub.length = 0;
        await client.pubsub.publish("pubsub", "raw-pub", { raw: name, n: 3 }, { metadata: { rawPayload: "true" } });
        await waitFor(() => got.rawPub.length > 0, "the raw event", 5000);
        assert.deepEqual(got.rawPub[0], { raw: name, n: 3 });
      });

      it("delivers to a bulk subscription", async () => {
        // daprd delivers a bulkSubscribe subscription's events to an HTTP app as a
        // BulkSubscribeEnvelope ({id, entries: [{entryId, event, contentType, metadata}], ...}),
        // which is what the SDK's bulk route reads.
        got.bulkSub.length = 0;
        await client.pubsub.publish("pubsub", "bulk-sub", { b: name });
        await waitFor(() => got.bulkSub.length > 0, "the event at the bulk subscription", 5000);
        assert.deepEqual(got.bulkSub[0], { b: name });
      });
    });
  }
});
