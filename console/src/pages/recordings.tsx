import { useEffect, useState } from 'preact/hooks';
import { gql } from '../api';
import { Link, navigate, useUrl } from '../router';
import { ErrorNote, Loading, SEVERITIES, fmtDuration, fmtTime, titleCase, useAsync } from '../util';

export const RECORDINGS_QUERY = `query Recordings($filter: RecordingFilter, $first: Int, $after: String, $orderBy: RecordingOrder, $atLeast: Int) {
  recordings(filter: $filter, first: $first, after: $after, orderBy: $orderBy, atLeast: $atLeast) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node {
      id user host applications clientName clientIp startedAt durationSec live restricted archived deleted
      maxSeverity dataPoints { detectionCount }
    } }
  }
}`;

const LISTS = [
  { key: 'users', label: 'Users' },
  { key: 'hosts', label: 'Hosts' },
  { key: 'applications', label: 'Applications' },
  { key: 'clientIps', label: 'Client IPs' },
  { key: 'deliveryGroups', label: 'Delivery groups' },
] as const;

const TRISTATE = [
  { key: 'live', label: 'Live', yes: 'Live only', no: 'Ended only' },
  { key: 'hasDetections', label: 'Detections', yes: 'With detections', no: 'Without detections' },
  { key: 'restricted', label: 'Restricted', yes: 'Restricted only', no: 'Unrestricted only' },
] as const;

const PAGE_SIZE = 25;

/** The RecordingFilter the URL's query parameters say. */
export function filterFromUrl(params: URLSearchParams): Record<string, unknown> {
  const filter: Record<string, unknown> = {};
  const text = params.get('text');
  if (text) filter.text = text;
  for (const key of ['siteId', 'serverId']) {
    const v = params.get(key);
    if (v) filter[key] = v;
  }
  for (const { key } of LISTS) {
    const v = params.get(key);
    if (v) filter[key] = v.split(',').map((s) => s.trim()).filter(Boolean);
  }
  for (const key of ['startedAfter', 'startedBefore']) {
    const v = params.get(key);
    if (v) filter[key] = new Date(v + 'T00:00:00Z').toISOString();
  }
  for (const key of ['minDurationSec', 'maxDurationSec']) {
    const v = params.get(key);
    if (v && !Number.isNaN(Number(v))) filter[key] = Math.round(Number(v));
  }
  for (const { key } of TRISTATE) {
    const v = params.get(key);
    if (v === 'true' || v === 'false') filter[key] = v === 'true';
  }
  const sev = params.get('minSeverity');
  if (sev) filter.minSeverity = sev;
  return filter;
}

