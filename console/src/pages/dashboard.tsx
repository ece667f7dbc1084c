import { gql } from '../api';
import { BarList, SEVERITY_COLORS, StackedDays, TimeChart } from '../charts';
import { navigate, useUrl } from '../router';
import { ErrorNote, Loading, Section, SEVERITIES, fmtBytes, fmtTime, titleCase, useAsync } from '../util';

export const DASHBOARD_QUERY = `query Dashboard($siteId: ID, $from: DateTime, $to: DateTime) {
  dashboard(siteId: $siteId, from: $from, to: $to) {
    from to recordingsTotal recordingsLive recordingsInRange storageBytes
    recordingsPerDay { day count }
    topUsers { name count } topApplications { name count }
    topRiskyUsers { name risk }
    serversByStatus { status count online }
    detectionsTotal detectionsInRange
    detectionsPerDay { day count }
    detectionsBySeverity { severity count }
    restrictedCount archivedCount pendingArchive pendingDelete
    servers { serverId name status online lastHeartbeat recordingsInRange storageBytes }
  }
}`;

const RANGES = [
  { days: 7, label: 'Last 7 days' },
  { days: 30, label: 'Last 30 days' },
  { days: 90, label: 'Last 90 days' },
  { days: 365, label: 'Last 365 days' },
];

/** The `from` of the last `days` days, as the dashboard query takes it. */
export function rangeFrom(days: number, now = new Date()): string {
  return new Date(now.getTime() - days * 86400_000).toISOString();
}

export function Dashboard() {
  const url = useUrl();
  const siteId = url.searchParams.get('site') ?? '';
  const days = Number(url.searchParams.get('days') ?? '30') || 30;
  const sites = useAsync(() => gql<{ sites: { id: string; name: string }[] }>('{ sites { id name } }'), []);
  const board = useAsync(
    () => gql<{ dashboard: any }>(DASHBOARD_QUERY, { siteId: siteId || null, from: rangeFrom(days) }),
    [siteId, days],
  );
  const set = (key: string, value: string) => {
    const next = new URL(url);
    if (value) next.searchParams.set(key, value);
    else next.searchParams.delete(key);
    navigate(next.pathname + next.search, true);
  };
  const d = board.data?.dashboard;
  return (
    <>
      <div class="page-head">
        <h1>Dashboard</h1>
        <div class="pickers">
          <label>
            Site{' '}
            <select value={siteId} onChange={(e) => set('site', (e.target as HTMLSelectElement).value)}>
              <option value="">All sites</option>
              {(sites.data?.sites ?? []).map((s) => (
                <option value={s.id} key={s.id}>{s.name}</option>
              ))}
            </select>
          </label>
          <label>
            Time range{' '}
            <select value={String(days)} onChange={(e) => set('days', (e.target as HTMLSelectElement).value)}>
              {RANGES.map((r) => (
                <option value={String(r.days)} key={r.days}>{r.label}</option>
              ))}
            </select>
          </label>
        </div>
      </div>
      <ErrorNote error={board.error} />
      {!d && board.loading && <Loading what="the dashboard" />}
      {d && (
        <>
          <p class="muted">From {fmtTime(d.from)} to {fmtTime(d.to)}.</p>
          <dl class="headline" aria-label="Headline counts">
            <Count label="Total recordings" value={d.recordingsTotal} />
            <Count label="Live now" value={d.recordingsLive} />
            <Count label="Recordings in range" value={d.recordingsInRange} />
            <Count label="Detections in range" value={d.detectionsInRange} />
            <Count label="Restricted" value={d.restrictedCount} />
            <Count label="Pending archive" value={d.pendingArchive} />
            <Count label="Pending delete" value={d.pendingDelete} />
            <Count label="Storage" value={fmtBytes(d.storageBytes)} />
          </dl>
          <div class="grid2">
            <Section title="Recordings per day">
              <TimeChart
                title="Recordings per day"
                bars
                xs={d.recordingsPerDay.map((p: any) => Date.parse(p.day) / 1000)}
                series={[{ label: 'Recordings', color: '#2563eb', values: d.recordingsPerDay.map((p: any) => p.count) }]}
              />
            </Section>
            <Section title="Detections per day">
              <DetectionsBySeverityPerDay siteId={siteId} board={d} />
              <BarList
                label="Detections by severity"
                items={SEVERITIES.map((s) => ({
                  name: titleCase(s),
                  value: d.detectionsBySeverity.find((x: any) => x.severity === s)?.count ?? 0,
                  color: SEVERITY_COLORS[s],
                }))}
              />
              <p class="legend">
                {SEVERITIES.map((s) => (
                  <span key={s} class="swatch" style={{ borderColor: SEVERITY_COLORS[s] }}>{titleCase(s)}</span>
                ))}
              </p>
            </Section>
            <Section title="Top users">
              <BarList label="Top users" items={d.topUsers.map((u: any) => ({ name: u.name, value: u.count }))} />
            </Section>
            <Section title="Top applications">
              <BarList label="Top applications" items={d.topApplications.map((u: any) => ({ name: u.name, value: u.count }))} />
            </Section>
            <Section title="Top risky users">
              <BarList label="Top risky users" items={d.topRiskyUsers.map((u: any) => ({ name: u.name, value: u.risk }))} />
            </Section>
            <Section title="Servers by status">
              <BarList
                label="Servers by status"
                items={d.serversByStatus.map((s: any) => ({
                  name: titleCase(s.status),
                  value: s.count,
                  text: `${s.count} (${s.online} online)`,
                }))}
              />
            </Section>
            <Section title="Storage by server">
              <BarList
                label="Storage by server"
                items={d.servers.map((s: any) => ({ name: s.name, value: s.storageBytes, text: fmtBytes(s.storageBytes) }))}
              />
            </Section>
          </div>
        </>
      )}
    </>
  );
}

