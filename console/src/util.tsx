import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError } from './api';

export function fmtDuration(sec: number): string {
  const s = Math.max(0, Math.floor(sec));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  const mm = String(m).padStart(2, '0');
  const ss = String(r).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${m}:${ss}`;
}

export function fmtTime(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  return d.toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
}

export function fmtBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function fmtNumber(n: number): string {
  return String(n);
}

/** Async data for a component: reloads when `deps` change. */
export function useAsync<T>(load: () => Promise<T>, deps: unknown[]): {
  data: T | null;
  error: ApiError | null;
  loading: boolean;
  reload: () => void;
} {
  const [state, setState] = useState<{ data: T | null; error: ApiError | null; loading: boolean }>({
    data: null,
    error: null,
    loading: true,
  });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => live && setState({ data, error: null, loading: false }),
      (error) =>
        live &&
        setState({
          data: null,
          error: error instanceof ApiError ? error : new ApiError(String(error?.message ?? error), 'INTERNAL'),
          loading: false,
        }),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  return { ...state, reload: () => setTick((t) => t + 1) };
}

export function ErrorNote(props: { error: ApiError | null }) {
  if (!props.error) return null;
  return (
    <p role="alert" class="error">
      {props.error.message} <span class="code">({props.error.code})</span>
    </p>
  );
}

export function Loading(props: { what: string }) {
  return <p class="muted" role="status">Loading {props.what}…</p>;
}

export function Section(props: { title: string; children: ComponentChildren; class?: string }) {
  const id = 'sec-' + props.title.toLowerCase().replace(/[^a-z0-9]+/g, '-');
  return (
    <section aria-labelledby={id} class={'card ' + (props.class ?? '')}>
      <h2 id={id}>{props.title}</h2>
      {props.children}
    </section>
  );
}

export const SEVERITIES = ['INFO', 'LOW', 'MEDIUM', 'HIGH', 'CRITICAL'] as const;

export function titleCase(s: string): string {
  return s
    .toLowerCase()
    .split('_')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join(' ');
}

/** A comma-separated list as typed: its items, trimmed, none empty. */
export function splitList(text: string | undefined): string[] {
  return (text ?? '').split(',').map((x) => x.trim()).filter(Boolean);
}
