// Policy forms: every field of the three policy kinds as a control (lists
// as comma-separated text, enums as selects or checkboxes), never raw JSON.
import { useState } from 'preact/hooks';
import { gql } from '../api';
import { ActionForm, SelectField, TextField } from '../forms';
import { SEVERITIES, splitList, titleCase } from '../util';

export const EVENT_TYPES = [
  'LOGON', 'LOGOFF', 'DISCONNECT', 'RECONNECT', 'APP_START', 'APP_END', 'TOP_MOST_WINDOW', 'WEB_BROWSING',
  'FILE_CREATE', 'FILE_RENAME', 'FILE_DELETE', 'FILE_MOVE', 'USB_MASS_STORAGE', 'CLIPBOARD', 'PRINT',
  'REGISTRY_CHANGE', 'IDLE', 'RDP_CONNECTION', 'PERFORMANCE_SAMPLE', 'CUSTOM', 'APP_FAILURE', 'APP_INSTALL',
  'APP_UNINSTALL', 'FILE_TRANSFER', 'USER_ACCOUNT_CHANGE', 'POPUP_WINDOW',
];
const RECORDING_ACTIONS = ['DO_NOT_RECORD', 'RECORD_SCREEN_AND_EVENTS', 'RECORD_EVENTS_ONLY'];
const RESPONSE_ACTIONS = ['EMAIL_ALERT', 'START_SCREEN_RECORDING', 'LOCK_SESSION', 'LOG_OFF_SESSION', 'DISCONNECT_SESSION'];

type Field =
  | { key: string; label: string; type: 'text' | 'list' | 'int' | 'bool' | 'optText' }
  | { key: string; label: string; type: 'select'; options: readonly string[] }
  | { key: string; label: string; type: 'multi'; options: readonly string[] };

export type Kind = 'recording' | 'eventDetection' | 'eventResponse';

const SPEC: Record<Kind, { title: string; create: string; input: string; policy: Field[]; rule: Field[] }> = {
  recording: {
    title: 'recording policy',
    create: 'createRecordingPolicy',
    input: 'RecordingPolicyInput',
    policy: [
      { key: 'name', label: 'Name', type: 'text' },
      { key: 'fallback', label: 'Otherwise', type: 'select', options: RECORDING_ACTIONS },
      { key: 'fallbackNotify', label: 'Notify when recorded otherwise', type: 'bool' },
    ],
    rule: [
      { key: 'name', label: 'Rule name', type: 'text' },
      { key: 'action', label: 'Action', type: 'select', options: RECORDING_ACTIONS },
      { key: 'notify', label: 'Notify the user', type: 'bool' },
      { key: 'lossy', label: 'Lossy screen', type: 'bool' },
      { key: 'audio', label: 'Audio', type: 'bool' },
      { key: 'users', label: 'Users', type: 'list' },
      { key: 'groups', label: 'Groups', type: 'list' },
      { key: 'applications', label: 'Applications', type: 'list' },
      { key: 'deliveryGroups', label: 'Delivery groups', type: 'list' },
      { key: 'hosts', label: 'Hosts', type: 'list' },
      { key: 'clientIpRanges', label: 'Client IP ranges', type: 'list' },
    ],
  },
  eventDetection: {
    title: 'event detection policy',
    create: 'createEventDetectionPolicy',
    input: 'EventDetectionPolicyInput',
    policy: [
      { key: 'name', label: 'Name', type: 'text' },
      { key: 'logged', label: 'Events logged', type: 'multi', options: EVENT_TYPES },
      { key: 'monitoredApps', label: 'Monitored applications', type: 'list' },
    ],
    rule: [
      { key: 'name', label: 'Rule name', type: 'optText' },
      { key: 'type', label: 'Event type', type: 'select', options: EVENT_TYPES },
      { key: 'severity', label: 'Severity', type: 'select', options: SEVERITIES },
      { key: 'patterns', label: 'Patterns', type: 'list' },
      { key: 'idleSeconds', label: 'Idle seconds', type: 'int' },
      { key: 'users', label: 'Users', type: 'list' },
      { key: 'groups', label: 'Groups', type: 'list' },
      { key: 'hosts', label: 'Hosts', type: 'list' },
    ],
  },
  eventResponse: {
    title: 'event response policy',
    create: 'createEventResponsePolicy',
    input: 'EventResponsePolicyInput',
    policy: [{ key: 'name', label: 'Name', type: 'text' }],
    rule: [
      { key: 'name', label: 'Rule name', type: 'text' },
      { key: 'onSessionStart', label: 'On session start', type: 'bool' },
      { key: 'types', label: 'Event types', type: 'multi', options: EVENT_TYPES },
      { key: 'minSeverity', label: 'Minimum severity', type: 'select', options: SEVERITIES },
      { key: 'actions', label: 'Actions', type: 'multi', options: RESPONSE_ACTIONS },
      { key: 'users', label: 'Users', type: 'list' },
      { key: 'hosts', label: 'Hosts', type: 'list' },
      { key: 'recipients', label: 'Recipients', type: 'list' },
      { key: 'message', label: 'Message', type: 'optText' },
      { key: 'cooldownSec', label: 'Cool-down (seconds)', type: 'int' },
    ],
  },
};

