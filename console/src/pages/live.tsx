import { useEffect } from 'preact/hooks';
import { gql, notePosition, subscribe } from '../api';
import { Link } from '../router';
import { ErrorNote, Loading, fmtDuration, fmtTime, useAsync } from '../util';

const LIVE_QUERY = `query Live($atLeast: Int) { recordings(filter: { live: true }, first: 100, atLeast: $atLeast) { totalCount edges { node {
  id user host applications clientName startedAt durationSec eventCount maxSeverity restricted
} } } }`;

/**
 * Sessions in progress: the list follows `liveRecordings` (a start or an
 * end reloads it at that log position) and `detections` (their severity);
 * a 30 s refresh moves the durations on.
 */
export function Live() {
  const list = useAsync(() => gql<{ recordings: any }>(LIVE_QUERY), []);
  useEffect(() => {
    const timer = setInterval(list.reload, 30000);
    const stopChanges = subscribe(
      'subscription { liveRecordings { recordingId live position } }',
      {},
      (data: any) => {
        notePosition(data.liveRecordings.position);
        list.reload();
      },
      () => {},
    );
    const stop = subscribe('subscription { detections { id recordingId } }', {}, () => list.reload(), () => {});
    return () => {
      clearInterval(timer);
      stopChanges();
      stop();
    };
  }, []);
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
