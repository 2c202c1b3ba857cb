// The Node.js client against a daemon: health, Anonymize, AnonymizeStream, and a call without token.
// Usage: node examples/anonymize.mjs ADDRESS IMAGE TOKEN   (ADDRESS: unix:///path or host:port)
// Prints one JSON object with what it got; exits non-zero on any failure.
import { readFileSync } from "node:fs";
import { connect, status } from "../index.mjs";

const [address, imagePath, token] = process.argv.slice(2);
if (!address || !imagePath || !token) {
  console.error("usage: node examples/anonymize.mjs ADDRESS IMAGE TOKEN");
  process.exit(2);
}

const image = readFileSync(imagePath);
const options = {
  classes: [{ object_class: "OBJECT_CLASS_FACE", method: "METHOD_BLUR" }],
  save_mask: "SAVE_MASK_ALL",
};

// Five frames of a stream; the third is not an image and comes back with an error.
function* frames(count) {
  for (let i = 0; i < count; i++) {
    const encoded = i === 2 ? Buffer.from("not an image") : image;
    yield { encoded, frame_index: i, options: i === 0 ? options : undefined };
  }
}

const client = connect(address, { token });
const anonymous = connect(address);
try {
  const health = await client.health();
  const reply = await client.anonymize({ encoded: image, options, name: "node.jpg" });
  const stream = [];
  for await (const frame of client.stream(frames(5))) {
    stream.push({
      frame_index: frame.frame_index,
      error: frame.error ? frame.error.code : 0,
      faces: frame.metadata ? frame.metadata.detections.length : 0,
    });
  }
  const withoutToken = await anonymous.info().then(
    () => "OK",
    (err) => status[err.code],
  );
  console.log(
    JSON.stringify({
      health,
      unary: {
        format: reply.format,
        bytes: reply.encoded ? reply.encoded.length : 0,
        binary_mask_bytes: reply.binary_mask.length,
        detections: reply.metadata.detections.map((d) => ({ type_label: d.type_label, bbox: d.bbox })),
      },
      stream,
      without_token: withoutToken,
    }),
  );
  process.exitCode = 0;
} catch (err) {
  console.error(String(err));
  process.exitCode = 1;
} finally {
  client.close();
  anonymous.close();
}
