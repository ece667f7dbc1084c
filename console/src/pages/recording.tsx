import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, gql, subscribe } from '../api';
import type { Me } from '../app';
import { TimeChart } from '../charts';
import { Player, type Controller, type Marker } from '../player';
import { ActionForm, useAction } from '../forms';
import { Link, useUrl } from '../router';
import { State } from './recordings';
import { ErrorNote, Loading, Section, fmtBytes, fmtDuration, fmtTime, titleCase, useAsync } from '../util';

const EVENT_FIELDS = `eventId type offsetMs shredded data {
  __typename
  ... on SessionData { clientName clientIp }
  ... on AppData { app title detail }
  ... on WebData { url browser title }
  ... on FileData { path newPath }
  ... on FileTransferData { path direction }
  ... on DeviceData { device action }
  ... on ClipboardData { app format }
  ... on PrintData { printer document pages }
  ... on RegistryData { key operation }
  ... on IdleData { seconds }
  ... on RdpData { target }
  ... on PerformanceData { cpuPercent memoryMb latencyMs }
  ... on CustomData { name data }
  ... on AccountData { account change }
}`;

const DETECTION_FIELDS = 'id type severity rule subject offsetMs at';
const COMMENT_FIELDS = 'id author text severity offsetMs at';

export const RECORDING_QUERY = `query Recording($id: ID!, $atLeast: Int) {
  recording(id: $id, atLeast: $atLeast) {
    id user domain host clientName clientIp deliveryGroup applications mode startedAt endedAt durationSec
    live restricted archived deleted onLegalHold visibility siteId sizeBytes eventCount plays
    site { name } server { name }
    restriction { reason by at }
    dataPoints {
      durationMs eventCount detectionCount idleMs sizeBytes lastOffsetMs
      eventsByType { type count }
      detectionsBySeverity { severity count }
      performance { samples cpuPercent { avg p95 max } memoryMb { avg p95 max } latencyMs { avg p95 max } }
    }
    eventVisualization(bucketSec: 60) { start events { type count } detections { type count } }
  }
}`;

/** Playing is the audited act: it records the play and hands out the ticket. */
export const PLAY_MUTATION = `mutation Play($id: ID!) {
  playRecording(recordingId: $id) {
    recordingId live followFrom truncated contentUrl ticketUrl contentType contentSize
    events { ${EVENT_FIELDS} }
    detections { ${DETECTION_FIELDS} }
    comments { ${COMMENT_FIELDS} }
  }
}`;

/** Types worth a marker on the timeline (the rest are in the list). */
const QUIET = new Set(['PERFORMANCE_SAMPLE', 'TOP_MOST_WINDOW', 'IDLE']);

export function describe(e: any): string {
  const d = e.data;
  if (e.shredded) return 'shredded';
  if (!d) return '';
  switch (d.__typename) {
    case 'SessionData': return [d.clientName, d.clientIp].filter(Boolean).join(' ');
    case 'AppData': return [d.app, d.title, d.detail].filter(Boolean).join(' — ');
    case 'WebData': return d.url;
    case 'FileData': return d.newPath ? `${d.path} → ${d.newPath}` : d.path;
    case 'FileTransferData': return `${d.path} (${titleCase(d.direction)})`;
    case 'DeviceData': return [d.device, d.action].filter(Boolean).join(' ');
    case 'ClipboardData': return [d.app, d.format].filter(Boolean).join(' ');
    case 'PrintData': return [d.printer, d.document].filter(Boolean).join(': ');
    case 'RegistryData': return [d.operation, d.key].filter(Boolean).join(' ');
    case 'IdleData': return `idle ${fmtDuration(d.seconds)}`;
    case 'RdpData': return d.target;
    case 'PerformanceData': return `CPU ${d.cpuPercent ?? '?'}%, ${d.memoryMb ?? '?'} MB, ${d.latencyMs ?? '?'} ms`;
    case 'CustomData': return `${d.name}: ${d.data}`;
    case 'AccountData': return `${d.account}: ${d.change}`;
    default: return '';
  }
}