type Values = Record<string, any>;

function toForm(fields: Field[], value: Values | null): Values {
  const out: Values = {};
  for (const f of fields) {
    const v = value?.[f.key];
    if (f.type === 'list') out[f.key] = (v ?? []).join(', ');
    else if (f.type === 'multi') out[f.key] = [...(v ?? [])];
    else if (f.type === 'bool') out[f.key] = Boolean(v);
    else if (f.type === 'int') out[f.key] = v == null ? '' : String(v);
    else if (f.type === 'select') out[f.key] = v ?? f.options[f.options.length > 3 ? 0 : 1];
    else out[f.key] = v ?? '';
  }
  return out;
}

function toInput(fields: Field[], form: Values): Values {
  const out: Values = {};
  for (const f of fields) {
    const v = form[f.key];
    if (f.type === 'list') out[f.key] = splitList(String(v));
    else if (f.type === 'int') out[f.key] = v === '' ? null : Number(v);
    else if (f.type === 'optText') out[f.key] = v.trim() || null;
    else if (f.type === 'text') out[f.key] = v.trim();
    else out[f.key] = v;
  }
  return out;
}

/** The form of one policy: a new one (no `policy`) or an edit of `policy`. */
export function PolicyForm(props: { kind: Kind; siteId: string; policy?: any; onDone: (saved: boolean) => void }) {
  const spec = SPEC[props.kind];
  const definition = props.policy?.definition?.[props.kind] ?? null;
  const [head, setHead] = useState<Values>(() => toForm(spec.policy, definition));
  const [rules, setRules] = useState<Values[]>(() => (definition?.rules ?? []).map((r: Values) => toForm(spec.rule, r)));
  const legend = props.policy ? `Edit ${props.policy.name}` : `New ${spec.title}`;
  const save = async () => {
    const input = { ...toInput(spec.policy, head), rules: rules.map((r) => toInput(spec.rule, r)) };
    if (props.policy) {
      await gql(
        `mutation U($id: ID!, $input: PolicyUpdateInput!, $v: Int) { updatePolicy(policyId: $id, input: $input, expectedVersion: $v) { position } }`,
        { id: props.policy.id, input: { [props.kind]: input }, v: props.policy.version },
      );
    } else {
      await gql(`mutation C($siteId: ID!, $input: ${spec.input}!) { ${spec.create}(siteId: $siteId, input: $input) { position } }`, { siteId: props.siteId, input });
    }
    props.onDone(true);
  };
  return (
    <ActionForm class="policy-form" label={legend} onSubmit={save} conflict="The policy changed meanwhile: cancel and edit it again.">
      <fieldset>
        <legend>{legend}</legend>
        <Fields fields={spec.policy} values={head} onChange={setHead} />
        {rules.map((rule, i) => (
          <fieldset key={i} class="rule">
            <legend>Rule {i + 1}</legend>
            <Fields fields={spec.rule} values={rule} onChange={(v) => setRules(rules.map((r, j) => (j === i ? v : r)))} />
            <button type="button" class="secondary" onClick={() => setRules(rules.filter((_, j) => j !== i))}>Remove rule {i + 1}</button>
          </fieldset>
        ))}
        <div class="row">
          <button type="button" class="secondary" onClick={() => setRules([...rules, toForm(spec.rule, null)])}>Add rule</button>
          <button type="submit">Save</button>
          <button type="button" class="secondary" onClick={() => props.onDone(false)}>Cancel</button>
        </div>
      </fieldset>
    </ActionForm>
  );
}

function Fields(props: { fields: Field[]; values: Values; onChange: (v: Values) => void }) {
  const { values } = props;
  const set = (key: string, value: unknown) => props.onChange({ ...values, [key]: value });
  return (
    <div class="fields">
      {props.fields.map((f) => {
        if (f.type === 'bool')
          return (
            <label key={f.key} class="check">
              <input type="checkbox" checked={values[f.key]} onChange={(e) => set(f.key, (e.target as HTMLInputElement).checked)} /> {f.label}
            </label>
          );
        if (f.type === 'select')
          return (
            <SelectField key={f.key} label={f.label} value={values[f.key]} onChange={(v) => set(f.key, v)} options={f.options.map((o) => [o, titleCase(o)] as const)} />
          );
        if (f.type === 'multi')
          return (
            <fieldset key={f.key} class="multi">
              <legend>{f.label}</legend>
              {f.options.map((o) => (
                <label key={o} class="check">
                  <input
                    type="checkbox"
                    checked={values[f.key].includes(o)}
                    onChange={(e) =>
                      set(f.key, (e.target as HTMLInputElement).checked ? [...values[f.key], o] : values[f.key].filter((x: string) => x !== o))
                    }
                  />{' '}
                  {titleCase(o)}
                </label>
              ))}
            </fieldset>
          );
        return (
          <TextField
            key={f.key}
            label={f.label}
            type={f.type === 'int' ? 'number' : 'text'}
            placeholder={f.type === 'list' ? 'comma-separated; empty: any' : undefined}
            value={values[f.key]}
            onInput={(v) => set(f.key, v)}
          />
        );
      })}
    </div>
  );
}
