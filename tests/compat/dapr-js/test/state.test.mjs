// State through the official Dapr JavaScript SDK, over gRPC and over HTTP: save, get, getBulk,
// delete, transactions and ETags (a stale ETag with first-write concurrency must be refused).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { CommunicationProtocolEnum, StateConcurrencyEnum } from "@dapr/dapr";

import { PROTOCOLS, Sidecar } from "../lib/sidecar.mjs";

const FIRST_WRITE = { concurrency: StateConcurrencyEnum.CONCURRENCY_FIRST_WRITE };

// An ETag mismatch, as daprd reports it: over gRPC status ABORTED (the SDK's ConnectError code
// 10); over HTTP 409 with errorCode ERR_STATE_SAVE / ERR_STATE_DELETE. The SDK's HTTP client
// reports a failed save/delete by returning `{ error }` (an Error whose message is JSON with the
// status and body) instead of throwing.
async function mustConflict(protocol, op, httpErrorCode) {
  if (protocol === CommunicationProtocolEnum.HTTP) {
    const res = await op();
    assert.ok(res?.error, `expected the sidecar to refuse, got ${JSON.stringify(res)}`);
    const err = JSON.parse(res.error.message);
    assert.equal(err.status, 409, res.error.message);
    assert.equal(JSON.parse(err.error_msg).errorCode, httpErrorCode, res.error.message);
    return;
  }
  await assert.rejects(op, (e) => {
    assert.equal(e.code, 10, `expected ABORTED, got ${e}`);
    return true;
  });
}

describe("state", () => {
  let sidecar;
  before(async () => {
    sidecar = await Sidecar.start();
  });
  after(async () => {
    await sidecar?.stop();
  });

  for (const [name, protocol] of PROTOCOLS) {
    describe(`over ${name}`, () => {
      let client;
      const k = (key) => `${name}-${key}`;
      before(() => {
        client = sidecar.client(protocol);
      });
      after(async () => {
        await client?.stop();
      });

      it("saves, gets and deletes", async () => {
        const res = await client.state.save("statestore", [
          { key: k("order-1"), value: { id: 1, item: "apple" } },
          { key: k("greeting"), value: "hello" },
        ]);
        assert.equal(res.error, undefined);
        assert.deepEqual(await client.state.get("statestore", k("order-1")), { id: 1, item: "apple" });
        assert.equal(await client.state.get("statestore", k("greeting")), "hello");

        const del = await client.state.delete("statestore", k("order-1"));
        assert.equal(del.error, undefined);
        // A missing key reads as empty (204 over HTTP, empty bytes over gRPC).
        assert.equal(await client.state.get("statestore", k("order-1")), "");
      });

      it("gets in bulk with ETags", async () => {
        await client.state.save("statestore", [
          { key: k("a"), value: "one" },
          { key: k("b"), value: { n: 2 } },
        ]);
        const items = await client.state.getBulk("statestore", [k("a"), k("b"), k("missing")]);
        const byKey = Object.fromEntries(items.map((i) => [i.key, i]));
        assert.deepEqual(Object.keys(byKey).sort(), [k("a"), k("b"), k("missing")].sort());
        assert.equal(byKey[k("a")].data, "one");
        assert.deepEqual(byKey[k("b")].data, { n: 2 });
        assert.ok(byKey[k("a")].etag, "an ETag for an existing key");
        assert.ok(!byKey[k("missing")].data, "no data for a missing key");
      });

      it("executes a transaction", async () => {
        await client.state.save("statestore", [
          { key: k("t1"), value: "old" },
          { key: k("t2"), value: "doomed" },
        ]);
        await client.state.transaction("statestore", [
          { operation: "upsert", request: { key: k("t1"), value: "new" } },
          { operation: "upsert", request: { key: k("t3"), value: "created" } },
          { operation: "delete", request: { key: k("t2") } },
        ]);
        assert.equal(await client.state.get("statestore", k("t1")), "new");
        assert.equal(await client.state.get("statestore", k("t3")), "created");
        assert.equal(await client.state.get("statestore", k("t2")), "");
      });

      it("refuses a stale ETag with first-write", async () => {
        const key = k("etag");
        await client.state.save("statestore", [{ key, value: "v1" }]);
        const [first] = await client.state.getBulk("statestore", [key]);
        assert.ok(first.etag);

        // The current ETag wins...
        const ok = await client.state.save("statestore", [
          { key, value: "v2", etag: first.etag, options: FIRST_WRITE },
        ]);
        assert.equal(ok.error, undefined);
        assert.equal(await client.state.get("statestore", key), "v2");

        // ...after which it is stale: save and delete with it are refused.
        await mustConflict(
          protocol,
          () => client.state.save("statestore", [{ key, value: "v3", etag: first.etag, options: FIRST_WRITE }]),
          "ERR_STATE_SAVE",
        );
        await mustConflict(
          protocol,
          () => client.state.delete("statestore", key, { etag: first.etag, ...FIRST_WRITE }),
          "ERR_STATE_DELETE",
        );
        assert.equal(await client.state.get("statestore", key), "v2");

        // A transaction carrying the stale ETag is refused as a whole.
        await assert.rejects(
          client.state.transaction("statestore", [
            { operation: "upsert", request: { key: k("etag-other"), value: "x" } },
            { operation: "upsert", request: { key, value: "v4", etag: first.etag, options: FIRST_WRITE } },
          ]),
        );
        assert.equal(await client.state.get("statestore", key), "v2");
        assert.equal(await client.state.get("statestore", k("etag-other")), "");

        // Delete with the current ETag works.
        const [now] = await client.state.getBulk("statestore", [key]);
        const del = await client.state.delete("statestore", key, { etag: now.etag, ...FIRST_WRITE });
        assert.equal(del.error, undefined);
        assert.equal(await client.state.get("statestore", key), "");
      });

      it("fails on an unknown store", async () => {
        await assert.rejects(client.state.get("nope", "k"));
      });
    });
  }
});
