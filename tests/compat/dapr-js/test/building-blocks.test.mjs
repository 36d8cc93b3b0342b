// Secrets, configuration, distributed locks and metadata through the official Dapr JavaScript
// SDK, over gRPC and over HTTP where the SDK offers it.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { CommunicationProtocolEnum } from "@dapr/dapr";

import { APP_ID, PROTOCOLS, Sidecar, layottoRuntime, waitFor } from "../lib/sidecar.mjs";

// The SDK's LockStatus (types/lock/UnlockResponse), which its index does not export.
const LockStatus = { Success: 0, LockDoesNotExist: 1, LockBelongsToOthers: 2, InternalError: 3 };

describe("building blocks", () => {
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
      before(() => {
        client = sidecar.client(protocol);
      });
      after(async () => {
        await client?.stop();
      });

      it("gets secrets, nested keys and in bulk", async () => {
        assert.deepEqual(await client.secret.get("secretstore", "db-password"), { "db-password": "s3cret" });
        assert.deepEqual(await client.secret.get("secretstore", "nested:user"), { "nested:user": "alice" });
        const bulk = await client.secret.getBulk("secretstore");
        assert.deepEqual(bulk, {
          "db-password": { "db-password": "s3cret" },
          "nested:user": { "nested:user": "alice" },
          "nested:port": { "nested:port": "5432" },
        });
        await assert.rejects(client.secret.get("secretstore", "no-such-secret"));
      });

      it("locks and unlocks", async () => {
        const res = `res-${name}`;
        assert.deepEqual(await client.lock.lock("lockstore", res, "owner-a", 10), { success: true });
        assert.deepEqual(await client.lock.lock("lockstore", res, "owner-b", 10), { success: false });
        assert.deepEqual(await client.lock.unlock("lockstore", res, "owner-b"), {
          status: LockStatus.LockBelongsToOthers,
        });
        assert.deepEqual(await client.lock.unlock("lockstore", res, "owner-a"), { status: LockStatus.Success });
        assert.deepEqual(await client.lock.unlock("lockstore", res, "owner-a"), {
          status: LockStatus.LockDoesNotExist,
        });
        // Free again: another owner gets it.
        assert.deepEqual(await client.lock.lock("lockstore", res, "owner-b", 10), { success: true });
        assert.deepEqual(await client.lock.unlock("lockstore", res, "owner-b"), { status: LockStatus.Success });
      });

      it("gets and sets metadata", async () => {
        assert.equal(await client.metadata.set(`team-${name}`, "blue"), true);
        const md = await client.metadata.get();
        assert.equal(md.id, APP_ID);
        const types = Object.fromEntries(md.components.map((c) => [c.name, c.type]));
        assert.equal(types.statestore, "state.in-memory");
        assert.equal(types.pubsub, "pubsub.in-memory");
        assert.equal(types.lockstore, "lock.in-memory");
        assert.equal(types.configstore, "configuration.in-memory");
        assert.equal(types.secretstore, "secretstores.local.file");
        assert.equal(md.extended[`team-${name}`], "blue");
      });
    });
  }

  describe("configuration over gRPC", () => {
    // The SDK's HTTP client throws HTTPNotSupportedError for every configuration call, so only
    // its gRPC client can be tested. Dapr has no API to write configuration: items are written
    // through the Layotto API that the same gRPC port serves.
    let client;
    let layotto;
    before(() => {
      client = sidecar.client(CommunicationProtocolEnum.GRPC);
      layotto = layottoRuntime(sidecar.grpcPort);
    });
    after(async () => {
      layotto?.close();
      await client?.stop();
    });

    it("gets items", async () => {
      await layotto.saveConfiguration("configstore", [
        { key: "feature", content: "off" },
        { key: "limit", content: "10" },
      ]);
      const got = await client.configuration.get("configstore", ["feature", "limit"]);
      assert.deepEqual(Object.keys(got.items).sort(), ["feature", "limit"]);
      assert.equal(got.items.feature.value, "off");
      assert.equal(got.items.limit.value, "10");
      const missing = await client.configuration.get("configstore", ["no-such-key"]);
      assert.deepEqual(missing.items, {});
    });

    it("subscribes to changes and stops", async () => {
      await layotto.saveConfiguration("configstore", [{ key: "watched", content: "1" }]);
      const seen = [];
      const stream = await client.configuration.subscribeWithKeys("configstore", ["watched"], async (res) => {
        for (const [k, v] of Object.entries(res.items)) seen.push([k, v.value]);
      });
      try {
        // The subscription is live once the sidecar sent its first (id-only) message; keep
        // writing until an update shows up.
        let n = 2;
        await waitFor(async () => {
          if (seen.some(([k]) => k === "watched")) return true;
          await layotto.saveConfiguration("configstore", [{ key: "watched", content: String(n++) }]);
          await new Promise((r) => setTimeout(r, 100));
          return seen.some(([k]) => k === "watched");
        }, "a configuration update on the subscription");
        const last = seen.filter(([k]) => k === "watched").at(-1)[1];
        assert.ok(Number(last) >= 2, `an updated value, got ${JSON.stringify(seen)}`);
      } finally {
        await stream.stop();
      }
    });
  });
});
