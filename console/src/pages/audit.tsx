import { useState } from 'preact/hooks';
import { gql } from '../api';
import type { Me } from '../app';
import { Link } from '../router';
import { ErrorNote, Loading, fmtTime, titleCase, useAsync } from '../util';

const AUDIT_QUERY = `query A($filter: AuditFilter, $after: String, $atLeast: Int) { auditTrail(filter: $filter, first: 50, after: $after, atLeast: $atLeast) {
  pageInfo { hasNextPage endCursor } edges { node { position at actor category action target detail } } } }`;
const HISTORY_QUERY = `query H($filter: HistoryFilter, $after: String, $atLeast: Int) { history(filter: $filter, first: 50, after: $after, atLeast: $atLeast) {
  pageInfo { hasNextPage endCursor } edges { node { position recordedAt actor type stream recordingId } } } }`;

/** The console page an audit target (`recording:<id>`, `server:<id>`, ...) is shown on. */
export function targetHref(target: string): string | null {
  const [kind, id] = target.split(':');
  switch (kind) {
    case 'recording': return id ? `/recordings/${id}` : null;
    case 'server': return '/servers';
    case 'policy': return '/policies';
    case 'token':
    case 'permission':
    case 'hold': return '/access';
    default: return null;
  }
}

type Row = { position: number; at: string; actor: string; what: string; target: string; detail: string; recordingId?: string };

/** One CSV line, quoted as RFC 4180 says. */
export function csvLine(cells: (string | number)[]): string {
  return cells.map((c) => { const s = String(c ?? ''); return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s; }).join(',');
}

export function Audit(props: { me: Me }) {
  const [view, setView] = useState<'trail' | 'history'>(props.me.role === 'ADMIN' ? 'trail' : 'history');
  const [actor, setActor] = useState('');
  const [category, setCategory] = useState('');
  const [type, setType] = useState('');
  const [applied, setApplied] = useState({ actor: '', category: '', type: '' });
  const [after, setAfter] = useState<string | null>(null);
  const page = useAsync(async () => {
    if (view === 'trail') {
      const filter = { actor: applied.actor || null, categories: applied.category ? [applied.category] : null };
      const d = await gql<{ auditTrail: any }>(AUDIT_QUERY, { filter, after });
      return { pageInfo: d.auditTrail.pageInfo, rows: d.auditTrail.edges.map(({ node: n }: any): Row => ({ position: n.position, at: n.at, actor: n.actor, what: `${n.category} ${n.action}`, target: n.target, detail: n.detail, recordingId: n.target.startsWith('recording:') ? n.target.slice(10) : undefined })) };
    }
    const filter = { actor: applied.actor || null, types: applied.type ? [applied.type] : null };
    const d = await gql<{ history: any }>(HISTORY_QUERY, { filter, after });
    return { pageInfo: d.history.pageInfo, rows: d.history.edges.map(({ node: n }: any): Row => ({ position: n.position, at: n.recordedAt, actor: n.actor, what: n.type, target: n.stream, detail: '', recordingId: n.recordingId ?? undefined })) };
  }, [view, applied, after]);
  const exportCsv = () => {
    if (!page.data) return;
    const lines = [csvLine(['position', 'at', 'actor', 'what', 'target', 'detail']), ...page.data.rows.map((r: Row) => csvLine([r.position, r.at, r.actor, r.what, r.target, r.detail]))];
    const blob = new Blob([lines.join('\r\n') + '\r\n'], { type: 'text/csv' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = `srs-${view}.csv`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  };
  return (
    <>
      <h1>Audit</h1>
      <form class="row filters" onSubmit={(e) => { e.preventDefault(); setAfter(null); setApplied({ actor: actor.trim(), category, type: type.trim() }); }}>
        <label>View<br />
          <select value={view} onChange={(e) => { setAfter(null); setView((e.target as HTMLSelectElement).value as 'trail' | 'history'); }}>
            {props.me.role === 'ADMIN' && <option value="trail">Admin audit trail</option>}
            <option value="history">History</option>
          </select>
        </label>
        <label>Actor<br /><input type="text" value={actor} onInput={(e) => setActor((e.target as HTMLInputElement).value)} /></label>
        {view === 'trail' ? (
          <label>Category<br />
            <select value={category} onChange={(e) => setCategory((e.target as HTMLSelectElement).value)}>
              <option value="">Any</option>
              {['CONFIGURATION', 'RECORDING_REASON', 'PLAYBACK', 'ACCESS'].map((c) => <option key={c} value={c}>{titleCase(c)}</option>)}
            </select>
          </label>
        ) : (
          <label>Event type<br /><input type="text" placeholder="e.g. RecordingPlayed" value={type} onInput={(e) => setType((e.target as HTMLInputElement).value)} /></label>
        )}
        <button type="submit">Apply</button>
        <button type="button" class="secondary" onClick={exportCsv} disabled={!page.data}>Export CSV</button>
      </form>
      <ErrorNote error={page.error} />
      {!page.data && page.loading && <Loading what="the audit trail" />}
      {page.data && (
        <>
          <table class="list" aria-label={view === 'trail' ? 'Admin audit trail' : 'History'}>
            <thead><tr><th scope="col">Position</th><th scope="col">At</th><th scope="col">Actor</th><th scope="col">What</th><th scope="col">About</th><th scope="col">Detail</th></tr></thead>
            <tbody>
              {page.data.rows.map((r: Row) => (
                <tr key={r.position + r.what}>
                  <td>{r.position}</td>
                  <td>{fmtTime(r.at)}</td>
                  <td>{r.actor}</td>
                  <td>{r.what}</td>
                  <td>
                    {r.recordingId ? (
                      <Link href={`/recordings/${r.recordingId}`}>{r.target}</Link>
                    ) : targetHref(r.target) ? (
                      <Link href={targetHref(r.target)!}>{r.target}</Link>
                    ) : (
                      r.target
                    )}
                  </td>
                  <td>{r.detail}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <nav class="pager" aria-label="Pages">
            <button type="button" class="secondary" disabled={!after} onClick={() => setAfter(null)}>First page</button>
            <button type="button" disabled={!page.data.pageInfo.hasNextPage} onClick={() => setAfter(page.data!.pageInfo.endCursor)}>Next page</button>
          </nav>
        </>
      )}
    </>
  );
}
