// A Node.js client of the Obscura daemon: health, Anonymize and AnonymizeStream.
// Usage: node examples/anonymize.mjs ADDRESS IMAGE TOKEN   (ADDRESS: unix:///path or host:port)
// Prints one JSON object with what it got; exits non-zero on any failure.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const [address, imagePath, token] = process.argv.slice(2);
const loadOptions = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };
const api = grpc.loadPackageDefinition(
  protoLoader.loadSync(join(root, "..", "..", "proto", "obscura", "v1", "anonymizer.proto"), {
    ...loadOptions,
    includeDirs: [join(root, "..", "..", "proto")],
  }),
);
const healthApi = grpc.loadPackageDefinition(protoLoader.loadSync(join(root, "health.proto"), loadOptions));

const credentials = grpc.credentials.createInsecure();
const anonymizer = new api.obscura.v1.Anonymizer(address, credentials);
const health = new healthApi.grpc.health.v1.Health(address, credentials);
const metadata = new grpc.Metadata();
metadata.set("authorization", `Bearer ${token}`);

const image = readFileSync(imagePath);
const options = {
  classes: [{ object_class: "OBJECT_CLASS_FACE", method: "METHOD_BLUR" }],
  save_mask: "SAVE_MASK_ALL",
};

function check() {
  return new Promise((resolve, reject) =>
    health.check({ service: "" }, (err, reply) => (err ? reject(err) : resolve(reply.status))),
  );
}

function unary() {
  return new Promise((resolve, reject) =>
    anonymizer.Anonymize({ encoded: image, options, name: "node.jpg" }, metadata, (err, reply) =>
      err ? reject(err) : resolve(reply),
    ),
  );
}

function unauthenticated() {
  return new Promise((resolve) =>
    anonymizer.GetInfo({}, new grpc.Metadata(), (err) => resolve(err ? grpc.status[err.code] : "OK")),
  );
}

function stream(count) {
  return new Promise((resolve, reject) => {
    const call = anonymizer.AnonymizeStream(metadata);
    const got = [];
    call.on("data", (reply) =>
      got.push({
        frame_index: reply.frame_index,
        error: reply.error ? reply.error.code : 0,
        faces: reply.metadata ? reply.metadata.detections.length : 0,
      }),
    );
    call.on("error", reject);
    call.on("end", () => resolve(got));
    for (let i = 0; i < count; i++) {
      const encoded = i === 2 ? Buffer.from("not an image") : image;
      call.write({ encoded, frame_index: i, options: i === 0 ? options : undefined });
    }
    call.end();
  });
}

try {
  const status = await check();
  const reply = await unary();
  const frames = await stream(5);
  const denied = await unauthenticated();
  console.log(
    JSON.stringify({
      health: status,
      unary: {
        format: reply.format,
        bytes: reply.encoded ? reply.encoded.length : 0,
        binary_mask_bytes: reply.binary_mask.length,
        detections: reply.metadata.detections.map((d) => ({ type_label: d.type_label, bbox: d.bbox })),
      },
      stream: frames,
      without_token: denied,
    }),
  );
  process.exit(0);
} catch (err) {
  console.error(String(err));
  process.exit(1);
}