function Count(props: { label: string; value: number | string }) {
  return (
    <div class="count">
      <dt>{props.label}</dt>
      <dd>{props.value}</dd>
    </div>
  );
}

/** The most detections fetched for the per-severity chart (20 pages). */
const MAX_DETECTION_PAGES = 20;

/**
 * Detections per day by severity. The dashboard answers detections per
 * day and per severity but not both at once, so the chart counts the
 * range's detections itself (at most 10000; beyond, the per-day totals).
 */
function DetectionsBySeverityPerDay(props: { siteId: string; board: any }) {
  const d = props.board;
  const days = d.detectionsPerDay.map((p: any) => p.day as string);
  const counted = useAsync(async () => {
    const perDay: Record<string, Record<string, number>> = {};
    let after: string | null = null;
    for (let page = 0; page < MAX_DETECTION_PAGES; page++) {
      const data: any = await gql(
        `query D($filter: DetectionFilter, $after: String) { detectedEvents(filter: $filter, first: 500, after: $after) { pageInfo { hasNextPage endCursor } edges { node { severity at } } } }`,
        { filter: { siteId: props.siteId || null, from: d.from, to: d.to }, after },
      );
      for (const { node } of data.detectedEvents.edges) {
        const day = node.at.slice(0, 10);
        perDay[day] ??= {};
        perDay[day][node.severity] = (perDay[day][node.severity] ?? 0) + 1;
      }
      if (!data.detectedEvents.pageInfo.hasNextPage) return perDay;
      after = data.detectedEvents.pageInfo.endCursor;
    }
    return null;
  }, [d]);
  const xs = days.map((day: string) => Date.parse(day) / 1000);
  if (!counted.data) {
    return (
      <TimeChart
        title="Detections per day"
        bars
        xs={xs}
        series={[{ label: 'Detections', color: '#c2410c', values: d.detectionsPerDay.map((p: any) => p.count) }]}
      />
    );
  }
  const perDay = counted.data;
  return (
    <StackedDays
      title="Detections per day by severity"
      xs={xs}
      series={SEVERITIES.map((severity) => ({
        label: titleCase(severity),
        color: SEVERITY_COLORS[severity],
        values: days.map((day: string) => perDay[day.slice(0, 10)]?.[severity] ?? 0),
      }))}
    />
  );
}
