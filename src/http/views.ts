/**
 * `ctx.render(view, locals)`: an EJS template from the views folder, with the request's `ctx.state`
 * and the given locals, as the HTML body. Installed once on the app's context rather than as a
 * middleware that runs on every request (protocol endpoints included). With `cache` (production)
 * each template is read and compiled once; otherwise on every render, so edits show at once.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';

import ejs from 'ejs';
import type Koa from 'koa';

declare module 'koa' {
  interface ExtendableContext {
    render(view: string, locals?: Record<string, unknown>): Promise<void>;
  }
}

type Template = (data: Record<string, unknown>) => string;

export function installViews(app: Koa, { root, cache }: { root: string; cache: boolean }): void {
  const compiled = new Map<string, Promise<Template>>();

  async function compile(file: string): Promise<Template> {
    // `filename` resolves include() next to the template; `cache` keeps included partials compiled too.
    return ejs.compile(await readFile(file, 'utf8'), { filename: file, cache, async: false }) as Template;
  }

  function template(view: string): Promise<Template> {
    const file = path.resolve(root, `${view}.ejs`);
    if (!file.startsWith(root + path.sep)) return Promise.reject(new Error(`view ${view} is outside ${root}`));
    if (!cache) return compile(file);
    let found = compiled.get(file);
    if (!found) {
      found = compile(file);
      compiled.set(file, found);
      found.catch(() => compiled.delete(file));
    }
    return found;
  }

  app.context.render = async function render(this: Koa.Context, view: string, locals: Record<string, unknown> = {}) {
    const html = (await template(view))({ ...this.state, ...locals });
    this.type = 'html';
    this.body = html;
  };
}
