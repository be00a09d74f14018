// ChatPage drives the demo page the way a user does: through its labelled
// controls (the accessible names in gateway/web/index.html), reading what
// it shows back from the DOM. Each action first brings its page to the
// front, as a user would: Chromium slows down the timers of background
// tabs, and an action there took seconds.
import { WAIT } from './lib.mjs';

// until polls cond (an async predicate) until it holds, for at most WAIT.
export async function until(what, cond) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${WAIT} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

export class ChatPage {
  constructor(page, id, enc) {
    this.page = page;
    this.id = id;
    this.enc = enc;
    this.backlog = 0;
  }

  async open(base) {
    await this.page.goto(`${base}/`);
    await this.page.getByRole('button', { name: 'Connect', exact: true }).waitFor();
  }

  status() { return this.page.getByRole('status'); }

  // connect fills the connection form and waits for the status line to
  // say connected with the negotiated encoding.
  async connect(token = '') {
    const p = this.page;
    await p.bringToFront();
    await p.getByLabel('Client id').fill(this.id);
    await p.getByLabel('Encoding').selectOption(this.enc);
    await p.getByLabel('Token').fill(token);
    await p.getByRole('button', { name: 'Connect', exact: true }).click();
    const want = `connected as ${this.id} · ${this.enc}`;
    let got = '';
    await until(`status "${want}"`, async () => {
      got = await this.status().textContent();
      return got === want || got.startsWith('connection failed');
    });
    if (got !== want) throw new Error(`status "${got}": ${await p.locator('#conn-error').textContent()}`);
  }

  // connectFails submits the form and returns the alert the page shows.
  async connectFails(token) {
    const p = this.page;
    await p.bringToFront();
    await p.getByLabel('Client id').fill(this.id);
    await p.getByLabel('Encoding').selectOption(this.enc);
    await p.getByLabel('Token').fill(token);
    await p.getByRole('button', { name: 'Connect', exact: true }).click();
    const alert = p.locator('#conn-error');
    await until('the connection error', async () => (await alert.isVisible()) && /HTTP|gateway/.test(await alert.textContent()));
    return { status: await this.status().textContent(), alert: await alert.textContent() };
  }

  async disconnect() {
    await this.page.bringToFront();
    await this.page.getByRole('button', { name: 'Disconnect' }).click();
    await until('status "close 1000"', async () => /^disconnected · close 1000/.test(await this.status().textContent()));
  }

  async join(room) {
    const p = this.page;
    await p.bringToFront();
    await p.getByLabel('Room', { exact: true }).fill(room);
    await p.getByRole('button', { name: 'Join', exact: true }).click();
    await p.getByRole('heading', { name: `# ${room}` }).waitFor();
    // A gateway used before (by hand) may have history in the room: the
    // page shows its latest messages first, and waitLog looks past them.
    this.backlog = (await this.log()).length;
  }

  async leave(room) {
    const p = this.page;
    await p.bringToFront();
    await p.getByRole('button', { name: `Leave ${room}` }).click();
    await p.getByRole('button', { name: `Leave ${room}` }).waitFor({ state: 'detached' });
  }

  // view shows a room ("# lobby") or the inbox ("Inbox").
  async view(label) {
    await this.page.bringToFront();
    await this.page.getByRole('list', { name: 'Rooms' }).getByRole('button', { name: label }).click();
    await this.page.getByRole('heading', { name: label, exact: true }).waitFor();
  }

  // send writes text in the composer, sends it to the current room, to
  // everyone or to a client, and waits for it to show (a room message or
  // broadcast comes back as a push; a direct message is shown as sent).
  async send(text, target = 'room', to = '') {
    const p = this.page;
    await p.bringToFront();
    await p.getByLabel('Send to').selectOption(target);
    if (to) await p.getByLabel('Recipient').fill(to);
    await p.getByLabel('Message', { exact: true }).fill(text);
    await p.getByRole('button', { name: 'Send', exact: true }).click();
    if (target === 'room') await until(`"${text}" in ${this.id}'s log`, async () => (await this.log()).some((m) => m.text === text));
    else await until('the composer to clear', async () => (await p.getByLabel('Message', { exact: true }).inputValue()) === '');
    await p.getByLabel('Send to').selectOption('room');
  }

  // log returns the messages the current view shows.
  async log() {
    return this.page.getByRole('log', { name: 'Messages' }).locator('li.msg').evaluateAll((lis) => lis.map((li) => ({
      from: li.querySelector('.from').textContent,
      text: li.querySelector('.text').textContent,
      offset: li.dataset.offset === undefined ? undefined : Number(li.dataset.offset),
    })));
  }

  inbox() { return this.log(); }

  async waitLog(texts) {
    let got = [];
    await until(`${this.id}'s log to be exactly [${texts.join(' | ')}]`, async () => {
      got = (await this.log()).slice(this.backlog).map((m) => m.text);
      return same(got, texts);
    }).catch((err) => { throw new Error(`${err.message}; it shows [${got.join(' | ')}]`); });
  }

  async waitText(text) {
    await this.page.getByRole('log', { name: 'Messages' }).getByText(text, { exact: true }).first().waitFor();
  }

  async waitMembers(ids) {
    const want = [...ids].sort();
    let got = [];
    await until(`${this.id}'s members to be [${want}]`, async () => {
      got = await this.page.getByRole('list', { name: 'Members' }).locator('.name').allTextContents();
      return same(got, want);
    }).catch((err) => { throw new Error(`${err.message}; it lists [${got}]`); });
  }

  // waitFrames checks the frames panel: an outgoing chat.send request and
  // an incoming chat.message push, named in this encoding, and for binary
  // encodings a hex dump.
  async waitFrames() {
    const frames = this.page.getByRole('list', { name: 'Frames' });
    const notes = async () => frames.locator('.note').allTextContents();
    const req = new RegExp(`^${this.enc} request #(0x)?[0-9a-f]+ chat\\.send$`);
    const push = `${this.enc} push chat.message`;
    const res = new RegExp(`^${this.enc} result #(0x)?[0-9a-f]+ chat\\.send$`);
    await until(`frame notes matching ${req}, ${res} and "${push}"`, async () => {
      const n = await notes();
      return n.some((x) => req.test(x)) && n.some((x) => res.test(x)) && n.includes(push);
    });
    if (this.enc === 'json-rpc') {
      const body = await frames.locator('.frame.out pre.json').first().textContent();
      if (!body.includes('"jsonrpc"')) throw new Error(`json-rpc frame body ${body}`);
    } else {
      const hex = await frames.locator('.frame pre.hex').first().textContent();
      if (!/^0000 {2}[0-9a-f]{2}( [0-9a-f]{2})*/.test(hex)) throw new Error(`hex dump ${hex}`);
    }
  }
}
