import { useState } from 'preact/hooks';
import { ApiError, gql } from '../api';
import type { Me } from '../app';
import { navigate, useUrl } from '../router';
import { ErrorNote, Loading, Section, titleCase, useAsync } from '../util';
import { PolicyForm, type Kind as PolicyKind } from './policyform';

const POLICIES_QUERY = `query P($siteId: ID!, $atLeast: Int) { policies(siteId: $siteId, atLeast: $atLeast) {
  recording { active { id } all { id name version system deleted definition { recording { name fallback fallbackNotify rules { name action notify lossy audio users groups applications hosts deliveryGroups clientIpRanges } } } } }
  eventDetection { active { id } all { id name version system deleted definition { eventDetection { name logged monitoredApps rules { name type severity patterns idleSeconds users groups hosts } } } } }
  eventResponse { active { id } all { id name version system deleted definition { eventResponse { name rules { name onSessionStart types minSeverity users hosts actions recipients message cooldownSec } } } } }
} }`;

export function Policies(props: { me: Me }) {
  const url = useUrl();
  const sites = useAsync(() => gql<{ sites: { id: string; name: string }[] }>('{ sites { id name } }'), []);
  const siteId = url.searchParams.get('site') ?? sites.data?.sites[0]?.id ?? '';
  const pol = useAsync(() => (siteId ? gql<{ policies: any }>(POLICIES_QUERY, { siteId }) : Promise.resolve(null)), [siteId]);
  const admin = props.me.role === 'ADMIN';
  const p = pol.data?.policies;
  return (
    <>
      <div class="page-head">
        <h1>Policies</h1>
        <div class="pickers">
          <label>
            Site{' '}
            <select value={siteId} onChange={(e) => navigate('/policies?site=' + (e.target as HTMLSelectElement).value, true)}>
              {(sites.data?.sites ?? []).map((s) => <option key={s.id} value={s.id}>{s.name}</option>)}
            </select>
          </label>
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
  const [error, setError] = useState<ApiError | null>(null);
  const [editing, setEditing] = useState<string | null>(null);
  const done = (saved: boolean) => {
    setEditing(null);
    if (saved) props.onChange();
  };
  const act = async (query: string, id: string) => {
    try {
      // A system policy belongs to every site: its activation names this one.
      await gql(query, query.includes('$site') ? { id, site: props.siteId } : { id });
      setError(null);
      props.onChange();
    } catch (e) {
      setError(e as ApiError);
    }
  };
  return (
    <Section title={props.title}>
      <ErrorNote error={error} />
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
                <button type="button" onClick={() => act('mutation A($id: ID!, $site: ID) { activatePolicy(policyId: $id, siteId: $site) { position } }', p.id)} aria-label={`Activate ${p.name}`}>Activate</button>
                {!p.system && <button type="button" class="secondary" onClick={() => act('mutation D($id: ID!) { deletePolicy(policyId: $id) { position } }', p.id)} aria-label={`Delete ${p.name}`}>Delete</button>}
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
  const [error, setError] = useState<ApiError | null>(null);
  const list = (s: string) => s.split(',').map((x) => x.trim()).filter(Boolean);
  const input = (key: keyof typeof form, label: string) => (
    <label>{label}<input type="text" value={form[key]} onInput={(e) => setForm({ ...form, [key]: (e.target as HTMLInputElement).value })} /></label>
  );
  return (
    <Section title="Test the recording policy">
      <form
        class="stack"
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            const data = await gql<{ evaluateRecordingPolicy: any }>(
              'query E($siteId: ID!, $session: SessionAttributesInput!) { evaluateRecordingPolicy(siteId: $siteId, session: $session) { policyName rule action notify records } }',
              { siteId: props.siteId, session: { user: form.user.trim(), host: form.host.trim(), groups: list(form.groups), clientIp: form.clientIp.trim() || null, deliveryGroup: form.deliveryGroup.trim() || null, applications: list(form.applications) } },
            );
            setAnswer(data.evaluateRecordingPolicy);
            setError(null);
          } catch (err) {
            setAnswer(null);
            setError(err as ApiError);
          }
        }}
      >
        {input('user', 'User (DOMAIN\\user)')}
        {input('groups', 'Groups (comma-separated)')}
        {input('host', 'Host')}
        {input('clientIp', 'Client IP')}
        {input('deliveryGroup', 'Delivery group')}
        {input('applications', 'Applications (comma-separated)')}
        <div><button type="submit">Test</button></div>
      </form>
      <ErrorNote error={error} />
      {answer && (
        <p role="status">
          {answer.records ? 'Recorded' : 'Not recorded'}: {titleCase(answer.action)}{answer.notify ? ' with notification' : ''}, by {answer.rule ? `rule “${answer.rule}” of ` : 'the fallback of '}{answer.policyName}.
        </p>
      )}
    </Section>
  );
}
