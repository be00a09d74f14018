// The demo page against a gateway started with -jwt-secret: the token
// field connects in each encoding; a refused handshake (a browser sees
// only close 1006) is explained on the page with the gateway's own reason.
//
//   SUBGATE_JWT_SECRET=... node jwt.mjs ws://127.0.0.1:PORT
import { ChatPage } from './chatpage.mjs';
import { ENCODINGS, finish, httpBase, launch, scenario, step, token } from './lib.mjs';

const base = httpBase(process.argv[2]);
const secret = process.env.SUBGATE_JWT_SECRET;
if (!secret) {
  console.error('SUBGATE_JWT_SECRET is not set');
  process.exit(2);
}

const browser = await launch();
try {
  await scenario('the token test', async () => {
    for (const enc of ENCODINGS) {
      const p = new ChatPage(await browser.newPage(), `jwt-${enc}`, enc);
      await p.open(base);
      await step(`${enc}: a valid token in the Token field connects`, () => p.connect(token(secret, p.id)));
      await step(`${enc}: join and send with the token's connection`, async () => {
        await p.join('secure');
        await p.send(`signed in via ${enc}`);
      });
      await step(`${enc}: disconnect`, () => p.disconnect());
      await step(`${enc}: a token signed with another secret is refused with a clear message`, async () => {
        const { status, alert } = await p.connectFails(token(`${secret}-wrong`, p.id));
        expect(status, /^connection failed/);
        expect(alert, /close 1006/);
        expect(alert, /token signature invalid \(HTTP 401\)/);
      });
    }
    const p = new ChatPage(await browser.newPage(), 'jwt-other', 'json-rpc');
    await p.open(base);
    for (const [what, tok, want] of [
      ['no token', '', /a token is required/],
      ['a token for another client id', token(secret, 'someone-else'), /token subject is not the client id \(HTTP 401\)/],
      ['a malformed token', 'not-a-jwt', /invalid token \(HTTP 401\)/],
    ]) {
      await step(`${what}: the page says why the handshake was refused`, async () => expect((await p.connectFails(tok)).alert, want));
    }
    await step('after refusals, a valid token still connects', () => p.connect(token(secret, p.id)));
    await p.disconnect();
  });
} finally {
  await browser.close();
  finish();
}

function expect(text, re) {
  if (!re.test(text)) throw new Error(`${JSON.stringify(text)} does not match ${re}`);
}
