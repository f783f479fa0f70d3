// Draws digits on `digitnn serve`'s page in headless Chromium with pointer events, as a person
// would with a mouse, and checks the digit the page shows; then a "#", which is not a digit;
// then writes the number 207 on the wide canvas and checks the number read and its boxes.
//
// usage: node draw.mjs URL SCREENSHOT.png
// Prints one line per drawing ("drew 7: page shows 7 (99.2% sure)") and exits non-zero on a
// wrong answer or any page error.
import { launch, open, drawDigits, writeNumber } from "./page.mjs";

const [url, screenshot] = process.argv.slice(2);
const browser = await launch();
let failed = false;
try {
  const errors = [];
  const page = await open(browser, url, errors);
  if (!await drawDigits(page)) failed = true;
  if (!await writeNumber(page)) failed = true;
  if (screenshot) await page.screenshot({ path: screenshot });
  if (errors.length) { console.log("page errors: " + errors.join("; ")); failed = true; }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
