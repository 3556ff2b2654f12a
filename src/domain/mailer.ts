/**
 * Outgoing mail. With SMTP_URL it goes over SMTP (nodemailer); without, each message is written to
 * DATA_DIR/outbox/ as an .eml file, so development and demos work with no mail server at all.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import type { Transporter } from 'nodemailer';

import type { MailConfig } from '../config.ts';
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
