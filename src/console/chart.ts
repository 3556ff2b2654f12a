/**
 * The overview's chart: sign-ins and failed sign-ins per hour over the last day, as numbers a
 * server-rendered SVG draws (views/console/overview.ejs). No script, so the strict CSP holds and
 * the chart shows without JavaScript; the same numbers are in a table for screen readers.
 */
export interface SignInPoint {
  at: Date;
  failed: boolean;
}

export interface ChartBar {
  /** The hour's start, UTC, as HH:00. */
  label: string;
  succeeded: number;
  failed: number;
}

export interface SignInChart {
  bars: ChartBar[];
  /** The largest hourly total, at least 1: the bars' scale. */
  max: number;
  succeeded: number;
  failed: number;
}

const HOUR_MS = 3_600_000;

export function signInChart(points: readonly SignInPoint[], since: Date, until: Date): SignInChart {
  const start = Math.floor(since.getTime() / HOUR_MS) * HOUR_MS;
  const count = Math.max(1, Math.ceil((until.getTime() - start) / HOUR_MS));
  const bars: ChartBar[] = Array.from({ length: count }, (_, index) => ({
    label: `${String(new Date(start + index * HOUR_MS).getUTCHours()).padStart(2, '0')}:00`,
    succeeded: 0,
    failed: 0,
  }));
  for (const point of points) {
    const bar = bars[Math.floor((point.at.getTime() - start) / HOUR_MS)];
    if (!bar) continue;
    if (point.failed) bar.failed += 1;
    else bar.succeeded += 1;
  }
  return {
    bars,
    max: Math.max(1, ...bars.map((bar) => bar.succeeded + bar.failed)),
    succeeded: bars.reduce((sum, bar) => sum + bar.succeeded, 0),
    failed: bars.reduce((sum, bar) => sum + bar.failed, 0),
  };
}
