// digitnn in the browser, with no server: the reader compiled to WebAssembly (digitnn.wasm, beside
// this file, with the built-in number reader inside). Load it with
//   <script src="digitnn.js"></script>
// and use window.digitnn:
//   await digitnn.ready                 the module is compiled and the model loaded
//   await digitnn.read(bytes)           bytes: a PNG or JPEG file's contents (Uint8Array, ArrayBuffer
//                                       or Blob); resolves to what one line of `digitnn read --json`
//                                       prints (text, confidence, digits with boxes, skipped, message)
//   await digitnn.predict(bytes)        one digit: what `digitnn predict --json` prints, and `input`,
//                                       the 28x28 image the model saw
//   digitnn.readPixels(imageData)       the same from an ImageData (a canvas's pixels), at once
//   digitnn.predictPixels(imageData)
//   await digitnn.model()               the model's architecture, parameters and test accuracy
// Errors (an image that cannot be read) reject with an Error whose message says why.
// The browser decodes the file; the Rust library prepares and reads its pixels, the same code as
// the command line.
(function () {
  "use strict";
  const here = document.currentScript ? document.currentScript.src : location.href;
  const wasmUrl = new URL("digitnn.wasm", here);
  const text = new TextDecoder();
  let wasm = null;

  async function instantiate() {
    const response = await fetch(wasmUrl);
    if (!response.ok) throw new Error(`cannot load ${wasmUrl}: ${response.status} ${response.statusText}`);
    // Streaming compilation needs the server to say application/wasm; any other server works too.
    const { instance } = await (response.headers.get("Content-Type") === "application/wasm"
      ? WebAssembly.instantiateStreaming(response, {})
      : response.arrayBuffer().then(bytes => WebAssembly.instantiate(bytes, {})));
    wasm = instance.exports;
    answer(wasm.digitnn_model()); // loads the model now rather than on the first question
  }

  // The JSON answer of the last call; an Error for {"error": ...}.
  function answer(code) {
    const bytes = new Uint8Array(wasm.memory.buffer, wasm.digitnn_answer_ptr(), wasm.digitnn_answer_len());
    const value = JSON.parse(text.decode(bytes));
    if (code !== 0) throw new Error(value.error);
    return value;
  }

  // Copies RGBA pixels into the module's memory and calls `name` on them (which frees them).
  function onPixels(name, image) {
    if (!wasm) throw new Error("digitnn is not ready yet: await digitnn.ready");
    const { data, width, height } = image;
    const pointer = wasm.digitnn_alloc(data.length);
    if (!pointer) throw new Error(`the image is too large (${width}x${height})`);
    new Uint8Array(wasm.memory.buffer, pointer, data.length).set(data);
    return answer(wasm[name](pointer, data.length, width, height));
  }

  // A file's bytes decoded by the browser into RGBA pixels, as the file holds them (no colour
  // conversion, no premultiplied alpha), turned upright as its EXIF orientation says.
  async function decode(bytes) {
    const blob = bytes instanceof Blob ? bytes : new Blob([bytes]);
    const bitmap = await createImageBitmap(blob, { premultiplyAlpha: "none", colorSpaceConversion: "none" });
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(bitmap, 0, 0);
    bitmap.close();
    return context.getImageData(0, 0, canvas.width, canvas.height);
  }

  const ready = instantiate();
  window.digitnn = {
    ready,
    read: async bytes => { await ready; return onPixels("digitnn_read", await decode(bytes)); },
    predict: async bytes => { await ready; return onPixels("digitnn_predict", await decode(bytes)); },
    readPixels: image => onPixels("digitnn_read", image),
    predictPixels: image => onPixels("digitnn_predict", image),
    model: async () => { await ready; return answer(wasm.digitnn_model()); },
    // For tests: the raw exports (logits on each instruction set, the kernels' self-check).
    exports: () => wasm,
  };
})();
