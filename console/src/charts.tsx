// Charts: uPlot for time series, plain HTML bars for rankings (readable by
// screen readers as lists with their numbers).
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export type Series = { label: string; values: number[]; color: string };

/** A bar chart over days (or any x in seconds), one or more stacked-free series. */
export function TimeChart(props: {
  title: string;
  xs: number[];
  series: Series[];
  bars?: boolean;
  height?: number;
  xIsOffset?: boolean;
  /** What a screen reader hears instead of the series' totals. */
  summary?: string;
}) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!el.current) return;
    const width = Math.max(280, el.current.clientWidth || 560);
    const bars = props.bars ? uPlot.paths.bars!({ size: [0.7, 40] }) : undefined;
    const opts: uPlot.Options = {
      width,
      height: props.height ?? 200,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: !props.xIsOffset } },
      axes: [
        props.xIsOffset
          ? { values: (_u, vals) => vals.map((v) => `${Math.floor(v / 60)}m`) }
          : {},
        { size: 50 },
      ],
      series: [
        {},
        ...props.series.map((s) => ({
          label: s.label,
          stroke: s.color,
          fill: props.bars ? s.color + 'cc' : s.color + '22',
          width: props.bars ? 0 : 2,
          paths: bars,
          points: { show: false },
        })),
      ],
    };
    const plot = new uPlot(opts, [props.xs, ...props.series.map((s) => s.values)] as uPlot.AlignedData, el.current);
    return () => plot.destroy();
  }, [props.xs, props.series]);
  const total = props.series.map((s) => `${s.label}: ${s.values.reduce((a, b) => a + b, 0)}`).join(', ');
  return (
    <figure class="chart">
      <div ref={el} role="img" aria-label={`${props.title} (${props.summary ?? total})`} />
    </figure>
  );
}

/** A ranking as horizontal bars with the numbers written out. */
export function BarList(props: { label: string; items: { name: string; value: number; text?: string; color?: string }[] }) {
  const max = Math.max(1, ...props.items.map((i) => i.value));
  if (props.items.length === 0) return <p class="muted">None in this range.</p>;
  return (
    <ol class="barlist" aria-label={props.label}>
      {props.items.map((item) => (
        <li key={item.name}>
          <span class="bar-name" title={item.name}>{item.name}</span>
          <span class="bar-track" aria-hidden="true">
            <span class="bar-fill" style={{ width: `${(100 * item.value) / max}%`, background: item.color }} />
          </span>
          <span class="bar-value">{item.text ?? item.value}</span>
        </li>
      ))}
    </ol>
  );
}

export const SEVERITY_COLORS: Record<string, string> = {
  INFO: '#6b7f99',
  LOW: '#3a7d44',
  MEDIUM: '#b27a00',
  HIGH: '#c2410c',
  CRITICAL: '#b91c1c',
};

/**
 * Stacked bars: each series drawn as the running sum of itself and those
 * before it, the tallest first, so each shows as its own band.
 */
export function StackedDays(props: { title: string; xs: number[]; series: Series[] }) {
  const sums: Series[] = [];
  let running = props.xs.map(() => 0);
  for (const s of props.series) {
    running = running.map((v, i) => v + s.values[i]);
    sums.push({ label: s.label, color: s.color, values: running });
  }
  const summary = props.series.map((s) => `${s.label}: ${s.values.reduce((a, b) => a + b, 0)}`).join(', ');
  return <TimeChart title={props.title} bars xs={props.xs} series={sums.reverse()} summary={summary} />;
}
