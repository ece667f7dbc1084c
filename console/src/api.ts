// The console's only ways to the server: POST /graphql, the subscription
// socket /graphql/ws, and the content routes. The bearer token lives in
// sessionStorage only: never in a URL, never logged.
import { createClient, type Client } from 'graphql-ws';

const TOKEN_KEY = 'srs.token';

export function getToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function clearToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
  closeSocket();
}

/** A GraphQL error with its stable `extensions.code`. */
export class ApiError extends Error {
  constructor(
    message: string,
    public code: string,
  ) {
    super(message);
  }
}

type GqlError = { message: string; extensions?: { code?: string } };

function authHeaders(token = getToken()): Record<string, string> {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

// The log position of the last mutation this tab made: queries that
// declare `$atLeast` answer only once the read models have reached it, so
// a page reloaded after a change shows the change.
let lastPosition = 0;

/** A log position the next reads must reflect (from a subscription's change). */
export function notePosition(position: number) {
  lastPosition = Math.max(lastPosition, position);
}

function positions(value: unknown): number[] {
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value as Record<string, unknown>).flatMap(([key, v]) =>
    key === 'position' && typeof v === 'number' ? [v] : positions(v),
  );
}

/** Runs a query or mutation; throws ApiError on the first error. */
export async function gql<T = any>(
  query: string,
  variables: Record<string, unknown> = {},
  token?: string,
): Promise<T> {
  if (query.includes('$atLeast') && variables.atLeast === undefined) {
    variables = { ...variables, atLeast: lastPosition || null };
  }
  const response = await fetch('/graphql', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...authHeaders(token ?? getToken()) },
    body: JSON.stringify({ query, variables }),
  });
  let body: { data?: T; errors?: GqlError[] };
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`the server answered ${response.status}`, 'INTERNAL');
  }
  if (body.errors && body.errors.length > 0) {
    const first = body.errors[0];
    throw new ApiError(first.message, first.extensions?.code ?? 'INTERNAL');
  }
  if (!response.ok || body.data == null) {
    throw new ApiError(`the server answered ${response.status}`, 'INTERNAL');
  }
  if (/^\s*mutation\b/.test(query)) lastPosition = Math.max(lastPosition, ...positions(body.data));
  return body.data;
}

let socket: Client | null = null;

function client(): Client {
  if (!socket) {
    const url = new URL('/graphql/ws', location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    socket = createClient({
      url: url.toString(),
      lazy: true,
      retryAttempts: 5,
      connectionParams: () => ({ Authorization: `Bearer ${getToken() ?? ''}` }),
    });
  }
  return socket;
}

function closeSocket(): void {
  socket?.dispose();
  socket = null;
}

/** Subscribes; returns the function that ends the subscription. */
export function subscribe<T = any>(
  query: string,
  variables: Record<string, unknown>,
  onData: (data: T) => void,
  onError: (error: ApiError) => void,
): () => void {
  return client().subscribe<T>(
    { query, variables },
    {
      next: (value) => {
        if (value.errors?.length) {
          const first = value.errors[0] as GqlError;
          onError(new ApiError(first.message, first.extensions?.code ?? 'INTERNAL'));
        } else if (value.data) {
          onData(value.data as T);
        }
      },
      error: (error) => {
        const list = Array.isArray(error) ? (error as GqlError[]) : null;
        onError(
          new ApiError(
            list?.[0]?.message ?? (error instanceof Error ? error.message : 'the live connection failed'),
            list?.[0]?.extensions?.code ?? 'INTERNAL',
          ),
        );
      },
      complete: () => {},
    },
  );
}

/** A playable source for a recording's content. */
export type MediaSource = { url: string; contentType: string; size: number; release: () => void };

/**
 * The one place the console turns a recording's content into something a
 * player loads: GET the playback's ticket URL (no header: the ticket stands
 * for the signed-in token for this recording, for a few minutes) and hand
 * the player a Blob URL. Once the ticket has expired (a live session's
 * content fetched again later) the content URL is asked with the bearer
 * header instead.
 */
export async function mediaSource(contentUrl: string, contentType: string, ticketUrl?: string, contentSize = 0): Promise<MediaSource> {
  // A screen recording streams: the <video> loads the ticket URL itself,
  // with Range requests, so seeking in a long one does not download it all.
  if (ticketUrl && /^video\//.test(contentType)) {
    return { url: ticketUrl, contentType, size: contentSize, release: () => {} };
  }
  let response = ticketUrl ? await fetch(ticketUrl) : null;
  if (!response || response.status === 401) {
    response = await fetch(contentUrl, { headers: authHeaders() });
  }
  if (!response.ok) {
    let message = `the content answered ${response.status}`;
    let code = response.status === 403 ? 'FORBIDDEN' : response.status === 404 ? 'NOT_FOUND' : 'INTERNAL';
    try {
      const body = await response.json();
      if (body?.message) message = body.message;
      if (body?.code) code = body.code;
    } catch {
      // not JSON: keep the status
    }
    throw new ApiError(message, code);
  }
  const blob = await response.blob();
  const type = contentType === 'application/octet-stream' ? await sniff(blob) : contentType;
  const url = URL.createObjectURL(new Blob([blob], { type }));
  return { url, contentType: type, size: blob.size, release: () => URL.revokeObjectURL(url) };
}

/**
 * The type of content stored without one (chunks uploaded without a
 * content type answer `application/octet-stream`): WebM/Matroska, MP4 or
 * an asciicast, by their first bytes.
 */
export async function sniff(blob: Blob): Promise<string> {
  const head = new Uint8Array(await blob.slice(0, 16).arrayBuffer());
  if (head[0] === 0x1a && head[1] === 0x45 && head[2] === 0xdf && head[3] === 0xa3) return 'video/webm';
  if (String.fromCharCode(...head.subarray(4, 8)) === 'ftyp') return 'video/mp4';
  if (/^\{\s*"version"\s*:\s*[23]/.test(new TextDecoder().decode(head))) return 'application/x-asciicast';
  return 'application/octet-stream';
}

/**
 * A fresh playback ticket URL for a recording, for a player whose ticket
 * expired mid-playback (asking is a playback, like opening the page).
 */
export async function renewTicket(recordingId: string): Promise<string> {
  const data = await gql<{ recording: { playback: { ticketUrl: string } } | null }>(
    'query T($id: ID!) { recording(id: $id) { playback { ticketUrl } } }',
    { id: recordingId },
  );
  if (!data.recording) throw new ApiError(`recording ${recordingId} not found`, 'NOT_FOUND');
  return data.recording.playback.ticketUrl;
}
