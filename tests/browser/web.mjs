// The static site `digitnn web` writes, served from loopback by a plain HTTP server and opened in
// headless Chromium: it reads in the browser with WebAssembly, no digitnn server running.
// Draws digits and writes 207 (page.mjs), uploads a photo of a number through the page's file
// input, and calls the JS API (digitnn.read, digitnn.predict) on sample files; prints one JSON
// object with the answers and timings for tests/web.rs to compare with the command line's:
// {ok, errors, ready_ms, uploaded, read, predict, digit_ms, number_ms, line_ms}.
//
// usage: node web.mjs SITE_DIR NUMBER.png DIGIT.png SCREENSHOT.png [MORE_PICTURES...]
// (each of MORE_PICTURES read through digitnn.read too: `more` in the result)
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { launch, open, drawDigits, writeNumber } from "./page.mjs";

const [site, numberFile, digitFile, screenshot, ...more] = process.argv.slice(2);
const types = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".wasm": "application/wasm" };
const server = http.createServer((request, response) => {
  const name = new URL(request.url, "http://x").pathname.replace(/^\/$/, "/index.html");
  const file = path.join(site, path.normalize(name));
  if (!file.startsWith(site) || !fs.existsSync(file)) { response.writeHead(404).end(); return; }
  response.writeHead(200, { "Content-Type": types[path.extname(file)] || "application/octet-stream" });
  fs.createReadStream(file).pipe(response);
});
await new Promise(done => server.listen(0, "127.0.0.1", done));
const url = `http://127.0.0.1:${server.address().port}/`;

// The median time of `runs` calls of the page's `digitnn.<method>` on `pixels` (an expression
// giving ImageData), in milliseconds.
const timeIt = (page, method, pixels) => page.evaluate(async ([method, pixels]) => {
  const image = await (new Function(`return (${pixels})`))();
  const times = [];
  for (let i = 0; i < 30; i++) {
    const started = performance.now();
    digitnn[method](image);
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return times[15];
}, [method, pixels]);

const browser = await launch();
const result = { ok: true, errors: [] };
try {
  const page = await open(browser, url, result.errors);
  // Milliseconds from the start of navigation to the module compiled and its model loaded.
  result.ready_ms = await page.evaluate(() => digitnn.ready.then(() => performance.now()));
  if (!await drawDigits(page)) result.ok = false;
  result.digit_ms = await timeIt(page, "predictPixels",
    `document.getElementById("pad").getContext("2d").getImageData(0, 0, 280, 280)`);
  if (!await writeNumber(page)) result.ok = false;
  result.line_ms = await timeIt(page, "readPixels",
    `document.getElementById("line").getContext("2d").getImageData(0, 0, 840, 240)`);

  // A photo of a number uploaded through the page, as a phone's camera would hand it over.
  await page.click("#clear-line");
  await page.setInputFiles("#line-file", numberFile);
  await page.waitForFunction(() => document.getElementById("number").textContent !== "", null, { timeout: 10000 });
  result.uploaded = await page.textContent("#number");

  // The JS API on the files' bytes, as someone embedding digitnn calls it.
  const bytes = file => Array.from(fs.readFileSync(file));
  result.read = await page.evaluate(b => digitnn.read(new Uint8Array(b)), bytes(numberFile));
  result.predict = await page.evaluate(b => digitnn.predict(new Uint8Array(b)), bytes(digitFile));
  result.more = [];
  for (const file of more) result.more.push(await page.evaluate(b => digitnn.read(new Uint8Array(b)), bytes(file)));
  result.number_ms = await timeIt(page, "readPixels", `(async () => {
    const bitmap = await createImageBitmap(new Blob([new Uint8Array(${JSON.stringify(bytes(numberFile))})]));
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height), c = canvas.getContext("2d");
    c.drawImage(bitmap, 0, 0);
    return c.getImageData(0, 0, bitmap.width, bitmap.height);
  })()`);
  if (screenshot) await page.screenshot({ path: screenshot });
} catch (e) {
  result.ok = false;
  result.errors.push(String(e));
} finally {
  await browser.close();
  server.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok && !result.errors.length ? 0 : 1);
