// What the console's forms share: a mutation run with its error kept
// (forms and buttons), labelled fields, the site picker.
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { ApiError, gql } from './api';
import { ErrorNote, useAsync } from './util';

export type Site = { id: string; name: string };

function asApiError(e: unknown): ApiError {
  return e instanceof ApiError ? e : new ApiError(String((e as Error)?.message ?? e), 'INTERNAL');
}

/** How a change is run: its last error, and `run` that keeps it. */
export type Action = {
  error: ApiError | null;
  setError: (e: ApiError | null) => void;
  /**
   * Runs `change` (after the viewer confirms `confirm`, if given); true when
   * it succeeded. A CONFLICT (a stale `expectedVersion`) reads `conflict`.
   */
  run: (change: () => Promise<unknown>, opts?: { confirm?: string; conflict?: string }) => Promise<boolean>;
};

export function useAction(): Action {
  const [error, setError] = useState<ApiError | null>(null);
  const run: Action['run'] = async (change, opts = {}) => {
    if (opts.confirm && !confirm(opts.confirm)) return false;
    try {
      await change();
      setError(null);
      return true;
    } catch (e) {
      const err = asApiError(e);
      setError(err.code === 'CONFLICT' && opts.conflict ? new ApiError(opts.conflict, 'CONFLICT') : err);
      return false;
    }
  };
  return { error, setError, run };
}

/** A form whose submit runs `onSubmit`; what it fails with shows under it. */
export function ActionForm(props: {
  class?: string;
  label?: string;
  onSubmit: () => Promise<unknown>;
  conflict?: string;
  children: ComponentChildren;
}) {
  const action = useAction();
  return (
    <form
      class={props.class}
      aria-label={props.label}
      onSubmit={(e) => {
        e.preventDefault();
        void action.run(props.onSubmit, { conflict: props.conflict });
      }}
    >
      {props.children}
      <ErrorNote error={action.error} />
    </form>
  );
}

/**
 * A button that runs a change (asking `confirm` first, if given), then
 * `onDone`; its error goes to `action`, shown where the page shows it.
 */
export function ActionButton(props: {
  action: Action;
  run: () => Promise<unknown>;
  onDone?: () => void;
  confirm?: string;
  /** The accessible name, when the text alone does not say what it acts on. */
  name?: string;
  secondary?: boolean;
  children: ComponentChildren;
}) {
  return (
    <button
      type="button"
      class={props.secondary ? 'secondary' : undefined}
      aria-label={props.name}
      onClick={async () => {
        if (await props.action.run(props.run, { confirm: props.confirm })) props.onDone?.();
      }}
    >
      {props.children}
    </button>
  );
}

/** A labelled control; `stacked` puts the control under its label. */
export function Field(props: { label: string; stacked?: boolean; children: ComponentChildren }) {
  return (
    <label>
      {props.label}
      {props.stacked ? <br /> : ' '}
      {props.children}
    </label>
  );
}

/** A labelled text (or number, date) input. */
export function TextField(props: {
  label: string;
  value: string;
  onInput: (value: string) => void;
  type?: 'text' | 'number' | 'date';
  placeholder?: string;
  stacked?: boolean;
}) {
  return (
    <Field label={props.label} stacked={props.stacked}>
      <input
        // (Preact types each input type apart; these three take the same attributes.)
        type={(props.type ?? 'text') as 'text'}
        placeholder={props.placeholder}
        value={props.value}
        onInput={(e) => props.onInput((e.target as HTMLInputElement).value)}
      />
    </Field>
  );
}

/**
 * A labelled select of `[value, text]` options. Its accessible name is the
 * label alone (a wrapping label would add the chosen option's text).
 */
export function SelectField(props: {
  label: string;
  value: string;
  onChange: (value: string) => void;
  options: readonly (readonly [string, string])[];
  stacked?: boolean;
}) {
  return (
    <Field label={props.label} stacked={props.stacked}>
      <select aria-label={props.label} value={props.value} onChange={(e) => props.onChange((e.target as HTMLSelectElement).value)}>
        {props.options.map(([value, text]) => (
          <option key={value} value={value}>{text}</option>
        ))}
      </select>
    </Field>
  );
}

/** The sites the caller sees. */
export function useSites() {
  return useAsync(() => gql<{ sites: Site[] }>('{ sites { id name } }'), []);
}

/** The site picker; `all` names an option for every site (value ''). */
export function SiteSelect(props: { sites: Site[] | undefined; value: string; onChange: (id: string) => void; all?: string; stacked?: boolean }) {
  const options = (props.sites ?? []).map((s) => [s.id, s.name] as const);
  return (
    <SelectField
      label="Site"
      stacked={props.stacked}
      value={props.value}
      onChange={props.onChange}
      options={props.all === undefined ? options : [['', props.all] as const, ...options]}
    />
  );
}
