// A sigstream wire-v1 client in Node.js, written from docs/wire.md alone.
//
//   npm install --prefix examples/node zeromq@6
//   node examples/node/client.js tcp://127.0.0.1:5555 input.json
//
// input.json: {"stream_id": 7, "rate": 1000, "chunks": [[x, ...], ...]} (one channel).
// Sends every chunk of the stream (seq 0, 1, ...; END on the last), then prints one JSON
// object to stdout: {"replies": [{"seq", "flags", "frames", "channels", "samples"}, ...]}.
"use strict";
const fs = require("fs");
const zmq = require("zeromq");

const HEADER = 64;
const FLAGS = { START: 1, END: 2, RESET: 4, ERROR: 8, STATS: 16 };

function header({ flags = 0, dtype = 1, channels = 1, frames, streamId, seq, rate = 0 }) {
  const b = Buffer.alloc(HEADER); // reserved fields stay 0
  b.write("SIGS", 0, "ascii");
  b.writeUInt8(1, 4); // version
  b.writeUInt8(flags, 5);
  b.writeUInt8(dtype, 6);
  b.writeUInt16LE(channels, 8);
  b.writeUInt32LE(frames, 12);
  b.writeBigUInt64LE(BigInt(streamId), 16);
  b.writeBigUInt64LE(BigInt(seq), 24);
  b.writeDoubleLE(rate, 32);
  b.writeBigUInt64LE(process.hrtime.bigint(), 40); // any clock; echoed back
  return b;
}

function parse(h, payload) {
  if (h.length !== HEADER || h.toString("ascii", 0, 4) !== "SIGS") throw new Error("bad reply");
  const r = {
    flags: h.readUInt8(5), dtype: h.readUInt8(6), channels: h.readUInt16LE(8),
    frames: h.readUInt32LE(12), stream_id: Number(h.readBigUInt64LE(16)),
    seq: Number(h.readBigUInt64LE(24)),
  };
  if (r.dtype === 1) {
    const f = new Float32Array(payload.buffer, payload.byteOffset, payload.length / 4);
    r.samples = Array.from(f);
  } else if (r.flags & FLAGS.ERROR) {
    r.error = JSON.parse(payload.toString("utf8"));
  }
  return r;
}

async function main() {
  const [endpoint, file] = process.argv.slice(2);
  const input = JSON.parse(fs.readFileSync(file, "utf8"));
  const sock = new zmq.Dealer({ linger: 0 });
  sock.connect(endpoint);
  const replies = [];
  for (let seq = 0; seq < input.chunks.length; seq++) {
    const x = Float32Array.from(input.chunks[seq]);
    const flags = seq === input.chunks.length - 1 ? FLAGS.END : 0;
    await sock.send([header({ flags, frames: x.length, streamId: input.stream_id, seq,
                              rate: input.rate || 0 }),
                     Buffer.from(x.buffer)]);
    const [h, payload] = await sock.receive(); // one reply per request, in order
    replies.push(parse(h, payload));
  }
  sock.close();
  process.stdout.write(JSON.stringify({ replies }) + "\n");
}

main().catch((err) => { console.error(`error: ${err.message}`); process.exit(1); });
