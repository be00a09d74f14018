// Shared by the browser tests: Debian's Chromium driven by playwright-core,
// checks that print one line each and a last "N passed, M failed" line
// (which interop/browser_test.go looks for), and HS256 tokens.
import { chromium } from 'playwright-core';
import { createHmac } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CHROMIUM = process.env.SUBGATE_CHROMIUM || '/usr/bin/chromium';
// ENCODINGS are the three subprotocols, one per page. For trying the tests
// against a partial client.js, SUBGATE_BROWSER_ENCODINGS may name others
// (e.g. "json-rpc,json-rpc,json-rpc"); interop/browser_test.go never sets it.
export const ENCODINGS = (process.env.SUBGATE_BROWSER_ENCODINGS || 'json-rpc,msgpack,binary-raw').split(',');
// WAIT bounds every wait for the page or the gateway.
export const WAIT = 10_000;

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];

// launch starts Chromium with a fresh user-data dir (removed by the
// returned close). Page errors and console errors are printed, so that a
// failing check comes with the page's own complaint.
export async function launch() {
  const dir = await mkdtemp(join(tmpdir(), 'subgate-chromium-'));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1440, height: 900 },
    timeout: 30_000,
  });
  ctx.setDefaultTimeout(WAIT);
  ctx.on('page', watch);
  for (const p of ctx.pages()) watch(p);
  return {
    ctx,
    async newPage() { return ctx.newPage(); },
    async close() {
      await ctx.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function watch(page) {
  page.on('pageerror', (err) => console.log(`  page error: ${err.message}`));
  page.on('console', (m) => { if (m.type() === 'error') console.log(`  console error: ${m.text()}`); });
}

let passed = 0;
let failed = 0;

// check records one outcome.
export function check(name, ok, detail = '') {
  if (ok) {
    passed++;
    console.log(`ok   ${name}`);
  } else {
    failed++;
    console.log(`FAIL ${name}${detail ? `: ${detail}` : ''}`);
  }
  return ok;
}

// Stop is thrown by step when a check fails: the steps of a scenario
// depend on each other, so the first failure ends it.
export class Stop extends Error {}

// step runs fn as one check: it passes when fn resolves, and fails with
// fn's error (a timed-out wait names what it waited for), then throws Stop.
export async function step(name, fn) {
  try {
    await fn();
  } catch (err) {
    check(name, false, (err && err.message ? err.message : String(err)).split('\n')[0]);
    throw new Stop(name);
  }
  check(name, true);
}

// scenario runs fn; a Stop has been reported already, any other error is
// reported as a failed check.
export async function scenario(name, fn) {
  try {
    await fn();
  } catch (err) {
    if (!(err instanceof Stop)) check(`${name} ran to the end`, false, err.stack);
  }
}

// finish prints the summary and sets the exit code.
export function finish() {
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed === 0 && passed > 0 ? 0 : 1;
}

// httpBase turns the gateway's ws:// base URL, as interop_test.go gives
// it, into the page's http:// one.
export function httpBase(arg) {
  if (!arg) {
    console.error('usage: node <script> ws://127.0.0.1:PORT');
    process.exit(2);
  }
  return arg.replace(/^ws/, 'http').replace(/\/$/, '');
}

// token signs an HS256 JWT for sub with secret, valid for an hour.
export function token(secret, sub) {
  const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, exp: Math.floor(Date.now() / 1000) + 3600 })}`;
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
}