export function RecordingPage(props: { id: string; me: Me }) {
  const url = useUrl();
  const rec = useAsync(() => gql<{ recording: any }>(RECORDING_QUERY, { id: props.id }), [props.id]);
  const r = rec.data?.recording;
  return (
    <>
      <p class="crumbs"><Link href="/recordings">Recordings</Link> › recording</p>
      <ErrorNote error={rec.error} />
      {rec.loading && !rec.data && <Loading what="the recording" />}
      {rec.data && !r && (
        <>
          <h1>Recording not available</h1>
          <p role="alert" class="refused">
            You may not open this recording, or it does not exist. Restricted recordings open only to
            administrators and privileged players; an auditor needs a playback permission that covers the
            recording. Ask an administrator for access.
          </p>
        </>
      )}
      {r && <RecordingView r={r} me={props.me} startAt={Number(url.searchParams.get('t') ?? 0) || 0} reload={rec.reload} />}
    </>
  );
}

function RecordingView(props: { r: any; me: Me; startAt: number; reload: () => void }) {
  const { r, me } = props;
  const playable = r.visibility === 'PLAYABLE';
  const playback = useAsync(
    () => (playable ? gql<{ playRecording: any }>(PLAY_MUTATION, { id: r.id }) : Promise.resolve(null)),
    [r.id, playable],
  );
  const pb = playback.data?.playRecording;
  // The play just recorded counts in the recording's figures.
  const counted = useRef(false);
  useEffect(() => {
    if (pb && !counted.current) {
      counted.current = true;
      props.reload();
    }
  }, [pb]);
  const controller = useRef<Controller | null>(null);
  const [now, setNow] = useState(props.startAt);
  const [liveEvents, setLiveEvents] = useState<any[]>([]);
  const [liveError, setLiveError] = useState<ApiError | null>(null);
  // The live feed completes once the session has ended (after its last
  // event): the player then stops following and the clock stops.
  const [ended, setEnded] = useState(false);
  const live = !!pb?.live && !ended;
  const [comments, setComments] = useState<any[] | null>(null);
  useEffect(() => setComments(pb ? pb.comments : null), [pb]);

  // A live session: its new events come over the subscription.
  useEffect(() => {
    if (!pb || !pb.live) return;
    return subscribe<{ recordingEvents: any }>(
      `subscription Follow($id: ID!, $from: Int) { recordingEvents(recordingId: $id, fromPosition: $from) { ${EVENT_FIELDS} } }`,
      { id: r.id, from: pb.followFrom + 1 },
      (data) => setLiveEvents((list) => [...list, data.recordingEvents]),
      (e) => setLiveError(e),
      () => setEnded(true),
    );
  }, [pb]);

  const events = useMemo(() => (pb ? [...pb.events, ...liveEvents] : []), [pb, liveEvents]);
  // A live session's length grows with the clock.
  const [wall, setWall] = useState(() => Date.now());
  useEffect(() => {
    if (!live) return;
    const timer = setInterval(() => setWall(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [live]);
  const liveSoFar = pb?.live ? Math.max(0, (wall - Date.parse(r.startedAt)) / 1000) : 0;
  const markers: Marker[] = useMemo(() => {
    if (!pb) return [];
    const list: Marker[] = [];
    for (const d of pb.detections) list.push({ t: d.offsetMs / 1000, label: `Detection: ${titleCase(d.type)} (${titleCase(d.severity)})`, kind: 'detection', severity: d.severity });
    for (const e of events) if (!QUIET.has(e.type)) list.push({ t: e.offsetMs / 1000, label: titleCase(e.type), kind: 'event' });
    for (const c of comments ?? []) if (c.offsetMs != null) list.push({ t: c.offsetMs / 1000, label: `Comment by ${c.author}`, kind: 'comment' });
    return list;
  }, [pb, events, comments]);
  const idle = useMemo(
    () =>
      events
        .filter((e) => e.type === 'IDLE' && e.data?.seconds)
        .map((e) => ({ from: e.offsetMs / 1000, to: e.offsetMs / 1000 + e.data.seconds })),
    [events],
  );

  // The position is in the URL (?t=), so a moment can be shared.
  const lastWritten = useRef(-1);
  const onTime = (t: number, playing: boolean) => {
    setNow(t);
    const whole = Math.floor(t);
    if (whole !== lastWritten.current && (!playing || Math.abs(whole - lastWritten.current) >= 2)) {
      lastWritten.current = whole;
      const next = new URL(location.href);
      next.searchParams.set('t', String(whole));
      history.replaceState(null, '', next.pathname + next.search);
    }
  };
  const seek = (t: number) => {
    controller.current?.seek(t);
    document.getElementById('player-region')?.scrollIntoView({ block: 'nearest' });
  };

  return (
    <>
      <div class="page-head">
        <h1>
          {r.user} on {r.host}
        </h1>
        <State r={r} />
      </div>
      <p class="muted">
        {fmtTime(r.startedAt)} · {fmtDuration(r.durationSec)} · {titleCase(r.mode)} · {r.site?.name ?? r.siteId}
        {r.server ? ` · ${r.server.name}` : ''} · client {[r.clientName, r.clientIp].filter(Boolean).join(' ') || 'unknown'}
        {r.applications.length ? ` · ${r.applications.join(', ')}` : ''}
      </p>
      {r.restriction && (
        <p class="note">Restricted by {r.restriction.by} on {fmtTime(r.restriction.at)}: {r.restriction.reason}</p>
      )}
      <Actions r={r} me={me} onChange={props.reload} />
      {!playable && (
        <p role="alert" class="refused">
          You may see this recording but not play it ({r.archived ? 'it is archived' : 'no playback permission covers it'}).
        </p>
      )}
      <ErrorNote error={playback.error} />
      {playable && playback.loading && !pb && <Loading what="the playback" />}
      {pb && (
        <div class="recording-layout">
          <div class="main-col">
            <Player
              contentUrl={pb.contentUrl}
              ticketUrl={pb.ticketUrl}
              contentType={pb.contentType}
              contentSize={pb.contentSize}
              live={live}
              durationSec={Math.max(r.durationSec, (r.dataPoints.lastOffsetMs ?? 0) / 1000, liveSoFar, ...liveEvents.map((e) => e.offsetMs / 1000))}
              markers={markers}
              idle={idle}
              startAt={props.startAt}
              onTime={onTime}
              controller={controller}
            />
            {pb.live && (
              <p role="status" class="live-note">
                {ended ? 'The session ended' : 'Live'}: {liveEvents.length} new event{liveEvents.length === 1 ? '' : 's'} since you opened it.
                {liveError && ` The live feed stopped: ${liveError.message}`}
              </p>
            )}
            {pb.truncated && <p class="note">The timeline shows the first 10000 events.</p>}
            <Events events={events} onSeek={seek} />
          </div>
          <div class="side-col">
            <Detections detections={pb.detections} onSeek={seek} />
            <Comments recordingId={r.id} comments={comments ?? []} now={now} onSeek={seek} onAdded={(c) => setComments([...(comments ?? []), c])} />
            <DataPointsView dp={r.dataPoints} r={r} />
            <Section title="Event visualization">
              <TimeChart
                title="Events and detections per minute"
                xIsOffset
                height={160}
                xs={r.eventVisualization.map((b: any) => b.start)}
                series={[
                  { label: 'Events', color: '#2563eb', values: r.eventVisualization.map((b: any) => b.events.reduce((a: number, x: any) => a + x.count, 0)) },
                  { label: 'Detections', color: '#c2410c', values: r.eventVisualization.map((b: any) => b.detections.reduce((a: number, x: any) => a + x.count, 0)) },
                ]}
              />
            </Section>
          </div>
        </div>
      )}
    </>
  );
}

function Events(props: { events: any[]; onSeek: (t: number) => void }) {
  const [type, setType] = useState('');
  const [find, setFind] = useState('');
  const types = useMemo(() => [...new Set(props.events.map((e) => e.type))].sort(), [props.events]);
  const needle = find.trim().toLowerCase();
  const shown = props.events.filter(
    (e) => (!type || e.type === type) && (!needle || `${titleCase(e.type)} ${describe(e)}`.toLowerCase().includes(needle)),
  );
  return (
    <Section title="Events">
      <label>
        Event type{' '}
        <select value={type} onChange={(e) => setType((e.target as HTMLSelectElement).value)}>
          <option value="">All types ({props.events.length})</option>
          {types.map((t) => <option key={t} value={t}>{titleCase(t)}</option>)}
        </select>
      </label>{' '}
      <label>
        Find in events{' '}
        <input type="search" value={find} onInput={(e) => setFind((e.target as HTMLInputElement).value)} />
      </label>
      <ol class="events" aria-label="Events">
        {shown.map((e) => (
          <li key={e.eventId}>
            <button type="button" class="link" onClick={() => props.onSeek(e.offsetMs / 1000)} aria-label={`Jump to ${titleCase(e.type)} at ${fmtDuration(e.offsetMs / 1000)}`}>
              {fmtDuration(e.offsetMs / 1000)}
            </button>{' '}
            <span class="etype">{titleCase(e.type)}</span> <span class="muted">{describe(e)}</span>
          </li>
        ))}
      </ol>
    </Section>
  );
}

function Detections(props: { detections: any[]; onSeek: (t: number) => void }) {
  return (
    <Section title="Detections">
      {props.detections.length === 0 && <p class="muted">None.</p>}
      <ul class="plain">
        {[...props.detections].sort((a, b) => a.offsetMs - b.offsetMs).map((d) => (
          <li key={d.id}>
            <button type="button" class="link" onClick={() => props.onSeek(d.offsetMs / 1000)} aria-label={`Jump to detection ${titleCase(d.type)} at ${fmtDuration(d.offsetMs / 1000)}`}>
              {fmtDuration(d.offsetMs / 1000)}
            </button>{' '}
            <span class={`sev sev-${d.severity}`}>{titleCase(d.severity)}</span> {titleCase(d.type)} — {d.rule}
            {d.subject ? <span class="muted"> ({d.subject})</span> : null}
          </li>
        ))}
      </ul>
    </Section>
  );
}

function Comments(props: { recordingId: string; comments: any[]; now: number; onSeek: (t: number) => void; onAdded: (c: any) => void }) {
  const [text, setText] = useState('');
  const [severity, setSeverity] = useState('NORMAL');
  const at = Math.floor(props.now);
  const sorted = [...props.comments].sort((a, b) => (a.offsetMs ?? 0) - (b.offsetMs ?? 0));
  return (
    <Section title="Comments">
      <ul class="plain" aria-label="Comments">
        {sorted.map((c) => (
          <li key={c.id}>
            {c.offsetMs != null && (
              <button type="button" class="link" onClick={() => props.onSeek(c.offsetMs / 1000)} aria-label={`Jump to comment at ${fmtDuration(c.offsetMs / 1000)}`}>
                {fmtDuration(c.offsetMs / 1000)}
              </button>
            )}{' '}
            <span class={`sev sev-${c.severity}`}>{titleCase(c.severity)}</span> <strong>{c.author}</strong>: {c.text}
          </li>
        ))}
      </ul>
      <ActionForm
        class="comment-form"
        onSubmit={async () => {
          if (!text.trim()) throw new ApiError('Write the comment first.', 'VALIDATION');
          const data = await gql<{ addComment: { comment: any } }>(
            `mutation Add($id: ID!, $text: String!, $severity: CommentSeverity, $offsetMs: Int) {
              addComment(recordingId: $id, text: $text, severity: $severity, offsetMs: $offsetMs) { position comment { ${COMMENT_FIELDS} } }
            }`,
            { id: props.recordingId, text: text.trim(), severity, offsetMs: at * 1000 },
          );
          setText('');
          props.onAdded(data.addComment.comment);
        }}
      >
        <label for="comment-text">Comment</label>
        <textarea id="comment-text" rows={2} value={text} onInput={(e) => setText((e.target as HTMLTextAreaElement).value)} />
        <label>
          Severity{' '}
          <select value={severity} onChange={(e) => setSeverity((e.target as HTMLSelectElement).value)}>
            <option value="NORMAL">Normal</option>
            <option value="MEDIUM">Medium</option>
            <option value="CRITICAL">Critical</option>
          </select>
        </label>
        <button type="submit">Add comment at {fmtDuration(at)}</button>
      </ActionForm>
    </Section>
  );
}

function DataPointsView(props: { dp: any; r: any }) {
  const { dp } = props;
  const perf = dp.performance;
  return (
    <Section title="Data points">
      <dl class="facts">
        <dt>Duration</dt><dd>{fmtDuration(dp.durationMs / 1000)}</dd>
        <dt>Events</dt><dd>{dp.eventCount}</dd>
        <dt>Detections</dt><dd>{dp.detectionCount}</dd>
        <dt>Idle</dt><dd>{fmtDuration(dp.idleMs / 1000)}</dd>
        <dt>Content</dt><dd>{fmtBytes(dp.sizeBytes)}</dd>
        <dt>Played</dt><dd>{props.r.plays} times</dd>
        {perf && perf.samples > 0 && (
          <>
            <dt>CPU (avg / p95 / max)</dt><dd>{stat(perf.cpuPercent, '%')}</dd>
            <dt>Memory (avg / p95 / max)</dt><dd>{stat(perf.memoryMb, ' MB')}</dd>
            <dt>Latency (avg / p95 / max)</dt><dd>{stat(perf.latencyMs, ' ms')}</dd>
          </>
        )}
      </dl>
    </Section>
  );
}

function stat(m: any, unit: string): string {
  if (!m) return '—';
  const f = (v: number) => (Math.round(v * 10) / 10).toString();
  return `${f(m.avg)} / ${f(m.p95)} / ${f(m.max)}${unit}`;
}

function Actions(props: { r: any; me: Me; onChange: () => void }) {
  const { r, me } = props;
  const [reason, setReason] = useState('');
  const action = useAction();
  const [done, setDone] = useState('');
  const canRestrict = ['ADMIN', 'PRIVILEGED_PLAYER', 'AUDITOR'].includes(me.role);
  const canHold = me.role === 'ADMIN';
  if (!canRestrict && !canHold) return null;
  const run = (what: string, query: string, variables: Record<string, unknown>) =>
    action.run(async () => {
      if (!reason.trim()) throw new ApiError('Give a reason first.', 'VALIDATION');
      await gql(query, variables);
      setReason('');
      setDone(what);
      props.onChange();
    });
  return (
    <form class="actions" aria-label="Recording actions" onSubmit={(e) => e.preventDefault()}>
      <label>
        Reason{' '}
        <input type="text" value={reason} onInput={(e) => setReason((e.target as HTMLInputElement).value)} />
      </label>
      {canRestrict && !r.restricted && (
        <button type="button" onClick={() => run('Restricted.', 'mutation R($id: ID!, $reason: String!) { restrictRecording(recordingId: $id, reason: $reason) { position } }', { id: r.id, reason: reason.trim() })}>
          Restrict
        </button>
      )}
      {canRestrict && r.restricted && (
        <button type="button" onClick={() => run('Restriction removed.', 'mutation U($id: ID!, $reason: String!) { removeRecordingRestriction(recordingId: $id, reason: $reason) { position } }', { id: r.id, reason: reason.trim() })}>
          Remove restriction
        </button>
      )}
      {canHold && (
        <button type="button" onClick={() => run('Legal hold placed.', 'mutation H($input: PlaceLegalHoldInput!) { placeLegalHold(input: $input) { position } }', { input: { scope: { recordingIds: [r.id] }, reason: reason.trim() } })}>
          Legal hold
        </button>
      )}
      {r.onLegalHold && <span class="badge badge-hold">on legal hold</span>}
      {done && <span role="status">{done}</span>}
      <ErrorNote error={action.error} />
    </form>
  );
}
