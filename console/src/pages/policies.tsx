import { useState } from 'preact/hooks';
import { gql } from '../api';
import type { Me } from '../app';
import { ActionButton, ActionForm, SiteSelect, TextField, useAction, useSites } from '../forms';
import { navigate, useUrl } from '../router';
import { ErrorNote, Loading, Section, splitList, titleCase, useAsync } from '../util';
import { PolicyForm, type Kind as PolicyKind } from './policyform';

const POLICIES_QUERY = `query P($siteId: ID!, $atLeast: Int) { policies(siteId: $siteId, atLeast: $atLeast) {
  recording { active { id } all { id name version system deleted definition { recording { name fallback fallbackNotify rules { name action notify lossy audio users groups applications hosts deliveryGroups clientIpRanges } } } } }
  eventDetection { active { id } all { id name version system deleted definition { eventDetection { name logged monitoredApps rules { name type severity patterns idleSeconds users groups hosts } } } } }
  eventResponse { active { id } all { id name version system deleted definition { eventResponse { name rules { name onSessionStart types minSeverity users hosts actions recipients message cooldownSec } } } } }
} }`;

export function Policies(props: { me: Me }) {
  const url = useUrl();
  const sites = useSites();
  const siteId = url.searchParams.get('site') ?? sites.data?.sites[0]?.id ?? '';
  const pol = useAsync(() => (siteId ? gql<{ policies: any }>(POLICIES_QUERY, { siteId }) : Promise.resolve(null)), [siteId]);
  const admin = props.me.role === 'ADMIN';
  const p = pol.data?.policies;
  return (
    <>
      <div class="page-head">
        <h1>Policies</h1>
        <div class="pickers">
          <SiteSelect sites={sites.data?.sites} value={siteId} onChange={(id) => navigate('/policies?site=' + id, true)} />
        </div>
      </div>
      <ErrorNote error={pol.error ?? sites.error} />
      {!p && pol.loading && <Loading what="policies" />}
      {p && (
        <>
          <Kind title="Recording policies" kind={p.recording} which="recording" siteId={siteId} admin={admin} onChange={pol.reload}
            render={(d) => d.recording && (
              <ul>
                {d.recording.rules.map((r: any, i: number) => (
                  <li key={i}><strong>{r.name}</strong>: {titleCase(r.action)}{r.notify ? ', with notification' : ''} — {matchers(r)}</li>
                ))}
                <li>Otherwise: {titleCase(d.recording.fallback)}</li>
              </ul>
            )} />
          <Kind title="Event detection policies" kind={p.eventDetection} which="eventDetection" siteId={siteId} admin={admin} onChange={pol.reload}
            render={(d) => d.eventDetection && (
              <>
                <p class="muted">Logs: {d.eventDetection.logged.map(titleCase).join(', ')}</p>
                <ul>
                  {d.eventDetection.rules.map((r: any, i: number) => (
                    <li key={i}>{titleCase(r.type)} → {titleCase(r.severity)}{r.patterns.length ? ` when ${r.patterns.join(', ')}` : ''}{r.idleSeconds ? ` after ${r.idleSeconds} s idle` : ''}</li>
                  ))}
                </ul>
              </>
            )} />
          <Kind title="Event response policies" kind={p.eventResponse} which="eventResponse" siteId={siteId} admin={admin} onChange={pol.reload}
            render={(d) => d.eventResponse && (
              <ul>
                {d.eventResponse.rules.map((r: any, i: number) => (
                  <li key={i}><strong>{r.name}</strong>: {r.actions.map(titleCase).join(', ')} on {r.types.map(titleCase).join(', ') || 'session start'} from {titleCase(r.minSeverity)}</li>
                ))}
              </ul>
            )} />
          <TestPolicy siteId={siteId} />
        </>
      )}
    </>
  );
}

function matchers(r: any): string {
  const parts = [
    ['users', r.users], ['groups', r.groups], ['applications', r.applications], ['hosts', r.hosts],
    ['delivery groups', r.deliveryGroups], ['client IPs', r.clientIpRanges],
  ].filter(([, v]) => v.length).map(([k, v]) => `${k} ${v.join(', ')}`);
  return parts.length ? parts.join('; ') : 'everyone';
}

