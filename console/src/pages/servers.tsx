import { useState } from 'preact/hooks';
import { gql } from '../api';
import type { Me } from '../app';
import { ActionButton, ActionForm, SelectField, SiteSelect, TextField, useAction, useSites } from '../forms';
import { ErrorNote, Loading, Section, fmtTime, titleCase, useAsync } from '../util';

const SERVERS_QUERY = `query Servers($atLeast: Int) { servers(atLeast: $atLeast) {
  id name host version deployment status online lastHeartbeat settingsVersion site { name }
  settings { storagePaths maxFileSizeMb maxRecordingHours livePlaybackEnabled encryptDownloads recordingEnabled adminLoggingMandatory restoreDirectory alertSender }
  install { step status message history { step status message at } }
} }`;

export function Servers(props: { me: Me }) {
  const list = useAsync(() => gql<{ servers: any[] }>(SERVERS_QUERY), []);
  const admin = props.me.role === 'ADMIN';
  const [secret, setSecret] = useState<{ name: string; token: string } | null>(null);
  const action = useAction();
  return (
    <>
      <h1>Servers</h1>
      <ErrorNote error={list.error ?? action.error} />
      {secret && (
        <div class="note" role="status">
          The AGENT token of {secret.name}, shown once (configure the server with it now):
          <pre class="secret">{secret.token}</pre>
          <button type="button" class="secondary" onClick={() => setSecret(null)}>I have copied it</button>
        </div>
      )}
      {!list.data && list.loading && <Loading what="servers" />}
      {list.data && (
        <table class="list" aria-label="Servers">
          <thead>
            <tr><th scope="col">Name</th><th scope="col">Site</th><th scope="col">Host</th><th scope="col">Status</th><th scope="col">Last heartbeat</th><th scope="col">Version</th><th scope="col">Settings</th><th scope="col">Install</th>{admin && <th scope="col">Token</th>}</tr>
          </thead>
          <tbody>
            {list.data.servers.map((s) => (
              <tr key={s.id}>
                <td>{s.name}</td>
                <td>{s.site?.name}</td>
                <td>{s.host}</td>
                <td>{titleCase(s.status)} {s.online ? '(online)' : '(offline)'}</td>
                <td>{fmtTime(s.lastHeartbeat) || 'never'}</td>
                <td>{s.version}</td>
                <td><Settings server={s} editable={admin} onSaved={list.reload} /></td>
                <td>
                  {s.install ? (
                    <details>
                      <summary>{titleCase(s.install.step)}: {titleCase(s.install.status)}</summary>
                      <ol>
                        {s.install.history.map((h: any, i: number) => (
                          <li key={i}>{titleCase(h.step)} {titleCase(h.status)} {fmtTime(h.at)} {h.message}</li>
                        ))}
                      </ol>
                    </details>
                  ) : '—'}
                </td>
                {admin && (
                  <td>
                    {s.status !== 'DISCONNECTED' && (
                      <ActionButton
                        action={action}
                        secondary
                        name={`Rotate token of ${s.name}`}
                        confirm={`Rotate the AGENT token of ${s.name}? Its current token stops working at once.`}
                        run={async () => {
                          const d = await gql<{ rotateAgentToken: { agentToken: string } }>('mutation R($id: ID!) { rotateAgentToken(serverId: $id) { position agentToken } }', { id: s.id });
                          setSecret({ name: s.name, token: d.rotateAgentToken.agentToken });
                        }}
                      >
                        Rotate token
                      </ActionButton>
                    )}
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {admin && <Connect onConnected={(name, token) => { setSecret({ name, token }); list.reload(); }} />}
    </>
  );
}

function Connect(props: { onConnected: (name: string, token: string) => void }) {
  const sites = useSites();
  const [form, setForm] = useState({ siteId: '', name: '', host: '', deployment: 'ON_PREMISES', version: '' });
  const siteId = form.siteId || sites.data?.sites[0]?.id || '';
  return (
    <Section title="Connect a server">
      <ActionForm
        class="row"
        onSubmit={async () => {
          const d = await gql<{ connectServer: { agentToken: string } }>(
            'mutation C($input: ConnectServerInput!) { connectServer(input: $input) { position agentToken } }',
            { input: { ...form, siteId, name: form.name.trim(), host: form.host.trim(), version: form.version.trim() } },
          );
          props.onConnected(form.name.trim(), d.connectServer.agentToken);
          setForm({ ...form, name: '', host: '', version: '' });
        }}
      >
        <SiteSelect stacked sites={sites.data?.sites} value={siteId} onChange={(id) => setForm({ ...form, siteId: id })} />
        <TextField stacked label="Name" value={form.name} onInput={(name) => setForm({ ...form, name })} />
        <TextField stacked label="Host name" value={form.host} onInput={(host) => setForm({ ...form, host })} />
        <SelectField stacked label="Deployment" value={form.deployment} onChange={(deployment) => setForm({ ...form, deployment })} options={[['ON_PREMISES', 'On premises'], ['CLOUD', 'Cloud']]} />
        <TextField stacked label="Version" value={form.version} onInput={(version) => setForm({ ...form, version })} />
        <button type="submit">Connect</button>
      </ActionForm>
    </Section>
  );
}

function Settings(props: { server: any; editable: boolean; onSaved: () => void }) {
  const s = props.server.settings;
  const [open, setOpen] = useState(false);
  const [form, setForm] = useState({ maxFileSizeMb: String(s.maxFileSizeMb), maxRecordingHours: String(s.maxRecordingHours), livePlaybackEnabled: s.livePlaybackEnabled, recordingEnabled: s.recordingEnabled });
  const summary = `${s.maxFileSizeMb} MB files, ${s.maxRecordingHours} h max, live playback ${s.livePlaybackEnabled ? 'on' : 'off'}, recording ${s.recordingEnabled ? 'on' : 'off'} (version ${props.server.settingsVersion})`;
  if (!props.editable || !open)
    return (
      <span>
        {summary}{' '}
        {props.editable && <button type="button" class="secondary" onClick={() => setOpen(true)} aria-label={`Edit settings of ${props.server.name}`}>Edit</button>}
      </span>
    );
  return (
    <Section title={`Settings of ${props.server.name}`}>
      <ActionForm
        class="stack"
        conflict="Someone changed these settings meanwhile: reload to see theirs, then edit again."
        onSubmit={async () => {
          await gql(
            'mutation S($id: ID!, $settings: ServerSettingsInput!, $v: Int) { updateServerSettings(serverId: $id, settings: $settings, expectedVersion: $v) { position } }',
            {
              id: props.server.id,
              v: props.server.settingsVersion,
              settings: {
                maxFileSizeMb: Number(form.maxFileSizeMb),
                maxRecordingHours: Number(form.maxRecordingHours),
                livePlaybackEnabled: form.livePlaybackEnabled,
                recordingEnabled: form.recordingEnabled,
              },
            },
          );
          setOpen(false);
          props.onSaved();
        }}
      >
        <TextField type="number" label="Maximum file size (MB, 10 to 300)" value={form.maxFileSizeMb} onInput={(maxFileSizeMb) => setForm({ ...form, maxFileSizeMb })} />
        <TextField type="number" label="Maximum recording hours (1 to 24)" value={form.maxRecordingHours} onInput={(maxRecordingHours) => setForm({ ...form, maxRecordingHours })} />
        <label class="row"><input type="checkbox" checked={form.livePlaybackEnabled} onChange={(e) => setForm({ ...form, livePlaybackEnabled: (e.target as HTMLInputElement).checked })} /> Live playback enabled</label>
        <label class="row"><input type="checkbox" checked={form.recordingEnabled} onChange={(e) => setForm({ ...form, recordingEnabled: (e.target as HTMLInputElement).checked })} /> Recording enabled</label>
        <div class="row"><button type="submit">Save</button><button type="button" class="secondary" onClick={() => setOpen(false)}>Cancel</button></div>
      </ActionForm>
    </Section>
  );
}
