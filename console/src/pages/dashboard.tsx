import { gql } from '../api';
import { BarList, SEVERITY_COLORS, StackedDays, TimeChart } from '../charts';
import { SelectField, SiteSelect, useSites } from '../forms';
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
    detectionsPerDayBySeverity { severity perDay { count } }
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
  const sites = useSites();
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
          <SiteSelect sites={sites.data?.sites} value={siteId} all="All sites" onChange={(id) => set('site', id)} />
          <SelectField label="Time range" value={String(days)} onChange={(v) => set('days', v)} options={RANGES.map((r) => [String(r.days), r.label] as const)} />
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
              <DetectionsBySeverityPerDay board={d} />
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

/** Detections per day, stacked by severity (`detectionsPerDayBySeverity`). */
function DetectionsBySeverityPerDay(props: { board: any }) {
  const d = props.board;
  const xs = d.detectionsPerDay.map((p: any) => Date.parse(p.day) / 1000);
  const bySeverity: Record<string, number[]> = {};
  for (const s of d.detectionsPerDayBySeverity) bySeverity[s.severity] = s.perDay.map((p: any) => p.count);
  return (
    <StackedDays
      title="Detections per day by severity"
      xs={xs}
      series={SEVERITIES.map((severity) => ({
        label: titleCase(severity),
        color: SEVERITY_COLORS[severity],
        values: bySeverity[severity] ?? xs.map(() => 0),
      }))}
    />
  );
}
