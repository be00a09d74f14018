// The demo page in Chromium, driven only through its own controls and read
// from its DOM: three pages, one per encoding, in one room see each other's
// messages, presence, broadcasts and direct messages; the frames panel
// annotates each encoding; a page that disconnects and reconnects catches
// up from the last offset it saw, nothing lost and nothing twice. A
// screenshot of the page mid-conversation goes to SUBGATE_SCREENSHOT.
//
//   node page.mjs ws://127.0.0.1:PORT
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { ChatPage, until } from './chatpage.mjs';
import { ENCODINGS, finish, httpBase, launch, scenario, step } from './lib.mjs';

const base = httpBase(process.argv[2]);
const here = dirname(fileURLToPath(import.meta.url));
const shot = process.env.SUBGATE_SCREENSHOT || join(here, 'screenshot.png');
const ROOM = 'lobby';

const browser = await launch();
try {
  await scenario('the page test', run);
} finally {
  await browser.close();
  finish();
}

async function run() {
  const ids = ['alice', 'bob', 'carol'];
  const pages = [];
  for (const [i, enc] of ENCODINGS.entries()) {
    const p = new ChatPage(await browser.newPage(), ids[i], enc);
    pages.push(p);
    await p.open(base);
  }
  const [alice, bob, carol] = pages;
  for (const p of pages) {
    await step(`${p.id} connects in ${p.enc} (the status names the negotiated encoding)`, () => p.connect());
  }

  // Presence: each page sees those who join after it, and at the end all three.
  for (const [i, p] of pages.entries()) {
    await step(`${p.id} joins #${ROOM}`, () => p.join(ROOM));
    for (const q of pages.slice(0, i)) {
      await step(`${q.id} (${q.enc}) sees ${p.id} join: member list and note`, async () => {
        await q.waitMembers(ids.slice(0, i + 1));
        await q.waitText(`${p.id} joined`);
      });
    }
  }
  for (const p of pages) await step(`${p.id} lists all three members`, () => p.waitMembers(ids));

  const sent = [];
  for (const p of pages) {
    const text = `hello from ${p.id} in ${p.enc} ✓`;
    await step(`${p.id} sends to #${ROOM}`, () => p.send(text));
    sent.push(text);
  }
  for (const p of pages) await step(`${p.id} (${p.enc}) shows the three messages in order`, () => p.waitLog(sent));

  await step('alice broadcasts', () => alice.send('broadcast from alice', 'broadcast'));
  for (const p of [bob, carol]) {
    await step(`${p.id} sees alice's broadcast in the inbox`, async () => {
      await p.view('Inbox');
      await p.waitText('broadcast from alice');
      await p.view(`# ${ROOM}`);
    });
  }
  await step('bob sends carol a direct message', () => bob.send('psst, carol', 'direct', 'carol'));
  await step('carol sees bob\'s direct message in the inbox', async () => {
    await carol.view('Inbox');
    await until('a direct message from bob', async () => (await carol.inbox()).some((m) => m.from === 'bob' && m.text === 'psst, carol'));
    await carol.view(`# ${ROOM}`);
  });

  for (const p of pages) {
    await step(`${p.id}'s frames panel annotates ${p.enc} frames in and out`, () => p.waitFrames());
  }

  await step('carol disconnects and her page shows close 1000', () => carol.disconnect());
  for (const p of [alice, bob]) {
    await step(`${p.id} sees carol leave`, () => p.waitMembers(['alice', 'bob']));
  }
  const missed = [['alice', 'while carol is away 1'], ['bob', 'while carol is away 2'], ['alice', 'while carol is away 3']];
  for (const [who, text] of missed) {
    await step(`${who} sends "${text}"`, () => pages[ids.indexOf(who)].send(text));
    sent.push(text);
  }
  await step('carol reconnects and rejoins', () => carol.connect());
  await step('carol catches up: every message once, in offset order', () => carol.waitLog(sent));
  await step('carol\'s offsets are consecutive (nothing lost, nothing twice)', async () => {
    const offs = (await carol.log()).map((m) => m.offset);
    for (let i = 1; i < offs.length; i++) {
      if (offs[i] !== offs[i - 1] + 1) throw new Error(`offsets ${offs.join(',')}`);
    }
  });
  await step('carol\'s page does not say that history could not be fully recovered', async () => {
    const n = await carol.page.getByRole('log', { name: 'Messages' }).getByText(/could not be fully recovered/).count();
    if (n !== 0) throw new Error(`${n} such notes`);
  });
  await step('alice and bob see carol back', async () => {
    await alice.waitMembers(ids);
    await bob.waitMembers(ids);
  });
  await step('carol sends after catching up and everyone gets it once', async () => {
    await carol.send('back again');
    sent.push('back again');
    for (const p of pages) await p.waitLog(sent);
  });

  await step(`screenshot of the page mid-conversation: ${shot}`, async () => {
    await carol.page.screenshot({ path: shot });
  });

  await step(`bob leaves #${ROOM} with its Leave button`, () => bob.leave(ROOM));
  await step('alice and carol see bob leave', async () => {
    await alice.waitMembers(['alice', 'carol']);
    await carol.waitMembers(['alice', 'carol']);
    await alice.waitText('bob left');
  });
  for (const p of [alice, carol]) await p.disconnect();
}
