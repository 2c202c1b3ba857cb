// The library against a fake daemon in this process (same protos, no models): run with `npm test`.
// The real daemon is exercised by tests/test_daemon.py::test_node_client.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, before, test } from "node:test";
import { connect, grpc, loadServices, status } from "../index.mjs";

const TOKEN = "s3cret";
const folder = mkdtempSync(join(tmpdir(), "obscura-node-"));
const address = `unix://${join(folder, "fake.sock")}`;
let server;

function authorized(call) {
  return call.metadata.get("authorization")[0] === `Bearer ${TOKEN}`;
}

function denied() {
  return { code: grpc.status.UNAUTHENTICATED, details: "missing or bad bearer token" };
}

function answer(request) {
  if (request.encoded.toString() === "not an image") {
    return { frame_index: request.frame_index, error: { code: 3, message: "cannot decode" } };
  }
  return {
    frame_index: request.frame_index,
    encoded: request.encoded,
    format: "IMAGE_FORMAT_JPEG",
    binary_mask: Buffer.from("png"),
    metadata: { detections: [{ type_label: "face", bbox: [1, 2, 3, 4] }] },
  };
}

before(async () => {
  const { Anonymizer, Health } = loadServices();
  server = new grpc.Server();
  server.addService(Health.service, {
    Check: (_call, done) => done(null, { status: "SERVING" }),
  });
  server.addService(Anonymizer.service, {
    Anonymize: (call, done) => (authorized(call) ? done(null, answer(call.request)) : done(denied())),
    GetInfo: (call, done) => (authorized(call) ? done(null, { version: "fake" }) : done(denied())),
    AnonymizeStream: (call) => {
      if (!authorized(call)) return call.emit("error", denied());
      call.on("data", (request) => {
        if (request.frame_index === 99) call.emit("error", { code: grpc.status.INTERNAL, details: "boom" });
        else call.write(answer(request));
      });
      call.on("end", () => call.end());
    },
  });
  await new Promise((resolve, reject) =>
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
  );
});

after(() => {
  server.forceShutdown();
  rmSync(folder, { recursive: true, force: true });
});

function frames(count, bad = -1) {
  return Array.from({ length: count }, (_, i) => ({
    encoded: Buffer.from(i === bad ? "not an image" : "jpeg"),
    frame_index: i,
  }));
}

test("health, unary and info with a token", async () => {
  const client = connect(address, { token: TOKEN });
  try {
    assert.equal(await client.health(), "SERVING");
    const reply = await client.anonymize({ encoded: Buffer.from("jpeg"), name: "a.jpg" });
    assert.equal(reply.format, "IMAGE_FORMAT_JPEG");
    assert.equal(reply.image, "encoded");
    assert.deepEqual(reply.metadata.detections[0].bbox, [1, 2, 3, 4]);
    assert.equal((await client.info()).version, "fake");
  } finally {
    client.close();
  }
});

test("without a token: health works, the rest is UNAUTHENTICATED", async () => {
  const client = connect(address);
  try {
    assert.equal(await client.health(), "SERVING");
    await assert.rejects(client.info(), (err) => err.code === status.UNAUTHENTICATED);
    await assert.rejects(
      async () => {
        for await (const _ of client.stream(frames(2)));
      },
      (err) => err.code === status.UNAUTHENTICATED,
    );
  } finally {
    client.close();
  }
});

test("a stream answers every frame in order, a bad one with an error", async () => {
  const client = connect(address, { token: TOKEN });
  try {
    const got = [];
    for await (const reply of client.stream(frames(5, 2))) {
      got.push([reply.frame_index, reply.error ? reply.error.code : 0]);
    }
    assert.deepEqual(got, [[0, 0], [1, 0], [2, 3], [3, 0], [4, 0]]);

    async function* slow() {
      for (const request of frames(3)) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        yield request;
      }
    }
    const indexes = [];
    for await (const reply of client.stream(slow())) indexes.push(reply.frame_index);
    assert.deepEqual(indexes, [0, 1, 2]);

    let count = 0; // more frames than grpc-js buffers: the sender waits for "drain"
    for await (const reply of client.stream(frames(60))) assert.equal(reply.frame_index, count++);
    assert.equal(count, 60);
  } finally {
    client.close();
  }
});

test("a stream: leaving early cancels, failures throw", async () => {
  const client = connect(address, { token: TOKEN });
  try {
    for await (const reply of client.stream(frames(50))) {
      if (reply.frame_index === 1) break;
    }
    await assert.rejects(
      async () => {
        for await (const _ of client.stream([...frames(2), { encoded: Buffer.from("x"), frame_index: 99 }]));
      },
      (err) => err.code === status.INTERNAL,
    );
    async function* failing() {
      yield frames(1)[0];
      throw new Error("camera gone");
    }
    await assert.rejects(
      async () => {
        for await (const _ of client.stream(failing()));
      },
      { message: "camera gone" },
    );
    assert.equal(await client.health(), "SERVING"); // the channel is still usable
  } finally {
    client.close();
  }
});

test("examples/anonymize.mjs prints what tests/test_daemon.py reads", async () => {
  const image = join(folder, "image.jpg");
  writeFileSync(image, "jpeg");
  const example = join(dirname(fileURLToPath(import.meta.url)), "..", "examples", "anonymize.mjs");
  const { stdout } = await promisify(execFile)(process.execPath, [example, address, image, TOKEN], {
    timeout: 30000,
  });
  assert.deepEqual(JSON.parse(stdout), {
    health: "SERVING",
    unary: {
      format: "IMAGE_FORMAT_JPEG",
      bytes: 4,
      binary_mask_bytes: 3,
      detections: [{ type_label: "face", bbox: [1, 2, 3, 4] }],
    },
    stream: [0, 1, 2, 3, 4].map((i) => ({ frame_index: i, error: i === 2 ? 3 : 0, faces: i === 2 ? 0 : 1 })),
    without_token: "UNAUTHENTICATED",
  });
});
