// The README's browser snippet for /client.js, taken from README.md as it
// is and run in Chromium in a page of the gateway's origin, once per
// encoding (only its protocol changed): it must log the push and the
// result the README shows.
//
//   node readme.mjs ws://127.0.0.1:PORT
import { readFile } from 'node:fs/promises';
import { ENCODINGS, WAIT, check, finish, httpBase, launch, scenario, step } from './lib.mjs';

const base = httpBase(process.argv[2]);
const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
const block = [...readme.matchAll(/```html\n([\s\S]*?)```/g)].map((m) => m[1])
  .find((b) => b.includes("from '/client.js'"));
const browser = await launch();
try {
  await scenario('the README snippet', async () => {
    await step('README.md has an html block importing /client.js', async () => {
      if (!block) throw new Error('no such block');
    });
    const code = block.replace(/^<script type="module">\n/, '').replace(/<\/script>\n?$/, '');
    for (const [i, enc] of ENCODINGS.entries()) {
      const page = await browser.newPage();
      const logs = [];
      page.on('console', (m) => logs.push(m.text()));
      await page.goto(`${base}/healthz`); // any page of the gateway's origin
      await page.addScriptTag({ type: 'module', content: code.replace("protocol: 'msgpack'", `protocol: '${enc}'`) });
      // The epoch is the server's (random per start): any valid one.
      const want = [/^alice hi$/, new RegExp(`^\\{"room":"lobby","offset":${i + 1},"epoch":"[A-Za-z0-9_-]{1,32}"\\}$`)];
      await step(`${enc}: the snippet logs ${want.join(' and ')}`, async () => {
        const deadline = Date.now() + WAIT;
        while (!want.every((w) => logs.some((l) => w.test(l)))) {
          if (Date.now() > deadline) throw new Error(`logged ${JSON.stringify(logs)}`);
          await new Promise((r) => setTimeout(r, 20)); // polling the page's log, bounded
        }
      });
      await page.close();
    }
  });
} finally {
  await browser.close();
  finish();
}
