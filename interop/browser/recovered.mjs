// The demo page when history cannot be fully recovered: against a gateway
// that keeps 2 messages per room, a page that was away while 3 were sent
// catches up with the 2 still kept and says that history could not be
// fully recovered (chat.history answered recovered: false), once per
// encoding.
//
//   node recovered.mjs ws://127.0.0.1:PORT   (a gateway with -history-size 2)
import { ChatPage } from './chatpage.mjs';
import { ENCODINGS, finish, httpBase, launch, scenario, step } from './lib.mjs';

const base = httpBase(process.argv[2]);
const NOTE = 'history could not be fully recovered: some messages of this room are lost';

const browser = await launch();
try {
  await scenario('a catch-up that cannot recover', async () => {
    for (const enc of ENCODINGS) await run(enc);
  });
} finally {
  await browser.close();
  finish();
}

async function run(enc) {
  const room = `evicted-${enc}`;
  const sender = new ChatPage(await browser.newPage(), `sender-${enc}`, 'json-rpc');
  const away = new ChatPage(await browser.newPage(), `away-${enc}`, enc);
  for (const p of [sender, away]) {
    await p.open(base);
    await step(`${p.id} connects in ${p.enc} and joins #${room}`, async () => {
      await p.connect();
      await p.join(room);
    });
  }
  await step(`${sender.id} sends "before"`, () => sender.send('before'));
  await step(`${away.id} shows it, then disconnects`, async () => {
    await away.waitLog(['before']);
    await away.disconnect();
  });
  const missed = ['missed 1', 'kept 2', 'kept 3'];
  for (const text of missed) await step(`${sender.id} sends "${text}"`, () => sender.send(text));
  await step(`${away.id} reconnects and catches up with the 2 messages kept`, async () => {
    await away.connect();
    await away.waitLog(['before', 'kept 2', 'kept 3']);
  });
  await step(`${away.id}'s page says history could not be fully recovered`, () => away.waitText(NOTE));
  for (const p of [sender, away]) {
    await p.disconnect();
    await p.page.close();
  }
}
