/**
 * Branding (issue #14 item 3): CONFIG_DIR/branding.json and the BRANDING_* variables, checked once at
 * startup, served under /assets/brand/, on every page and in every mail; the accent stays readable.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import test from 'ava';

import { ConfigError, loadConfig } from '../src/config.ts';
import { contrast, inkOn, PAPER, readableAccent } from '../src/domain/colour-contrast.ts';
import { startMailCatcher } from './helpers/mail-catcher.ts';
import { openLoginForm } from './helpers/login-form.ts';
import { staticClient } from './helpers/relying-party.ts';
import { makeTempDir, removeDir, startTestServer } from './helpers/server.ts';

const SVG = '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="120" height="32"><rect width="120" height="32" fill="#0a7d4f"/></svg>\n';
const PNG = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000', 'hex');

function brandedDir(branding: Record<string, unknown>, files: Record<string, string | Buffer> = {}): string {
  const dir = makeTempDir('tessera-brand-');
  mkdirSync(path.join(dir, 'config'));
  writeFileSync(path.join(dir, 'config', 'branding.json'), JSON.stringify(branding));
  for (const [name, body] of Object.entries(files)) writeFileSync(path.join(dir, 'config', name), body);
  return dir;
}

test('branding.json is read, its files checked by content, and BRANDING_* variables win over it', (t) => {
  const dir = brandedDir({ product_name: 'Acme ID', primary_color: '#0A7', logo: { light: 'logo.svg', dark: 'logo-dark.png' }, favicon: 'icon.png' }, { 'logo.svg': SVG, 'logo-dark.png': PNG, 'icon.png': PNG });
  t.teardown(() => removeDir(dir));
  const { branding } = loadConfig({ CONFIG_DIR: 'config' }, dir);
  t.is(branding.productName, 'Acme ID');
  t.is(branding.primaryColor, '#00aa77');
  t.is(branding.logo.light?.contentType, 'image/svg+xml');
  t.regex(branding.logo.light?.url ?? '', /^\/assets\/brand\/logo\.svg\?v=[\w-]{12}$/);
  t.is(branding.logo.dark?.contentType, 'image/png');
  t.is(branding.favicon?.contentType, 'image/png');
  const overridden = loadConfig({ CONFIG_DIR: 'config', BRANDING_PRODUCT_NAME: 'Other', BRANDING_PRIMARY_COLOR: '#123456' }, dir).branding;
  t.is(overridden.productName, 'Other');
  t.is(overridden.primaryColor, '#123456');
});

test('a bad branding.json stops startup with one line per problem', (t) => {
  const dir = brandedDir({ primary_color: 'blue-ish', logo: 'missing.svg', favicon: 'notes.txt', stylesheet: 'style.txt' }, { 'notes.txt': 'hello', 'style.txt': 'body {}' });
  t.teardown(() => removeDir(dir));
  const error = t.throws(() => loadConfig({ CONFIG_DIR: 'config' }, dir), { instanceOf: ConfigError }) as ConfigError;
  t.is(error.problems.length, 4, error.message);
  t.true(error.problems.some((line) => /primary_color: "blue-ish" is not a colour/.test(line)));
  t.true(error.problems.some((line) => /logo\.light: cannot read .*missing\.svg \(ENOENT\)/.test(line)));
  t.true(error.problems.some((line) => /favicon: .*notes\.txt is not an image/.test(line)));
  t.true(error.problems.some((line) => /stylesheet: .*style\.txt is not a \.css stylesheet/.test(line)));
  const env = t.throws(() => loadConfig({ BRANDING_PRIMARY_COLOR: 'red' }, makeTempDir()), { instanceOf: ConfigError }) as ConfigError;
  t.deepEqual(env.problems, ['BRANDING_PRIMARY_COLOR: "red" is not a colour like #1f4fd1']);
});

test('every page carries the product name, the logos, the favicon, the colour and the operator\'s stylesheet after ours', async (t) => {
  const dataDir = brandedDir({ product_name: 'Acme ID', primary_color: '#ffcc00', logo: { light: 'logo.svg', dark: 'logo-dark.png' }, favicon: 'icon.png', stylesheet: 'acme.css' }, {
    'logo.svg': SVG, 'logo-dark.png': PNG, 'icon.png': PNG, 'acme.css': '.card { border-width: 2px; }\n',
  });
  const server = await startTestServer({ dataDir, clients: [staticClient()] });
  t.teardown(async () => { await server.close(); removeDir(dataDir); });
  const { branding } = server.config;

  const { page } = await openLoginForm(server);
  t.regex(page.body, /<title>[^<]* · Acme ID<\/title>/);
  t.notRegex(page.body, /Tessera/);
  t.true(page.body.includes(`<img class="brand-logo" src="${branding.logo.light?.url}" alt="Acme ID"`));
  t.true(page.body.includes(`<source srcset="${branding.logo.dark?.url}" media="(prefers-color-scheme: dark)">`));
  t.true(page.body.includes(`<link rel="icon" href="${branding.favicon?.url}">`));
  const sheets = [...page.body.matchAll(/<link rel="stylesheet" href="([^"]+)">/g)].map((match) => match[1]!);
  t.is(sheets.length, 3);
  t.is(sheets[0], '/assets/tessera.css');
  t.regex(sheets[1]!, /^\/assets\/brand\/theme\.css\?v=/);
  t.is(sheets[2], String(branding.stylesheet?.url));

  const logo = await fetch(new URL(branding.logo.light!.url, server.issuer));
  t.is(logo.status, 200);
  t.is(logo.headers.get('content-type'), 'image/svg+xml');
  t.is(logo.headers.get('cache-control'), 'public, max-age=31536000, immutable');
  t.regex(logo.headers.get('content-security-policy') ?? '', /sandbox/);
  t.is(await logo.text(), SVG);
  const theme = await (await fetch(new URL(sheets[1]!, server.issuer))).text();
  // Yellow is too light for links on white: the light-mode accent is darkened until it reads (4.5:1).
  const accent = /:root \{ --accent: (#[0-9a-f]{6}); --accent-ink: (#[0-9a-f]{6}); \}/.exec(theme);
  t.truthy(accent, theme);
  t.true(contrast(accent![1]!, '#ffffff') >= 4.5);
  t.true(contrast(accent![1]!, accent![2]!) >= 4.5);
  t.regex(theme, /prefers-color-scheme: dark/);
  t.is((await fetch(new URL('/assets/brand/nothing.svg', server.issuer))).status, 404);

  // oidc-provider's own pages (here its error page) carry the brand too.
  const bad = await fetch(new URL('/auth?client_id=nobody&response_type=code&scope=openid', server.issuer));
  t.regex(await bad.text(), /<title>[^<]* · Acme ID<\/title>/);
});

test('mails carry the product name in the subject and the signature, and the colour on the button', async (t) => {
  const mail = await startMailCatcher();
  const dataDir = brandedDir({ product_name: 'Acme ID', primary_color: '#0a7d4f' });
  const server = await startTestServer({ dataDir, env: { SMTP_URL: mail.url } });
  t.teardown(async () => { await server.close(); await mail.close(); removeDir(dataDir); });
  await server.withServices(async (services) => {
    await services.accounts.register({ email: 'brand@example.com', password: 'a long enough passphrase' });
    await services.passwordReset.request('brand@example.com');
  });
  const message = await mail.waitFor((caught) => caught.to === 'brand@example.com');
  t.is(message.subject, 'Reset your password · Acme ID');
  t.regex(message.text, /\n-- \nAcme ID\n?$/);
  t.true(message.html.includes('background: #0a7d4f; color: #ffffff'));
});

test('the accent reads on the card in both modes whatever colour is chosen, and the focus ring reaches 3:1 everywhere', (t) => {
  for (const colour of ['#ffcc00', '#000000', '#ffffff', '#1f4fd1', '#0a7d4f', '#e11d48', '#7c3aed', '#777777']) {
    for (const mode of ['light', 'dark'] as const) {
      const accent = readableAccent(colour, mode);
      t.true(contrast(accent, PAPER[mode]) >= 4.5, `${colour} ${mode}: ${accent}`);
      t.true(contrast(accent, inkOn(accent)) >= 4.5, `${colour} ${mode}: ink on ${accent}`);
    }
  }
  // The default stylesheet's colours, light then dark: the ring sits on the card, the page or an alert.
  const css = readFileSync(new URL('../views/assets/tessera.css', import.meta.url), 'utf8');
  const [lightBlock, darkBlock] = css.split('@media (prefers-color-scheme: dark)') as [string, string];
  const read = (block: string, name: string) => new RegExp(`--${name}: (#[0-9a-f]{6})`).exec(block)?.[1];
  for (const block of [lightBlock, darkBlock]) {
    const focus = read(block, 'focus') ?? read(lightBlock, 'focus')!;
    for (const background of ['paper', 'page', 'danger-bg']) {
      const colour = read(block, background)!;
      t.true(contrast(focus, colour) >= 3, `focus ${focus} on ${background} ${colour}`);
    }
  }
});
