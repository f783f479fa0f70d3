// The drawing page's checks, shared by draw.mjs (the page as `digitnn serve` serves it) and
// web.mjs (the same page as `digitnn web` writes it, reading with WebAssembly): Chromium started
// as the tests start it, digits drawn with the mouse, a number written on the wide canvas.
import { chromium } from "playwright-core";

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

// Opens `url` in a new page that collects its errors into `errors`.
export async function open(browser, url, errors) {
  const page = await browser.newPage({ viewport: { width: 1120, height: 1000 } });
  page.on("pageerror", e => errors.push(e.message));
  page.on("console", m => { if (m.type() === "error") errors.push(m.text()); });
  await page.goto(url);
  return page;
}

// Draws 7, 1, 0 and a "#" on the digit pad; true if the page shows each (the "#" as "not a digit").
export async function drawDigits(page) {
  let ok = true;
  const pad = await page.locator("#pad").boundingBox();
  // Strokes in canvas coordinates (0..280), each a polyline.
  const digits = {
    7: [[[70, 60], [210, 60], [120, 230]]],
    1: [[[140, 40], [140, 240]]],
    0: [[[140, 40], [90, 70], [75, 140], [90, 210], [140, 240], [190, 210], [205, 140], [190, 70], [140, 40]]],
    "not a digit": [[[105, 40], [95, 240]], [[185, 40], [175, 240]], [[50, 105], [235, 100]], [[45, 180], [230, 175]]],
  };
  for (const [digit, strokes] of Object.entries(digits)) {
    await page.click("#clear");
    for (const stroke of strokes) {
      const at = ([x, y]) => [pad.x + x * pad.width / 280, pad.y + y * pad.height / 280];
      await page.mouse.move(...at(stroke[0]));
      await page.mouse.down();
      for (let i = 1; i < stroke.length; i++) await page.mouse.move(...at(stroke[i]), { steps: 12 });
      await page.mouse.up();
    }
    // The page asks the server while drawing and once more at the end of the stroke.
    await page.waitForFunction(() => document.getElementById("digit").textContent !== "", null, { timeout: 10000 });
    await page.waitForTimeout(300);
    const shown = await page.textContent("#digit");
    const sure = await page.textContent("#confidence");
    console.log(`drew ${digit}: page shows ${shown} (${sure})`);
    if (shown !== digit) ok = false;
  }
  return ok;
}

// Writes 207 on the wide canvas; true if the page reads 207 and draws the digits' boxes.
export async function writeNumber(page) {
  let ok = true;
  // A number on the wide canvas (840x240), each digit in a unit box 110 wide and 200 tall.
  const line = await page.locator("#line").boundingBox();
  const ring = Array.from({ length: 25 }, (_, i) => [0.5 + 0.32 * Math.sin(i / 24 * 2 * Math.PI), 0.5 - 0.46 * Math.cos(i / 24 * 2 * Math.PI)]);
  const number = [
    [[[0.2, 0.28], [0.3, 0.1], [0.5, 0.04], [0.72, 0.12], [0.78, 0.3], [0.68, 0.5], [0.2, 0.95], [0.85, 0.95]]],
    [ring],
    [[[0.15, 0.06], [0.85, 0.06], [0.4, 0.96]]],
  ];
  for (const [i, strokes] of number.entries()) {
    for (const stroke of strokes) {
      const at = ([u, v]) => [line.x + (100 + 220 * i + u * 110) * line.width / 840, line.y + (20 + v * 200) * line.height / 240];
      await page.mouse.move(...at(stroke[0]));
      await page.mouse.down();
      for (let k = 1; k < stroke.length; k++) await page.mouse.move(...at(stroke[k]), { steps: 4 });
      await page.mouse.up();
    }
  }
  await page.waitForFunction(() => document.getElementById("number").textContent.length >= 3, null, { timeout: 10000 });
  await page.waitForTimeout(500);
  const read = await page.textContent("#number");
  const detail = await page.textContent("#number-detail");
  // Each digit's box is drawn in red over the canvas.
  const boxed = await page.evaluate(() => {
    const c = document.getElementById("boxes"), d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let red = 0; for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && d[i] > 150 && d[i + 1] < 120) red++;
    return red;
  });
  console.log(`wrote 207: page reads ${read} (${detail}); ${boxed} box pixels`);
  if (read !== "207" || boxed < 500) ok = false;
  return ok;
}
