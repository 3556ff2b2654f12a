/**
 * The operator's look on every page: product name, logos, favicon, primary colour and their own
 * stylesheet (config.ts reads and checks them once). The files are served from memory under
 * /assets/brand/, cached for a year (each address carries its content's hash); the primary colour
 * becomes a small generated stylesheet of custom properties, made readable in light and dark mode.
 */
import { createHash } from 'node:crypto';

import type { Context, Middleware, Next } from 'koa';

import type { BrandAsset, BrandingConfig } from '../config.ts';
import { inkOn, readableAccent } from '../domain/colour-contrast.ts';

/** What the templates read (views/partials/head.ejs). */
export interface PageBrand {
  productName: string;
  logoLight: string | undefined;
  logoDark: string | undefined;
  favicon: string | undefined;
  /** The generated accent stylesheet, when a primary colour is set. */
  theme: string | undefined;
  stylesheet: string | undefined;
}

export const DEFAULT_BRAND: PageBrand = Object.freeze({
  productName: 'Tessera', logoLight: undefined, logoDark: undefined, favicon: undefined, theme: undefined, stylesheet: undefined,
});

export function themeStylesheet(primary: string): string {
  const light = readableAccent(primary, 'light');
  const dark = readableAccent(primary, 'dark');
  return [
    '/* Generated from the operator\'s primary colour (BRANDING_PRIMARY_COLOR / branding.json). */',
    `:root { --accent: ${light}; --accent-ink: ${inkOn(light)}; }`,
    `@media (prefers-color-scheme: dark) { :root { --accent: ${dark}; --accent-ink: ${inkOn(dark)}; } }`,
    '',
  ].join('\n');
}

interface Served { body: Buffer; type: string }

/** The brand's files and generated theme by path, and what pages link. */
export function brandingAssets(branding: BrandingConfig): { brand: PageBrand; serve: Middleware } {
  const files = new Map<string, Served>();
  const add = (asset: BrandAsset | undefined) => {
    if (!asset) return undefined;
    files.set(asset.url.split('?')[0]!, { body: Buffer.from(asset.base64, 'base64'), type: asset.contentType });
    return asset.url;
  };
  let theme: string | undefined;
  if (branding.primaryColor) {
    const body = Buffer.from(themeStylesheet(branding.primaryColor));
    files.set('/assets/brand/theme.css', { body, type: 'text/css' });
    theme = `/assets/brand/theme.css?v=${createHash('sha256').update(body).digest('base64url').slice(0, 12)}`;
  }
  const brand: PageBrand = Object.freeze({
    productName: branding.productName,
    logoLight: add(branding.logo.light),
    logoDark: add(branding.logo.dark),
    favicon: add(branding.favicon),
    theme,
    stylesheet: add(branding.stylesheet),
  });
  return {
    brand,
    // Not async: every request passes here (the token endpoint's included), and only brand files stop.
    serve: function brandFiles(ctx: Context, next: Next) {
      ctx.state.brand = brand;
      if (!ctx.path.startsWith('/assets/brand/') || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) return next();
      const file = files.get(ctx.path);
      if (!file) return next();
      ctx.type = file.type;
      ctx.set('Cache-Control', 'public, max-age=31536000, immutable');
      // An SVG opened on its own is a document: it runs nothing and loads nothing.
      if (file.type === 'image/svg+xml') ctx.set('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'; sandbox");
      ctx.body = file.body;
      return Promise.resolve();
    },
  };
}
