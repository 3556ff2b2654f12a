import test from 'ava';
import Keygrip from 'keygrip';

import { cookieSigner, equalInConstantTime } from '../src/http/cookie-signing.ts';

test('cookies are signed exactly as keygrip signs them, so cookies issued before stay valid', (t) => {
  const keys = ['first cookie key', 'second cookie key'];
  const signer = cookieSigner(keys);
  const keygrip = new Keygrip(keys);
  for (const data of ['_interaction=abc', '_session=x.y-z', 'tessera.csrf=ünïcode', '']) {
    t.is(signer.sign(data), keygrip.sign(data));
    t.is(signer.index(data, keygrip.sign(data)), 0);
  }
});

test('a signature checks against every key and names the one that made it; anything else is -1', (t) => {
  const signer = cookieSigner(['new key', 'old key']);
  const byOldKey = new Keygrip(['old key']).sign('_session=abc');
  t.is(signer.index('_session=abc', byOldKey), 1);
  t.true(signer.verify('_session=abc', byOldKey));
  t.is(signer.index('_session=abd', byOldKey), -1);
  t.is(signer.index('_session=abc', `${byOldKey}x`), -1);
  t.is(signer.index('_session=abc', ''), -1);
  t.false(signer.verify('_session=abc', undefined as unknown as string));
});

test('strings compare equal only when every byte is the same, whatever their lengths', (t) => {
  t.true(equalInConstantTime('abc-def', 'abc-def'));
  t.false(equalInConstantTime('abc-def', 'abc-deg'));
  t.false(equalInConstantTime('abc-def', 'abc-de'));
  t.false(equalInConstantTime('', 'a'));
  t.true(equalInConstantTime('ü', Buffer.from('ü')));
});
