// A small Node.js client of the Obscura daemon (gRPC API obscura.v1.Anonymizer).
//
//   import { connect } from "obscura-client";
//   const client = connect("unix:///run/obscura/obscura.sock", { token: "TOKEN" });
//   await client.health();                       // "SERVING"
//   const reply = await client.anonymize({ encoded: jpegBuffer, options: { ... } });
//   for await (const r of client.stream(requests)) { ... }
//   client.close();
//
// Messages are plain objects as @grpc/proto-loader gives them with keepCase, longs Number,
// enums String, defaults and oneofs: field names as in proto/obscura/v1/anonymizer.proto
// (snake_case), enum values as their names ("METHOD_BLUR"), bytes as Buffer.
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

export { grpc };
/** grpc status codes by name and name by code: status.UNAUTHENTICATED === 16, status[16] === "UNAUTHENTICATED". */
export const status = grpc.status;

const here = dirname(fileURLToPath(import.meta.url));
/** The repository's proto folder, which this package reads (it keeps no copy of the API). */
export const PROTO_DIR = join(here, "..", "..", "proto");
export const LOAD_OPTIONS = Object.freeze({
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
});
// The daemon's own default message limit (a raw 4K BGR frame is 25 MB); grpc-js receives 4 MiB.
const MESSAGE_BYTES = 64 * 1024 * 1024;

const loaded = new Map();

/** Loads (once per folder) the Anonymizer and Health service constructors. */
export function loadServices(protoDir = PROTO_DIR) {
  if (!loaded.has(protoDir)) {
    const api = grpc.loadPackageDefinition(
      protoLoader.loadSync(join(protoDir, "obscura", "v1", "anonymizer.proto"), {
        ...LOAD_OPTIONS,
        includeDirs: [protoDir],
      }),
    );
    const health = grpc.loadPackageDefinition(
      protoLoader.loadSync(join(here, "health.proto"), LOAD_OPTIONS),
    );
    loaded.set(protoDir, {
      Anonymizer: api.obscura.v1.Anonymizer,
      Health: health.grpc.health.v1.Health,
    });
  }
  return loaded.get(protoDir);
}

function pem(value) {
  return value === undefined || Buffer.isBuffer(value) ? value : readFileSync(value);
}

function channelCredentials({ credentials, tlsCa, tlsCert, tlsKey }) {
  if (credentials) return credentials;
  if (tlsCa === undefined && tlsCert === undefined) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(pem(tlsCa) ?? null, pem(tlsKey) ?? null, pem(tlsCert) ?? null);
}

/**
 * Connects to a daemon; the channel is opened lazily, on the first call.
 *
 * @param {string} address "unix:///path/obscura.sock" or "host:port"
 * @param {object} [opts]
 * @param {string} [opts.token] bearer token, sent as "authorization: Bearer TOKEN"
 * @param {Buffer|string} [opts.tlsCa] PEM (or its path) of the CA that signed the daemon's
 *   certificate; TLS when given (or with tlsCert), plain otherwise
 * @param {Buffer|string} [opts.tlsCert] client certificate for mutual TLS (with tlsKey)
 * @param {Buffer|string} [opts.tlsKey]
 * @param {grpc.ChannelCredentials} [opts.credentials] replaces the three above
 * @param {object} [opts.channelOptions] grpc-js channel options, over the 64 MiB message limits
 * @param {number} [opts.timeoutMs] deadline of each call (none by default)
 * @param {string} [opts.protoDir] folder holding obscura/v1/anonymizer.proto (default PROTO_DIR)
 */
export function connect(address, opts = {}) {
  const { Anonymizer, Health } = loadServices(opts.protoDir);
  const anonymizer = new Anonymizer(address, channelCredentials(opts), {
    "grpc.max_receive_message_length": MESSAGE_BYTES,
    "grpc.max_send_message_length": MESSAGE_BYTES,
    ...opts.channelOptions,
  });
  const healthClient = new Health(address, grpc.credentials.createInsecure(), {
    channelOverride: anonymizer.getChannel(),
  });

  function metadata() {
    const md = new grpc.Metadata();
    if (opts.token) md.set("authorization", `Bearer ${opts.token}`);
    return md;
  }

  function callOptions(timeoutMs = opts.timeoutMs) {
    return timeoutMs === undefined ? {} : { deadline: Date.now() + timeoutMs };
  }

  function unary(client, method, request, timeoutMs) {
    return new Promise((resolve, reject) =>
      client[method](request, metadata(), callOptions(timeoutMs), (err, reply) =>
        err ? reject(err) : resolve(reply),
      ),
    );
  }

  return {
    address,

    /** Resolves to the serving status: "SERVING", "NOT_SERVING", ... (needs no token). */
    async health(service = "", { timeoutMs } = {}) {
      return (await unary(healthClient, "Check", { service }, timeoutMs)).status;
    },

    /** One image ({encoded} or {raw}) with its options; resolves to the AnonymizeResponse. */
    anonymize(request, { timeoutMs } = {}) {
      return unary(anonymizer, "Anonymize", request, timeoutMs);
    },

    /** Version, models, supported options and limits (GetInfoResponse). */
    info({ timeoutMs } = {}) {
      return unary(anonymizer, "GetInfo", {}, timeoutMs);
    },

    /**
     * An AnonymizeStream session: sends `requests` (an iterable or async iterable of
     * AnonymizeRequest) and yields one AnonymizeResponse per request, in request order. A bad
     * frame comes back with `error` set and the stream goes on; a failed call (bad token,
     * daemon stopping, deadline) throws from the iteration. The call starts when iteration
     * starts; leaving the loop early cancels it. Requests are written as the daemon takes
     * them (flow control), so a generator of frames is read no faster than they are handled.
     */
    async *stream(requests, { timeoutMs } = {}) {
      const call = anonymizer.AnonymizeStream(metadata(), callOptions(timeoutMs));
      call.on("error", () => {}); // reaches the loop below; a cancelled call's error goes nowhere
      let sendError;
      let done = false;
      (async () => {
        try {
          for await (const request of requests) {
            if (done) return;
            if (!call.write(request)) await once(call, "drain");
          }
          call.end();
        } catch (err) {
          if (!done) sendError = err;
          call.cancel();
        }
      })();
      try {
        for await (const response of call) yield response;
      } catch (err) {
        throw sendError ?? err;
      } finally {
        done = true;
        call.cancel();
      }
    },

    /** Closes the channel; calls in flight fail with CANCELLED / UNAVAILABLE. */
    close() {
      anonymizer.close();
    },
  };
}
