/**
 * Outgoing mail. With SMTP_URL it goes over SMTP (nodemailer); without, each message is written to
 * DATA_DIR/outbox/ as an .eml file, so development and demos work with no mail server at all.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import type { Transporter } from 'nodemailer';

import type { MailConfig } from '../config.ts';
import { inkOn, readableAccent } from './colour-contrast.ts';
import { randomId } from './random.ts';

export interface MailMessage {
  to: string;
  subject: string;
  text: string;
  html?: string;
}

export interface Mailer {
  send(message: MailMessage): Promise<void>;
  /** Where messages go, for the startup log: an SMTP host or the outbox directory. */
  readonly destination: string;
}

/** nodemailer is loaded with the first message, not at startup (a few MB a server may never need). */
function lazyTransport(options: Parameters<typeof import('nodemailer').createTransport>[0]): () => Promise<Transporter> {
  let transport: Promise<Transporter> | undefined;
  return () => (transport ??= import('nodemailer').then(({ default: nodemailer }) => nodemailer.createTransport(options) as Transporter));
}

export function createMailer(mail: MailConfig, dataDir: string): Mailer {
  if (mail.smtpUrl) {
    const transport = lazyTransport(mail.smtpUrl);
    return {
      destination: new URL(mail.smtpUrl).host,
      async send(message) {
        await (await transport()).sendMail({ from: mail.from, ...message });
      },
    };
  }
  const outbox = path.join(dataDir, 'outbox');
  const transport = lazyTransport({ streamTransport: true, buffer: true, newline: 'unix' });
  return {
    destination: outbox,
    async send(message) {
      const { message: eml } = await (await transport()).sendMail({ from: mail.from, ...message });
      mkdirSync(outbox, { recursive: true, mode: 0o700 });
      // Sortable by time, unique across processes.
      writeFileSync(path.join(outbox, `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomId(6)}.eml`), eml as Buffer, { mode: 0o600 });
    },
  };
}

/** The link button's colour in mails (domain/account-mail.ts); the operator's primary colour replaces it. */
export const MAIL_ACCENT = '#1f4fd1';

export interface MailBrand {
  readonly productName: string;
  /** The operator named the product: subjects then end with the name, so the inbox says who wrote. */
  readonly productNamed: boolean;
  readonly primaryColor: string | undefined;
}

function escapeHtml(value: string): string {
  return value.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
}

/** Every message signed with the product's name, its button in the product's colour. */
export function brandedMailer(mailer: Mailer, brand: MailBrand): Mailer {
  const accent = brand.primaryColor ? readableAccent(brand.primaryColor, 'light') : MAIL_ACCENT;
  const ink = inkOn(accent);
  return {
    destination: mailer.destination,
    send(message) {
      return mailer.send({
        ...message,
        subject: brand.productNamed ? `${message.subject} · ${brand.productName}` : message.subject,
        text: `${message.text.trimEnd()}\n\n-- \n${brand.productName}\n`,
        ...(message.html !== undefined && {
          html: message.html
            .replaceAll(`background: ${MAIL_ACCENT}; color: #fff`, `background: ${accent}; color: ${ink}`)
            .replace('</body>', `<p style="color: #555; font-size: .9em">${escapeHtml(brand.productName)}</p>\n</body>`),
        }),
      });
    },
  };
}
