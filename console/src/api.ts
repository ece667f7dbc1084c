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

/** The event the console hears when the stored token stopped working. */
export const SESSION_ENDED = 'srs:session-ended';

/**
 * The stored token was refused (expired or revoked): forget it and tell
 * the app, which shows the sign-in page and comes back here afterwards.
 */
function sessionEnded(): void {
  if (!getToken()) return;
  clearToken();
  dispatchEvent(new Event(SESSION_ENDED));
}

/**
 * Runs a query or mutation; throws ApiError on the first error. With the
 * stored token (no `token` given), UNAUTHENTICATED ends the session.
 */
export async function gql<T = any>(
  query: string,
  variables: Record<string, unknown> = {},
  token?: string,
): Promise<T> {
  try {
    return await request<T>(query, variables, token);
  } catch (e) {
    if (token === undefined && e instanceof ApiError && e.code === 'UNAUTHENTICATED') sessionEnded();
    throw e;
  }
}

async function request<T>(query: string, variables: Record<string, unknown>, token?: string): Promise<T> {
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
  onComplete?: () => void,
): () => void {
  return client().subscribe<T>(
    { query, variables },
    {
      next: (value) => {
        if (value.errors?.length) {
          const first = value.errors[0] as GqlError;
          if (first.extensions?.code === 'UNAUTHENTICATED') sessionEnded();
          onError(new ApiError(first.message, first.extensions?.code ?? 'INTERNAL'));
        } else if (value.data) {
          onData(value.data as T);
        }
      },
      error: (error) => {
        const list = Array.isArray(error) ? (error as GqlError[]) : null;
        if (list?.[0]?.extensions?.code === 'UNAUTHENTICATED') sessionEnded();
        onError(
          new ApiError(
            list?.[0]?.message ?? (error instanceof Error ? error.message : 'the live connection failed'),
            list?.[0]?.extensions?.code ?? 'INTERNAL',
          ),
        );
      },
      complete: () => onComplete?.(),
    },
  );
}

/** A playable source for a recording's content. */
export type MediaSource = { url: string; contentType: string; size: number; blob?: Blob; release: () => void };

/** The recording a content or ticket URL is about. */
export function recordingOf(url: string): string | null {
  const id = /\/recordings\/([^/?]+)\/content/.exec(url)?.[1];
  return id ? decodeURIComponent(id) : null;
}

/**
 * GET a recording's content by its playback ticket (no header: the ticket
 * stands for the signed-in token for this recording, for a few minutes).
 * A ticket that expired (401) or no longer opens it (403) is renewed once
 * with a new `playRecording` and the GET made again; `onRenewed` learns
 * the new ticket URL. Without a ticket the bearer header is sent.
 */
export async function fetchContent(
  contentUrl: string,
  ticketUrl: string | undefined,
  init: { headers?: Record<string, string> } = {},
  onRenewed: (ticketUrl: string) => void = () => {},
): Promise<Response> {
  if (!ticketUrl) return fetch(contentUrl, { cache: 'no-store', headers: { ...init.headers, ...authHeaders() } });
  let response = await fetch(ticketUrl, { cache: 'no-store', headers: init.headers });
  const id = recordingOf(ticketUrl);
  if ((response.status === 401 || response.status === 403) && id) {
    const renewed = await renewTicket(id);
    onRenewed(renewed);
    response = await fetch(renewed, { cache: 'no-store', headers: init.headers });
  }
  return response;
}

async function contentError(response: Response): Promise<ApiError> {
  let message = `the content answered ${response.status}`;
  let code = response.status === 403 ? 'FORBIDDEN' : response.status === 404 ? 'NOT_FOUND' : 'INTERNAL';
  try {
    const body = await response.json();
    if (body?.message) message = body.message;
    if (body?.code) code = body.code;
  } catch {
    // not JSON: keep the status
  }
  return new ApiError(message, code);
}

