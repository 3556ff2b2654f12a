import test from 'ava';
import type { Context, Middleware } from 'koa';

import { lazyMount } from '../src/http/lazy-mount.ts';

const request = (path: string) => ({ path, body: undefined }) as unknown as Context & { body: unknown };

test('a lazily mounted part loads on the first request under its prefix, once, and never for other paths', async (t) => {
  let loads = 0;
  const mounted = lazyMount('/admin', async () => {
    loads += 1;
    const answer: Middleware = async (ctx) => { ctx.body = `served ${ctx.path}`; };
    return answer;
  });
  let passedOn = 0;
  const next = async () => { passedOn += 1; };
  await mounted(request('/administrator'), next);
  await mounted(request('/'), next);
  t.is(loads, 0, 'a path that only starts with the same letters is not under the prefix');
  t.is(passedOn, 2);
  const [a, b, c] = [request('/admin'), request('/admin/people'), request('/admin/apps')];
  await Promise.all([mounted(a, next), mounted(b, next), mounted(c, next)]);
  t.is(loads, 1, 'concurrent first requests share one load');
  t.deepEqual([a.body, b.body, c.body], ['served /admin', 'served /admin/people', 'served /admin/apps']);
});

test('a lazily mounted part whose load failed is loaded again by the next request', async (t) => {
  let attempts = 0;
  const mounted = lazyMount('/api', async () => {
    attempts += 1;
    if (attempts === 1) throw new Error('module not found');
    const answer: Middleware = async (ctx) => { ctx.body = 'ok'; };
    return answer;
  });
  await t.throwsAsync(mounted(request('/api/accounts'), async () => {}), { message: 'module not found' });
  const ctx = request('/api/accounts');
  await mounted(ctx, async () => {});
  t.is(ctx.body, 'ok');
  t.is(attempts, 2);
});
