// A layotto sidecar started the way `daprd` is (`--resources-path` with Dapr Component YAML,
// `--app-id`, `--app-port`, `--app-protocol`, `--dapr-grpc-port`, `--dapr-http-port`), on free
// ports, for the official Dapr JavaScript SDK to talk to. Mirrors tests/compat/dapr/conftest.py.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

import { CommunicationProtocolEnum, DaprClient, LogLevel } from "@dapr/dapr";

const require = createRequire(import.meta.url);
const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(HERE, "../../../..");
export const APP_ID = "jsapp";
export const PROTOCOLS = [
  ["gRPC", CommunicationProtocolEnum.GRPC],
  ["HTTP", CommunicationProtocolEnum.HTTP],
];
// Keep the SDK's own logging to errors only.
export const QUIET = { level: LogLevel.Error };

// The component set and secrets shared with the Python SDK tests.
const FIXTURES = join(REPO, "tests", "compat", "fixtures", "dapr");
const COMPONENTS = readFileSync(join(FIXTURES, "components.yaml"), "utf8");
const SECRETS_FILE = join(FIXTURES, "secrets.json");

export function layottoBinary() {
  if (process.env.LAYOTTO_BIN) return process.env.LAYOTTO_BIN;
  const path = join(REPO, "target", "debug", "layotto");
  if (!existsSync(path)) {
    throw new Error(`${path} not built: run \`cargo build -p layotto\` first or set LAYOTTO_BIN`);
  }
  return path;
}

export function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(pred, what, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if (await pred()) return;
    } catch {
      // not yet
    }
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

// The SDK falls back to DAPR_API_TOKEN from the environment: tests pass tokens explicitly.
delete process.env.DAPR_API_TOKEN;

// Every sidecar this process started, so none outlives it even when a test throws or the
// runner is interrupted.
const running = new Set();
process.on("exit", () => {
  for (const p of running) p.kill("SIGKILL");
});
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.once(sig, () => {
    for (const p of running) p.kill("SIGKILL");
    process.exit(128 + (sig === "SIGINT" ? 2 : 15));
  });
}

export class Sidecar {
  /** Starts layotto on free ports; resolves once `GET /v1.0/healthz` answers 204. */
  static async start({ appPort, appProtocol = "http", token, grpcPort, httpPort } = {}) {
    const sc = new Sidecar();
    sc.dir = mkdtempSync(join(tmpdir(), "layotto-dapr-js-"));
    const res = join(sc.dir, "resources");
    mkdirSync(res);
    writeFileSync(join(res, "components.yaml"), COMPONENTS.replaceAll("{secrets}", SECRETS_FILE));
    sc.appPort = appPort ?? (await freePort());
    sc.grpcPort = grpcPort ?? (await freePort());
    sc.httpPort = httpPort ?? (await freePort());
    // Every sidecar its own metrics port: several run at once.
    const metricsPort = await freePort();
    const env = { ...process.env };
    delete env.DAPR_API_TOKEN;
    if (token) env.DAPR_API_TOKEN = token;
    // Warnings and errors only, unless the caller asks for more.
    env.RUST_LOG ??= "warn";
    sc.proc = spawn(
      layottoBinary(),
      [
        "start",
        "--resources-path", res,
        "--app-id", APP_ID,
        "--app-port", String(sc.appPort),
        "--app-protocol", appProtocol,
        "--dapr-grpc-port", String(sc.grpcPort),
        "--dapr-http-port", String(sc.httpPort),
        "--metrics-port", String(metricsPort),
        "--metrics-listen-address", "127.0.0.1",
      ],
      { env, stdio: ["ignore", "inherit", "inherit"] },
    );
    running.add(sc.proc);
    sc.exited = new Promise((r) => sc.proc.once("exit", (code, sig) => r({ code, sig })));
    try {
      await sc.#waitHealthy();
    } catch (e) {
      await sc.stop();
      throw e;
    }
    return sc;
  }

  async #waitHealthy(timeoutMs = 20_000) {
    const deadline = Date.now() + timeoutMs;
    let exited = null;
    this.exited.then((x) => (exited = x));
    while (Date.now() < deadline) {
      if (exited) throw new Error(`layotto exited (${JSON.stringify(exited)}) before Dapr healthz`);
      try {
        const r = await fetch(`http://127.0.0.1:${this.httpPort}/v1.0/healthz`);
        if (r.status === 204) return;
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    throw new Error("timed out waiting for Dapr healthz");
  }

  /** An SDK client for this sidecar over `protocol`. */
  client(protocol, extra = {}) {
    const port = protocol === CommunicationProtocolEnum.GRPC ? this.grpcPort : this.httpPort;
    return new DaprClient({
      daprHost: "127.0.0.1",
      daprPort: String(port),
      communicationProtocol: protocol,
      logger: QUIET,
      ...extra,
    });
  }

  /** `GET /v1.0/metadata` straight from the sidecar (not through the SDK). */
  async metadata(headers = {}) {
    const r = await fetch(`http://127.0.0.1:${this.httpPort}/v1.0/metadata`, { headers });
    return r.json();
  }

  async stop() {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill("SIGTERM");
      const killer = setTimeout(() => this.proc.kill("SIGKILL"), 5000);
      await this.exited;
      clearTimeout(killer);
    }
    if (this.proc) running.delete(this.proc);
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A client of Layotto's own gRPC API (`spec.proto.runtime.v1.Runtime`) on the same port, to
 * write configuration, which Dapr's API cannot. */
export function layottoRuntime(grpcPort) {
  const grpc = require("@grpc/grpc-js");
  const protoLoader = require("@grpc/proto-loader");
  const def = protoLoader.loadSync("spec/proto/runtime/v1/runtime.proto", {
    includeDirs: [join(REPO, "proto")],
    keepCase: true,
    defaults: true,
  });
  const { Runtime } = grpc.loadPackageDefinition(def).spec.proto.runtime.v1;
  const stub = new Runtime(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
  return {
    saveConfiguration(storeName, items) {
      return new Promise((ok, fail) =>
        stub.SaveConfiguration({ store_name: storeName, app_id: APP_ID, items }, (err) =>
          err ? fail(err) : ok(),
        ),
      );
    },
    close: () => stub.close(),
  };
}
