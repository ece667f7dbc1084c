import { useEffect } from 'preact/hooks';
import { gql, notePosition, subscribe } from '../api';
import { Link } from '../router';
import { ErrorNote, Loading, fmtDuration, fmtTime, useAsync } from '../util';

const LIVE_QUERY = `query Live($atLeast: Int) { recordings(filter: { live: true }, first: 100, atLeast: $atLeast) { totalCount asOf edges { node {
  id user host applications clientName startedAt durationSec eventCount maxSeverity restricted
} } } }`;

const LIVE_CHANGES = 'subscription($from: Int) { liveRecordings(fromPosition: $from) { recordingId live position } }';
const LIVE_DETECTIONS = 'subscription($from: Int) { detections(fromPosition: $from) { id recordingId } }';

/**
 * Sessions in progress: the list follows `liveRecordings` (a start or an
 * end reloads it) and `detections` (their severity), both from the first
 * page's `asOf`, so nothing that happens while the page loads is missed;
 * a 30 s refresh moves the durations on.
 */
export function Live() {
  const list = useAsync(() => gql<{ recordings: any }>(LIVE_QUERY), []);
  const asOf: number | undefined = list.data?.recordings.asOf;
  const following = asOf !== undefined;
  useEffect(() => {
    const timer = setInterval(list.reload, 30000);
    return () => clearInterval(timer);
  }, []);
  useEffect(() => {
    if (asOf === undefined) return;
    const stopChanges = subscribe(
      LIVE_CHANGES,
      { from: asOf + 1 },
      (data: any) => {
        notePosition(data.liveRecordings.position);
        list.reload();
      },
      () => {},
    );
    const stopDetections = subscribe(LIVE_DETECTIONS, { from: asOf + 1 }, () => list.reload(), () => {});
    return () => {
      stopChanges();
      stopDetections();
    };
  }, [following]);
  const rows = list.data?.recordings.edges ?? [];
  return (
    <>
      <h1>Live</h1>
      <ErrorNote error={list.error} />
      {!list.data && list.loading && <Loading what="live sessions" />}
      {list.data && (
        <>
          <p role="status" class="muted">{list.data.recordings.totalCount} sessions in progress.</p>
          <table class="list" aria-label="Live sessions">
            <thead>
              <tr><th scope="col">User</th><th scope="col">Host</th><th scope="col">Application</th><th scope="col">Client</th><th scope="col">Started</th><th scope="col">So far</th><th scope="col">Events</th><th scope="col">Highest severity</th></tr>
            </thead>
            <tbody>
              {rows.map(({ node: r }: any) => (
                <tr key={r.id}>
                  <td><Link href={`/recordings/${r.id}`}>{r.user}</Link></td>
                  <td>{r.host}</td>
                  <td>{r.applications.join(', ')}</td>
                  <td>{r.clientName}</td>
                  <td>{fmtTime(r.startedAt)}</td>
                  <td>{fmtDuration(r.durationSec)}</td>
                  <td>{r.eventCount}</td>
                  <td>{r.maxSeverity ?? '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </>
  );
}
