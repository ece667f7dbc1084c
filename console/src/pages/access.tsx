import { useState } from 'preact/hooks';
import { gql } from '../api';
import type { Me } from '../app';
import { ActionButton, ActionForm, SelectField, SiteSelect, TextField, useAction, useSites } from '../forms';
import { Link } from '../router';
import { ErrorNote, Loading, Section, fmtTime, splitList, useAsync } from '../util';

export function Access(props: { me: Me }) {
  const admin = props.me.role === 'ADMIN';
  const perms = useAsync(() => gql<{ playbackPermissions: any[] }>('query Perms($atLeast: Int) { playbackPermissions(atLeast: $atLeast) { id siteId principal grantedAt grantedBy scope { wholeSite recordedUsers recordedGroups hosts deliveryGroups applications serverIds } } }'), []);
  const restricted = useAsync(() => gql<{ recordings: any }>('query Restricted($atLeast: Int) { recordings(filter: { restricted: true }, first: 100, atLeast: $atLeast) { totalCount edges { node { id user host startedAt restriction { reason by at } } } } }'), []);
  const holds = useAsync(() => gql<{ legalHolds: any }>('query Holds($atLeast: Int) { legalHolds(first: 100, atLeast: $atLeast) { edges { node { id reason placedBy placedAt active releasedAt scope { kind recordingIds users } site { name } } } } }'), []);
  const tokens = useAsync(() => (admin ? gql<{ tokens: any }>('query Tokens($atLeast: Int) { tokens(first: 200, atLeast: $atLeast) { edges { node { id name role issuedAt expiresAt expired revoked lastUsedAt serverId } } } }') : Promise.resolve(null)), [admin]);
  const [secret, setSecret] = useState<string | null>(null);
  const [form, setForm] = useState({ name: '', role: 'AUDITOR', expires: '' });
  const action = useAction();
  return (
    <>
      <h1>Access</h1>
      <Section title="Playback permissions">
        <ErrorNote error={perms.error ?? action.error} />
        {perms.loading && !perms.data && <Loading what="permissions" />}
        {perms.data && (
          <table class="list" aria-label="Playback permissions">
            <thead><tr><th scope="col">Principal</th><th scope="col">Scope</th><th scope="col">Granted</th>{admin && <th scope="col"><span class="muted">Action</span></th>}</tr></thead>
            <tbody>
              {perms.data.playbackPermissions.map((p) => (
                <tr key={p.id}>
                  <td>{p.principal}</td>
                  <td>{p.scope.wholeSite ? 'the whole site' : [...SCOPE_FIELDS, ['serverIds', 'Servers'] as const].filter(([k]) => p.scope[k].length).map(([k, label]) => `${label}: ${p.scope[k].join(', ')}`).join('; ')}</td>
                  <td>{fmtTime(p.grantedAt)} by {p.grantedBy}</td>
                  {admin && (
                    <td>
                      <ActionButton
                        action={action}
                        secondary
                        name={`Revoke the permission of ${p.principal}`}
                        confirm={`Revoke this playback permission of ${p.principal}?`}
                        run={() => gql('mutation R($id: ID!) { revokePlaybackPermission(id: $id) { position } }', { id: p.id })}
                        onDone={perms.reload}
                      >
                        Revoke
                      </ActionButton>
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {admin && <Grant onGranted={perms.reload} />}
      </Section>
      <Section title="Restricted recordings">
        <ErrorNote error={restricted.error} />
        {restricted.data && (
          <table class="list" aria-label="Restricted recordings">
            <thead><tr><th scope="col">User</th><th scope="col">Host</th><th scope="col">Started</th><th scope="col">Restricted</th></tr></thead>
            <tbody>
              {restricted.data.recordings.edges.map(({ node: r }: any) => (
                <tr key={r.id}>
                  <td><Link href={`/recordings/${r.id}`}>{r.user}</Link></td>
                  <td>{r.host}</td>
                  <td>{fmtTime(r.startedAt)}</td>
                  <td>{r.restriction ? `${r.restriction.by}: ${r.restriction.reason}` : ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>
      <Section title="Legal holds">
        <ErrorNote error={holds.error ?? action.error} />
        {holds.data && (
          <ul class="plain">
            {holds.data.legalHolds.edges.length === 0 && <li class="muted">None.</li>}
            {holds.data.legalHolds.edges.map(({ node: h }: any) => (
              <li key={h.id}>
                {h.active ? <span class="badge badge-hold">active</span> : <span class="badge">released</span>} {h.site?.name}: {h.reason} — {h.scope.kind.toLowerCase()}{' '}
                {h.scope.recordingIds.map((id: string) => <Link key={id} href={`/recordings/${id}`}>{id.slice(0, 8)} </Link>)}
                {h.scope.users.join(', ')} <span class="muted">placed by {h.placedBy} {fmtTime(h.placedAt)}</span>{' '}
                {admin && h.active && (
                  <ActionButton
                    action={action}
                    secondary
                    name={`Release the hold: ${h.reason}`}
                    run={() => gql('mutation L($id: ID!) { releaseLegalHold(id: $id) { position } }', { id: h.id })}
                    onDone={holds.reload}
                  >
                    Release
                  </ActionButton>
                )}
              </li>
            ))}
          </ul>
        )}
      </Section>
      {admin && (
        <Section title="Tokens">
          <ActionForm
            class="row"
            label="Issue a token"
            onSubmit={async () => {
              const data = await gql<{ issueToken: { secret: string } }>('mutation I($input: IssueTokenInput!) { issueToken(input: $input) { position secret } }', { input: { name: form.name.trim(), role: form.role, expiresAt: form.expires ? new Date(form.expires + 'T00:00:00Z').toISOString() : null } });
              setSecret(data.issueToken.secret);
              tokens.reload();
            }}
          >
            <TextField stacked label="Name" value={form.name} onInput={(name) => setForm({ ...form, name })} />
            <SelectField stacked label="Role" value={form.role} onChange={(role) => setForm({ ...form, role })} options={['ADMIN', 'PRIVILEGED_PLAYER', 'AUDITOR', 'VIEWER'].map((r) => [r, r] as const)} />
            <TextField stacked type="date" label="Expires on (optional)" value={form.expires} onInput={(expires) => setForm({ ...form, expires })} />
            <button type="submit">Issue token</button>
          </ActionForm>
          <ErrorNote error={action.error ?? tokens.error} />
          {secret && <p>The new token (shown once): <pre class="secret">{secret}</pre></p>}
          {tokens.data && (
            <table class="list" aria-label="Tokens">
              <thead><tr><th scope="col">Name</th><th scope="col">Role</th><th scope="col">Issued</th><th scope="col">Last used</th><th scope="col">Expires</th><th scope="col">State</th><th scope="col"><span class="muted">Action</span></th></tr></thead>
              <tbody>
                {tokens.data.tokens.edges.map(({ node: t }: any) => (
                  <tr key={t.id}>
                    <td>{t.name}</td>
                    <td>{t.role}</td>
                    <td>{fmtTime(t.issuedAt)}</td>
                    <td>{fmtTime(t.lastUsedAt) || 'never'}</td>
                    <td>{fmtTime(t.expiresAt) || 'never'}</td>
                    <td>{t.revoked ? 'revoked' : t.expired ? 'expired' : 'valid'}</td>
                    <td>
                      {!t.revoked && !t.serverId && (
                        <ActionButton
                          action={action}
                          secondary
                          name={`Revoke ${t.name}`}
                          confirm={`Revoke the token ${t.name}? It stops working at once.`}
                          run={() => gql('mutation R($id: ID!) { revokeToken(id: $id) { position } }', { id: t.id })}
                          onDone={tokens.reload}
                        >
                          Revoke
                        </ActionButton>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </Section>
      )}
    </>
  );
}

const SCOPE_FIELDS = [
  ['recordedUsers', 'Recorded users'],
  ['recordedGroups', 'Recorded groups'],
  ['hosts', 'Hosts'],
  ['deliveryGroups', 'Delivery groups'],
  ['applications', 'Applications'],
] as const;

function Grant(props: { onGranted: () => void }) {
  const sites = useSites();
  const [form, setForm] = useState<Record<string, string>>({ siteId: '', principal: '' });
  const siteId = form.siteId || sites.data?.sites[0]?.id || '';
  return (
    <ActionForm
      class="row"
      label="Grant a playback permission"
      onSubmit={async () => {
        const scope = Object.fromEntries(SCOPE_FIELDS.map(([k]) => [k, splitList(form[k])]));
        await gql('mutation G($input: GrantPlaybackPermissionInput!) { grantPlaybackPermission(input: $input) { position } }', { input: { siteId, principal: form.principal.trim(), scope } });
        setForm({ siteId, principal: '' });
        props.onGranted();
      }}
    >
      <SiteSelect stacked sites={sites.data?.sites} value={siteId} onChange={(id) => setForm({ ...form, siteId: id })} />
      <TextField stacked label="Principal (token name)" value={form.principal} onInput={(principal) => setForm({ ...form, principal })} />
      {SCOPE_FIELDS.map(([k, label]) => (
        <TextField key={k} stacked label={label} placeholder="any" value={form[k] ?? ''} onInput={(v) => setForm({ ...form, [k]: v })} />
      ))}
      <button type="submit">Grant</button>
    </ActionForm>
  );
}
