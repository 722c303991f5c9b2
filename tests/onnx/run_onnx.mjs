// Runs an ONNX model with ONNX Runtime (onnxruntime-node, CPU) on float32 inputs read from files:
// the other side of tests/server_onnx_export_test, which compares what it writes with the
// service's answers for the same inputs.
//
//   node tests/onnx/run_onnx.mjs --model M.onnx --input NAME=FILE:D0,D1,... [--input ...] --out DIR
//
// Each FILE holds little-endian float32 values, row-major, of dims D0,D1,... Every output of the
// model is written to DIR/<output name>.f32 (little-endian float32), and one JSON line goes to
// stdout: {"runtime": version, "inputs": [model input names], "outputs": [model output names],
// "results": {name: {"dims": [...], "file": path}}}. Exit status 0 on success, 1 on any error
// (printed on stderr), 2 for a bad command line. Needs tests/onnx/node_modules: `npm ci
// --ignore-scripts` in tests/onnx (scripts/setup.sh --tests does it).

import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as ortModule from 'onnxruntime-node';

const ort = ortModule.default ?? ortModule;

function usage(message) {
  process.stderr.write(`run_onnx: ${message}\n`);
  process.stderr.write(
    'usage: node run_onnx.mjs --model M.onnx --input NAME=FILE:D0,D1,... [--input ...] --out DIR\n');
  process.exit(2);
}

function parseArgs(argv) {
  const args = { model: '', inputs: [], out: '' };
  for (let i = 0; i < argv.length; ++i) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (value === undefined) usage(`${flag} needs a value`);
    ++i;
    if (flag === '--model') {
      args.model = value;
    } else if (flag === '--out') {
      args.out = value;
    } else if (flag === '--input') {
      const match = /^([^=]+)=(.+):([0-9]+(?:,[0-9]+)*)$/.exec(value);
      if (!match) usage(`--input ${value}: expected NAME=FILE:D0,D1,...`);
      args.inputs.push({ name: match[1], file: match[2], dims: match[3].split(',').map(Number) });
    } else {
      usage(`unknown option ${flag}`);
    }
  }
  if (!args.model || !args.out || args.inputs.length === 0) {
    usage('--model, --out and at least one --input are required');
  }
  return args;
}

function readFloats(file, dims) {
  const bytes = readFileSync(file);
  const count = dims.reduce((a, b) => a * b, 1);
  if (bytes.length !== count * 4) {
    throw new Error(`${file} holds ${bytes.length} bytes, dims [${dims}] need ${count * 4}`);
  }
  const values = new Float32Array(count);
  for (let i = 0; i < count; ++i) values[i] = bytes.readFloatLE(4 * i);
  return values;
}

function writeFloats(file, values) {
  const bytes = Buffer.alloc(values.length * 4);
  for (let i = 0; i < values.length; ++i) bytes.writeFloatLE(values[i], 4 * i);
  writeFileSync(file, bytes);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const session = await ort.InferenceSession.create(args.model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  const feeds = {};
  for (const input of args.inputs) {
    feeds[input.name] = new ort.Tensor('float32', readFloats(input.file, input.dims), input.dims);
  }
  const outputs = await session.run(feeds);
  const results = {};
  for (const name of session.outputNames) {
    const tensor = outputs[name];
    if (tensor.type !== 'float32') throw new Error(`output ${name} is ${tensor.type}, not float32`);
    const file = path.join(args.out, `${name}.f32`);
    writeFloats(file, tensor.data);
    results[name] = { dims: Array.from(tensor.dims), file };
  }
  process.stdout.write(`${JSON.stringify({
    runtime: ort.env?.versions?.common ?? '',
    inputs: session.inputNames,
    outputs: session.outputNames,
    results,
  })}\n`);
}

main().catch((error) => {
  process.stderr.write(`run_onnx: ${error?.stack ?? error}\n`);
  process.exit(1);
});
