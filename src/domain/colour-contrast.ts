/**
 * Colour contrast by WCAG 2's formulas, for the operator's primary colour: pages (http/branding.ts)
 * and mails (domain/mailer.ts) use it as the accent, so it must stay readable whatever was chosen.
 */

/** The card's background in each mode (views/assets/tessera.css `--paper`): links and buttons sit on it. */
export const PAPER = { light: '#ffffff', dark: '#1d2127' } as const;
const INK = { light: '#ffffff', dark: '#0b1020' } as const;

function channels(hex: string): [number, number, number] {
  return [1, 3, 5].map((i) => Number.parseInt(hex.slice(i, i + 2), 16)) as [number, number, number];
}

function toHex(rgb: readonly number[]): string {
  return `#${rgb.map((c) => Math.round(c).toString(16).padStart(2, '0')).join('')}`;
}

/** WCAG 2 relative luminance. */
export function luminance(hex: string): number {
  const [r, g, b] = channels(hex).map((c) => {
    const v = c / 255;
    return v <= 0.039_28 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  }) as [number, number, number];
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

/** WCAG 2 contrast ratio, 1 to 21. */
export function contrast(a: string, b: string): number {
  const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p) as [number, number];
  return (x + 0.05) / (y + 0.05);
}

/**
 * The operator's colour, moved toward black (light mode) or white (dark mode) only as far as needed
 * for 4.5:1 against the card, since the accent is also the colour of links (text).
 */
export function readableAccent(color: string, mode: 'light' | 'dark'): string {
  const paper = PAPER[mode];
  const target = mode === 'light' ? [0, 0, 0] : [255, 255, 255];
  const start = channels(color);
  for (let step = 0; step <= 20; step += 1) {
    const mixed = toHex(start.map((c, i) => c + (target[i]! - c) * (step / 20)));
    if (contrast(mixed, paper) >= 4.5) return mixed;
  }
  return toHex(target);
}

/** Text on an accent button: whichever of the two inks reads better on it. */
export function inkOn(color: string): string {
  return contrast(color, INK.light) >= contrast(color, INK.dark) ? INK.light : INK.dark;
}

