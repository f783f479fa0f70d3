// Runs the browser build's module (digitnn.wasm) under Node, without a browser: its kernels'
// self-check, logits on the portable and SIMD128 kernels, and reading and predicting pictures.
//
// usage: node wasm.mjs SITE_DIR INPUT_DIR CONV_ALGORITHMS
// INPUT_DIR holds images.f32 (28x28 f32 images, 0-1) and pictures.json ([{name, width, height}],
// each NAME.rgba holding that many RGBA pixels). Prints one JSON object: {checked, logits:
// {portable: [per algorithm], simd128: [...]}, hostile: {...}, read: [...], predict: [...]}; exits non-zero if
// the module traps.
import fs from "node:fs";
import path from "node:path";

const [site, inputs, algorithms] = process.argv.slice(2);
const { instance } = await WebAssembly.instantiate(fs.readFileSync(path.join(site, "digitnn.wasm")), {});
const wasm = instance.exports;
const text = new TextDecoder();

function answer(code) {
  const value = JSON.parse(text.decode(new Uint8Array(wasm.memory.buffer, wasm.digitnn_answer_ptr(), wasm.digitnn_answer_len())));
  return code === 0 ? value : { error: value.error };
}
function call(name, bytes, ...args) {
  const pointer = wasm.digitnn_alloc(bytes.length);
  if (!pointer) return { error: "refused by digitnn_alloc" };
  new Uint8Array(wasm.memory.buffer, pointer, bytes.length).set(bytes);
  return answer(wasm[name](pointer, bytes.length, ...args));
}

const result = { checked: answer(wasm.digitnn_check_kernels()).checked };
// Hostile callers: more bytes than the module takes (allocation refused), and pixels that are not
// what the width and height say.
result.hostile = {
  huge_alloc: wasm.digitnn_alloc(512 * 1024 * 1024),
  short: call("digitnn_read", new Uint8Array(16), 10, 10),
  wide: call("digitnn_predict", new Uint8Array(16), 20000, 1),
  null_read: answer(wasm.digitnn_read(0, 0, 0, 0)),
};

const images = fs.readFileSync(path.join(inputs, "images.f32"));
result.logits = {};
for (const [simd, isa] of ["portable", "simd128"].entries()) {
  result.logits[isa] = [];
  for (let conv = 0; conv < Number(algorithms); conv++) {
    const answer = call("digitnn_logits", images, simd, conv);
    if (answer.error) throw new Error(answer.error);
    result.logits[isa].push(answer.logits);
  }
}
const pictures = JSON.parse(fs.readFileSync(path.join(inputs, "pictures.json"), "utf8"));
result.read = [];
result.predict = [];
for (const { name, width, height } of pictures) {
  const rgba = fs.readFileSync(path.join(inputs, name + ".rgba"));
  result.read.push(call("digitnn_read", rgba, width, height));
  result.predict.push(call("digitnn_predict", rgba, width, height));
}
console.log(JSON.stringify(result));