function Kind(props: { title: string; kind: any; which: PolicyKind; siteId: string; admin: boolean; onChange: () => void; render: (d: any) => any }) {
  const action = useAction();
  const [editing, setEditing] = useState<string | null>(null);
  const done = (saved: boolean) => {
    setEditing(null);
    if (saved) props.onChange();
  };
  return (
    <Section title={props.title}>
      <ErrorNote error={action.error} />
      {props.kind.all.filter((p: any) => !p.deleted).map((p: any) => {
        const active = p.id === props.kind.active.id;
        return (
          <article key={p.id} class="card">
            <h3>{p.name} {active && <span class="badge badge-live">active</span>} {p.system && <span class="badge">system</span>} <span class="muted">v{p.version}</span></h3>
            {editing === p.id ? (
              <PolicyForm kind={props.which} siteId={props.siteId} policy={p} onDone={done} />
            ) : (
              props.render(p.definition)
            )}
            {props.admin && editing !== p.id && (
              <div class="row">
                {!p.system && <button type="button" class="secondary" onClick={() => setEditing(p.id)} aria-label={`Edit ${p.name}`}>Edit</button>}
              </div>
            )}
            {props.admin && !active && (
              <div class="row">
                {/* A system policy belongs to every site: its activation names this one. */}
                <ActionButton
                  action={action}
                  name={`Activate ${p.name}`}
                  run={() => gql('mutation A($id: ID!, $site: ID) { activatePolicy(policyId: $id, siteId: $site) { position } }', { id: p.id, site: props.siteId })}
                  onDone={props.onChange}
                >
                  Activate
                </ActionButton>
                {!p.system && (
                  <ActionButton
                    action={action}
                    secondary
                    name={`Delete ${p.name}`}
                    run={() => gql('mutation D($id: ID!) { deletePolicy(policyId: $id) { position } }', { id: p.id })}
                    onDone={props.onChange}
                  >
                    Delete
                  </ActionButton>
                )}
              </div>
            )}
          </article>
        );
      })}
      {props.admin && editing === 'new' && <PolicyForm kind={props.which} siteId={props.siteId} onDone={done} />}
      {props.admin && editing !== 'new' && (
        <button type="button" onClick={() => setEditing('new')}>New {props.title.toLowerCase().replace(/ies$/, 'y')}</button>
      )}
    </Section>
  );
}

function TestPolicy(props: { siteId: string }) {
  const [form, setForm] = useState({ user: '', groups: '', host: '', clientIp: '', deliveryGroup: '', applications: '' });
  const [answer, setAnswer] = useState<any>(null);
  const input = (key: keyof typeof form, label: string) => (
    <TextField label={label} value={form[key]} onInput={(v) => setForm({ ...form, [key]: v })} />
  );
  return (
    <Section title="Test the recording policy">
      <ActionForm
        class="stack"
        onSubmit={async () => {
          setAnswer(null);
          const data = await gql<{ evaluateRecordingPolicy: any }>(
            'query E($siteId: ID!, $session: SessionAttributesInput!) { evaluateRecordingPolicy(siteId: $siteId, session: $session) { policyName rule action notify records } }',
            { siteId: props.siteId, session: { user: form.user.trim(), host: form.host.trim(), groups: splitList(form.groups), clientIp: form.clientIp.trim() || null, deliveryGroup: form.deliveryGroup.trim() || null, applications: splitList(form.applications) } },
          );
          setAnswer(data.evaluateRecordingPolicy);
        }}
      >
        {input('user', 'User (DOMAIN\\user)')}
        {input('groups', 'Groups (comma-separated)')}
        {input('host', 'Host')}
        {input('clientIp', 'Client IP')}
        {input('deliveryGroup', 'Delivery group')}
        {input('applications', 'Applications (comma-separated)')}
        <div><button type="submit">Test</button></div>
      </ActionForm>
      {answer && (
        <p role="status">
          {answer.records ? 'Recorded' : 'Not recorded'}: {titleCase(answer.action)}{answer.notify ? ' with notification' : ''}, by {answer.rule ? `rule “${answer.rule}” of ` : 'the fallback of '}{answer.policyName}.
        </p>
      )}
    </Section>
  );
}