/**
 * The one place the console turns a whole recording's content into
 * something a player loads: a screen recording streams from its ticket
 * URL; other content is fetched (see `fetchContent`) and handed over as a
 * Blob URL.
 */
export async function mediaSource(contentUrl: string, contentType: string, ticketUrl?: string, contentSize = 0): Promise<MediaSource> {
  // A screen recording streams: the <video> loads the ticket URL itself,
  // with Range requests, so seeking in a long one does not download it all.
  if (ticketUrl && /^video\//.test(contentType)) {
    return { url: ticketUrl, contentType, size: contentSize, release: () => {} };
  }
  const response = await fetchContent(contentUrl, ticketUrl);
  if (!response.ok) throw await contentError(response);
  const blob = await response.blob();
  const type = contentType === 'application/octet-stream' ? await sniff(blob) : contentType;
  const url = URL.createObjectURL(new Blob([blob], { type }));
  return { url, contentType: type, size: blob.size, blob, release: () => URL.revokeObjectURL(url) };
}

/**
 * A live terminal session's asciicast as it grows: the first `next()`
 * GETs the whole content, each later one only the bytes after those it
 * has (`Range: bytes=<have>-`: 206 with the new bytes, 416 when there are
 * none yet). It hands back complete lines only (an agent's chunk may end
 * mid-line or mid-character; the rest waits for the next bytes).
 */
export class ContentTail {
  /** The bytes received so far. */
  have = 0;
  private decoder = new TextDecoder();
  private partial = '';
  private started = false;
  constructor(
    private contentUrl: string,
    private ticketUrl: string | undefined,
  ) {}

  /**
   * Takes the content's first bytes fetched otherwise (a sniffed blob):
   * its complete lines, the tail going on after them.
   */
  begin(bytes: Uint8Array): string {
    const end = bytes.lastIndexOf(0x0a) + 1;
    this.have = end;
    this.started = true;
    return new TextDecoder().decode(bytes.subarray(0, end));
  }

  /**
   * The complete lines that arrived since the last call (`reset`: they
   * replace all before, the server having sent the whole content).
   */
  async next(): Promise<{ lines: string; reset: boolean }> {
    const range = this.have > 0 ? { Range: `bytes=${this.have}-` } : undefined;
    const response = await fetchContent(this.contentUrl, this.ticketUrl, { headers: range }, (url) => {
      this.ticketUrl = url;
    });
    if (response.status === 416) {
      // Nothing new; a content shorter than what we hold was replaced.
      const total = Number(/\/(\d+)$/.exec(response.headers.get('content-range') ?? '')?.[1] ?? NaN);
      if (Number.isFinite(total) && total < this.have) this.restart();
      return { lines: '', reset: false };
    }
    if (!response.ok) throw await contentError(response);
    const bytes = new Uint8Array(await response.arrayBuffer());
    let reset = false;
    if (response.status === 206) {
      const start = Number(/bytes (\d+)-/.exec(response.headers.get('content-range') ?? '')?.[1] ?? NaN);
      if (start !== this.have) {
        this.restart();
        return { lines: '', reset: false };
      }
    } else {
      // 200: the whole content (the first GET, or a server ignoring Range).
      reset = this.started;
      this.restart();
    }
    this.started = true;
    this.have += bytes.length;
    const text = this.partial + this.decoder.decode(bytes, { stream: true });
    const cut = text.lastIndexOf('\n') + 1;
    this.partial = text.slice(cut);
    return { lines: text.slice(0, cut), reset };
  }

  private restart() {
    this.have = 0;
    this.partial = '';
    this.decoder = new TextDecoder();
  }
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
 * expired mid-playback (`playRecording`: asking is a playback, like opening
 * the page).
 */
export async function renewTicket(recordingId: string): Promise<string> {
  const data = await gql<{ playRecording: { ticketUrl: string } }>(
    'mutation T($id: ID!) { playRecording(recordingId: $id) { ticketUrl } }',
    { id: recordingId },
  );
  return data.playRecording.ticketUrl;
}
