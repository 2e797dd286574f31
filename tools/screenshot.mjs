// Screenshot of the rerun web viewer showing a recording, in headless Chromium.
//
//   .venv/bin/rerun REC.rrd --serve-web --web-viewer-port 9190 --port 9977 &
//   NODE_PATH=<dir with playwright-core> node tools/screenshot.mjs OUT.png [wait_seconds] [width] [height]
//
// Needs Debian's chromium (/usr/bin/chromium) and the npm package playwright-core; the
// flags keep Chromium off the network (this machine has none) and render WebGL in software.
import { createRequire } from "module";
const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core");

const [out, wait = "40", width = "1600", height = "1000"] = process.argv.slice(2);
const viewer = process.env.VIEWER_URL ?? "http://127.0.0.1:9190/?url=rerun%2Bhttp%3A%2F%2F127.0.0.1%3A9977%2Fproxy&renderer=webgl";
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--enable-unsafe-swiftshader", "--use-angle=swiftshader",
  ],
});
const page = await browser.newPage({ viewport: { width: +width, height: +height } });
page.on("console", (m) => { if (m.type() === "error") console.error("viewer:", m.text()); });
await page.goto(viewer);
await page.waitForTimeout(+wait * 1000);
await page.screenshot({ path: out });
await browser.close();