export function Recordings() {
  const url = useUrl();
  const params = url.searchParams;
  const filter = filterFromUrl(params);
  const orderBy = params.get('orderBy') === 'LONGEST_FIRST' ? 'LONGEST_FIRST' : 'NEWEST_FIRST';
  const after = params.get('after');
  const key = url.search;
  const [previous, setPrevious] = useState<string[]>([]);
  const sites = useAsync(() => gql<{ sites: { id: string; name: string }[]; servers: { id: string; name: string }[] }>('{ sites { id name } servers { id name } }'), []);
  const list = useAsync(
    () => gql<{ recordings: any }>(RECORDINGS_QUERY, { filter, first: PAGE_SIZE, after, orderBy }).then((d) => ({ ...d, search: key })),
    [key],
  );
  const [form, setForm] = useState<Record<string, string>>(() => Object.fromEntries(params.entries()));
  useEffect(() => setForm(Object.fromEntries(params.entries())), [key]);

  const apply = (values: Record<string, string>) => {
    const next = new URLSearchParams();
    for (const [k, v] of Object.entries(values)) if (v && k !== 'after') next.set(k, v);
    setPrevious([]);
    const search = next.toString();
    navigate('/recordings' + (search ? '?' + search : ''));
  };
  const field = (name: string) => ({
    value: form[name] ?? '',
    onInput: (e: Event) => setForm({ ...form, [name]: (e.target as HTMLInputElement).value }),
  });
  const pageTo = (cursor: string | null) => {
    const next = new URLSearchParams(params);
    if (cursor) next.set('after', cursor);
    else next.delete('after');
    navigate('/recordings?' + next.toString());
  };

  const connection = list.data?.recordings;
  return (
    <>
      <h1>Recordings</h1>
      <nav class="lists" aria-label="Lists">
        {[
          ['All', ''],
          ['Live', 'live=true'],
          ['Restricted', 'restricted=true'],
          ['With detections', 'hasDetections=true'],
          ['High severity', 'minSeverity=HIGH'],
        ].map(([name, query]) => (
          <Link key={name} href={'/recordings' + (query ? '?' + query : '')} aria-current={url.search.replace(/^\?/, '') === query ? 'page' : undefined}>
            {name}
          </Link>
        ))}
      </nav>
      <form
        class="filters"
        role="search"
        aria-label="Recordings"
        onSubmit={(e) => {
          e.preventDefault();
          apply(form);
        }}
      >
        <div class="searchrow">
          <label for="f-text">Search</label>
          <input id="f-text" type="search" placeholder="user, host, application, client, comment" {...field('text')} />
          <label for="f-order">Sort</label>
          <select id="f-order" {...field('orderBy')} onChange={(e) => apply({ ...form, orderBy: (e.target as HTMLSelectElement).value })}>
            <option value="NEWEST_FIRST">Newest first</option>
            <option value="LONGEST_FIRST">Longest first</option>
          </select>
          <button type="submit">Apply</button>
          <button type="button" class="secondary" onClick={() => apply({})}>Clear</button>
        </div>
        <details open={LISTS.some((l) => params.get(l.key)) || undefined}>
          <summary>More filters</summary>
          <div class="filtergrid">
            <label>
              Site
              <select {...field('siteId')}>
                <option value="">Any</option>
                {(sites.data?.sites ?? []).map((s) => <option key={s.id} value={s.id}>{s.name}</option>)}
              </select>
            </label>
            <label>
              Server
              <select {...field('serverId')}>
                <option value="">Any</option>
                {(sites.data?.servers ?? []).map((s) => <option key={s.id} value={s.id}>{s.name}</option>)}
              </select>
            </label>
            {LISTS.map((l) => (
              <label key={l.key}>
                {l.label}
                <input type="text" placeholder="comma-separated" {...field(l.key)} />
              </label>
            ))}
            <label>
              Started after
              <input type="date" {...field('startedAfter')} />
            </label>
            <label>
              Started before
              <input type="date" {...field('startedBefore')} />
            </label>
            <label>
              Minimum duration (seconds)
              <input type="number" min="0" {...field('minDurationSec')} />
            </label>
            <label>
              Maximum duration (seconds)
              <input type="number" min="0" {...field('maxDurationSec')} />
            </label>
            {TRISTATE.map((t) => (
              <label key={t.key}>
                {t.label}
                <select {...field(t.key)}>
                  <option value="">Any</option>
                  <option value="true">{t.yes}</option>
                  <option value="false">{t.no}</option>
                </select>
              </label>
            ))}
            <label>
              Minimum severity
              <select {...field('minSeverity')}>
                <option value="">Any</option>
                {SEVERITIES.map((s) => <option key={s} value={s}>{titleCase(s)}</option>)}
              </select>
            </label>
          </div>
        </details>
      </form>
      <ErrorNote error={list.error} />
      {!connection && list.loading && <Loading what="recordings" />}
      {connection && (
        <>
          <p role="status" class="muted" data-search={list.data!.search}>
            {connection.totalCount === 1 ? '1 recording matches.' : `${connection.totalCount} recordings match.`}
          </p>
          <table role="table" aria-label="Recordings" class="list">
            <thead>
              <tr>
                <th scope="col">User</th>
                <th scope="col">Host</th>
                <th scope="col">Application</th>
                <th scope="col">Client</th>
                <th scope="col">Started</th>
                <th scope="col">Duration</th>
                <th scope="col">Detections</th>
                <th scope="col">State</th>
              </tr>
            </thead>
            <tbody>
              {connection.edges.map(({ node: r }: any) => (
                <tr key={r.id}>
                  <td><Link href={`/recordings/${r.id}`}>{r.user}</Link></td>
                  <td>{r.host}</td>
                  <td>{r.applications.join(', ')}</td>
                  <td>{[r.clientName, r.clientIp].filter(Boolean).join(' ')}</td>
                  <td>{fmtTime(r.startedAt)}</td>
                  <td>{fmtDuration(r.durationSec)}</td>
                  <td>
                    {r.dataPoints.detectionCount}
                    {r.maxSeverity && <span class={`sev sev-${r.maxSeverity}`}> {titleCase(r.maxSeverity)}</span>}
                  </td>
                  <td><State r={r} /></td>
                </tr>
              ))}
            </tbody>
          </table>
          <nav class="pager" aria-label="Pages">
            <button type="button" class="secondary" disabled={!after} onClick={() => { setPrevious([]); pageTo(null); }}>First page</button>
            <button
              type="button"
              class="secondary"
              disabled={!after}
              onClick={() => {
                const stack = [...previous];
                const back = stack.pop() ?? null;
                setPrevious(stack);
                pageTo(back);
              }}
            >
              Previous page
            </button>
            <button
              type="button"
              disabled={!connection.pageInfo.hasNextPage}
              onClick={() => {
                setPrevious([...previous, after ?? '']);
                pageTo(connection.pageInfo.endCursor);
              }}
            >
              Next page
            </button>
          </nav>
        </>
      )}
    </>
  );
}

export function State(props: { r: { live: boolean; restricted: boolean; archived: boolean; deleted: boolean } }) {
  const { r } = props;
  const states = [
    r.live ? 'live' : r.deleted ? 'deleted' : 'ended',
    r.restricted ? 'restricted' : null,
    r.archived ? 'archived' : null,
  ].filter(Boolean) as string[];
  return (
    <span class="states">
      {states.map((s) => <span key={s} class={`badge badge-${s}`}>{s}</span>)}
    </span>
  );
}
