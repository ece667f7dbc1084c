// The player: one controller over three kinds of media (a terminal
// recording in asciinema-player, a screen recording in <video>, or the
// timeline alone for events-only recordings), so the timeline, the keys
// and the URL's `?t=` work the same for each.
import { useEffect, useRef, useState } from 'preact/hooks';
import 'asciinema-player/dist/bundle/asciinema-player.css';
import { ApiError, ContentTail, mediaSource, recordingOf, renewTicket, type MediaSource } from './api';
import { TerminalView } from './terminal';
import { fmtDuration } from './util';

/** What the page drives, whatever plays. Times in seconds. */
export interface Controller {
  time(): number;
  seek(t: number): void;
  play(): void;
  pause(): void;
  playing(): boolean;
  setSpeed(speed: number): void;
  /** Goes to the live edge and follows it (a live terminal session). */
  goLive?(): void;
}

export type Marker = { t: number; label: string; kind: 'detection' | 'event' | 'comment'; severity?: string };

export const SPEEDS = [0.5, 1, 1.5, 2, 4, 8];

export type Kind = 'terminal' | 'video' | 'timeline' | 'sniff';

/** How a recording plays; `sniff`: content of no declared type, known once fetched. */
export function kindOf(contentType: string, contentSize: number): Kind {
  if (contentSize > 0 && contentType === 'application/octet-stream') return 'sniff';
  if (contentSize > 0 && contentType.includes('asciicast')) return 'terminal';
  if (contentSize > 0 && (contentType.startsWith('video/') || contentType.includes('webm') || contentType.includes('mp4'))) return 'video';
  return 'timeline';
}

/** A clock that plays the timeline of an events-only recording. */
class TimelineClock implements Controller {
  private at = 0;
  private since: number | null = null;
  private speed = 1;
  constructor(public duration: number, private onEnd: () => void) {}
  time() {
    if (this.since === null) return this.at;
    const t = this.at + ((performance.now() - this.since) / 1000) * this.speed;
    if (t >= this.duration) {
      this.at = this.duration;
      this.since = null;
      this.onEnd();
      return this.duration;
    }
    return t;
  }
  seek(t: number) {
    this.at = Math.max(0, Math.min(this.duration, t));
    if (this.since !== null) this.since = performance.now();
  }
  play() {
    if (this.at >= this.duration) this.at = 0;
    this.since = performance.now();
  }
  pause() {
    this.at = this.time();
    this.since = null;
  }
  playing() {
    return this.since !== null;
  }
  setSpeed(speed: number) {
    this.at = this.time();
    if (this.since !== null) this.since = performance.now();
    this.speed = speed;
  }
}

export function Player(props: {
  contentUrl: string;
  ticketUrl?: string;
  contentType: string;
  contentSize: number;
  durationSec: number;
  live: boolean;
  markers: Marker[];
  idle: { from: number; to: number }[];
  startAt: number;
  onTime: (t: number, playing: boolean) => void;
  controller: { current: Controller | null };
}) {
  const declared = kindOf(props.contentType, props.contentSize);
  const [source, setSource] = useState<MediaSource | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const sniffed = source ? kindOf(source.contentType, source.size) : null;
  const kind: Kind = declared !== 'sniff' ? declared : sniffed === null ? 'sniff' : sniffed === 'sniff' ? 'timeline' : sniffed;
  const host = useRef<HTMLDivElement>(null);
  const video = useRef<HTMLVideoElement>(null);
  const [speed, setSpeed] = useState(1);
  const [time, setTime] = useState(props.startAt);
  const [playing, setPlaying] = useState(false);
  const [duration, setDuration] = useState(props.durationSec);
  const [ready, setReady] = useState(kind === 'timeline');
  // Whether the session is still live, read by the tail's poll (below).
  const following = useRef(props.live);
  following.current = props.live;

  // Whole content for a player to load: a video (streamed from its ticket
  // URL) or content of no declared type, sniffed once fetched.
  useEffect(() => {
    if (declared !== 'video' && declared !== 'sniff') return;
    let live = true;
    let held: MediaSource | null = null;
    mediaSource(props.contentUrl, props.contentType, props.ticketUrl, props.contentSize).then(
      (s) => {
        if (!live) return s.release();
        held = s;
        setSource(s);
      },
      (e) => live && setError(e),
    );
    return () => {
      live = false;
      held?.release();
    };
  }, [props.contentUrl]);

  // The terminal: its asciicast fetched once, and a live session's tail
  // every 2 s (only the bytes after those it has: see ContentTail), the
  // new lines appended to the player (see TerminalView).
  useEffect(() => {
    const el = host.current;
    if (kind !== 'terminal' || !el) return;
    if (declared === 'sniff' && !source?.blob) return;
    const view = new TerminalView(el, props.live, props.startAt, {
      onShown: (d) => {
        setDuration((x) => Math.max(x, d, props.durationSec));
        setReady(true);
      },
      onError: (message) => setError(new ApiError(message, 'INTERNAL')),
    });
    props.controller.current = {
      time: () => view.time(),
      seek: (t) => view.seek(t),
      play: () => view.play(),
      pause: () => view.pause(),
      playing: () => view.playing(),
      setSpeed: (s) => {
        view.setSpeed(s);
        setSpeed(s);
      },
      goLive: () => view.goLive(),
    };
    const tail = new ContentTail(props.contentUrl, props.ticketUrl);
    let stopped = false;
    let failed = false;
    // Content of no declared type came whole as the sniffed blob.
    let begun = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    // A recording that is not live is fetched once.
    let last = !following.current;
    const poll = async () => {
      // A hidden tab asks nothing; it catches up once shown again.
      if (document.hidden && tail.have > 0) {
        timer = setTimeout(poll, 2000);
        return;
      }
      try {
        if (source?.blob && !begun) {
          begun = true;
          view.append(tail.begin(new Uint8Array(await source.blob.arrayBuffer())));
        } else {
          const { lines, reset } = await tail.next();
          if (stopped) return;
          if (lines || reset) view.append(lines, reset);
        }
        el.dataset.bytes = String(tail.have);
        if (failed) setError(null);
        failed = false;
      } catch (e) {
        if (stopped) return;
        failed = true;
        setError(e instanceof ApiError ? e : new ApiError(String(e), 'INTERNAL'));
      }
      if (stopped || last) return;
      // The session ended: one more poll, begun after the end, takes its
      // last bytes.
      if (!following.current) last = true;
      timer = setTimeout(poll, last ? 0 : 2000);
    };
    void poll();
    return () => {
      stopped = true;
      clearTimeout(timer);
      view.dispose();
    };
  }, [kind, source]);

  // The video.
  useEffect(() => {
    if (kind !== 'video' || !source || !video.current) return;
    const v = video.current;
    v.currentTime = props.startAt;
    const onMeta = () => {
      if (Number.isFinite(v.duration)) setDuration(Math.max(v.duration, 0));
      setReady(true);
    };
    v.addEventListener('loadedmetadata', onMeta);
    // A streamed video whose ticket expired fails its next Range request
    // (the element then stops): take a fresh ticket and go on where it
    // was, playing if the viewer was playing. The element has no controls
    // of its own, so the viewer's intent is what the controller was told.
    let wanted = false;
    let renewals = 0;
    const onError = () => {
      const id = recordingOf(v.currentSrc);
      if (!id || !v.currentSrc.includes('ticket=') || renewals >= 3) return;
      renewals += 1;
      const at = v.currentTime;
      renewTicket(id).then(
        (url) => {
          v.src = url;
          v.currentTime = at;
          if (wanted) void v.play();
        },
        (e) => setError(e),
      );
    };
    // A renewal that plays again counts no more against the next one.
    const onLoaded = () => {
      renewals = 0;
    };
    const onEnded = () => {
      wanted = false;
    };
    v.addEventListener('error', onError);
    v.addEventListener('loadeddata', onLoaded);
    v.addEventListener('ended', onEnded);
    props.controller.current = {
      time: () => v.currentTime,
      seek: (t) => {
        v.currentTime = Math.max(0, t);
      },
      play: () => {
        wanted = true;
        void v.play();
      },
      pause: () => {
        wanted = false;
        v.pause();
      },
      playing: () => !v.paused && !v.ended,
      setSpeed: (s) => {
        // The default too: a new source (a renewed ticket) starts at it.
        v.defaultPlaybackRate = s;
        v.playbackRate = s;
        setSpeed(s);
      },
    };
    return () => {
      v.removeEventListener('loadedmetadata', onMeta);
      v.removeEventListener('error', onError);
      v.removeEventListener('loadeddata', onLoaded);
      v.removeEventListener('ended', onEnded);
    };
  }, [source, kind]);

  // A live recording grows: so do its timeline and the clock's end.
  const clockRef = useRef<TimelineClock | null>(null);
  useEffect(() => {
    setDuration((d) => Math.max(d, props.durationSec));
    if (clockRef.current) clockRef.current.duration = Math.max(clockRef.current.duration, props.durationSec);
  }, [props.durationSec]);

  // The events-only clock.
  useEffect(() => {
    if (kind !== 'timeline') return;
    setReady(true);
    const clock = new TimelineClock(Math.max(1, props.durationSec), () => setPlaying(false));
    clock.seek(props.startAt);
    clockRef.current = clock;
    props.controller.current = {
      time: () => clock.time(),
      seek: (t) => clock.seek(t),
      play: () => clock.play(),
      pause: () => clock.pause(),
      playing: () => clock.playing(),
      setSpeed: (s) => {
        clock.setSpeed(s);
        setSpeed(s);
      },
    };
  }, [kind]);

  // What the controls show follows the player.
  useEffect(() => {
    const tick = setInterval(() => {
      const c = props.controller.current;
      if (!c) return;
      const t = c.time();
      const p = c.playing();
      setTime(t);
      setPlaying(p);
      props.onTime(t, p);
    }, 250);
    return () => clearInterval(tick);
  }, []);

  const seek = (t: number) => {
    props.controller.current?.seek(t);
    setTime(t);
    props.onTime(t, props.controller.current?.playing() ?? false);
  };
  const toggle = () => {
    const c = props.controller.current;
    if (!c) return;
    if (c.playing()) c.pause();
    else c.play();
    setPlaying(c.playing());
  };

  // Space and the arrow keys work anywhere on the page but in a field
  // (and Space on a button presses the button).
  const keys = useRef<(e: KeyboardEvent) => void>(() => {});
  keys.current = (e: KeyboardEvent) => {
    const target = e.target as HTMLElement;
    if (['INPUT', 'SELECT', 'TEXTAREA'].includes(target.tagName) || target.isContentEditable) return;
    if (e.key === ' ' && target.tagName !== 'BUTTON') {
      e.preventDefault();
      toggle();
    } else if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
      e.preventDefault();
      const step = e.shiftKey ? 30 : 5;
      const now = props.controller.current?.time() ?? time;
      seek(Math.max(0, Math.min(duration, now + (e.key === 'ArrowRight' ? step : -step))));
    }
  };
  useEffect(() => {
    const listener = (e: KeyboardEvent) => keys.current(e);
    document.addEventListener('keydown', listener);
    return () => document.removeEventListener('keydown', listener);
  }, []);

  const pct = (t: number) => `${Math.min(100, (100 * t) / Math.max(1, duration))}%`;
  return (
    <section
      id="player-region"
      class="player"
      role="region"
      aria-label="Player"
      tabIndex={-1}
    >
      {error && (
        <p role="alert" class="error">
          The content cannot be played: {error.message} ({error.code})
        </p>
      )}
      {kind === 'terminal' && <div ref={host} class="terminal" data-kind="terminal" />}
      {kind === 'video' && (
        <video ref={video} class="video" src={source?.url} preload="auto" aria-label="Screen recording" />
      )}
      {kind === 'timeline' && (
        <div class="eventsonly" data-kind="timeline">
          <p>Events only: this recording has no screen or terminal content. Its timeline plays below.</p>
          <p class="now-event">{currentEvent(props.markers, time)}</p>
        </div>
      )}
      {kind !== 'timeline' && !ready && !error && <p role="status" class="muted">Loading the recording…</p>}
      <div class="controls">
        <button type="button" onClick={toggle} aria-keyshortcuts="Space">
          {playing ? 'Pause' : 'Play'}
        </button>
        <output aria-label="Current time" class="clock">
          {fmtDuration(time)}
        </output>
        <span class="muted">/ {fmtDuration(duration)}</span>
        <label class="speed">
          Speed{' '}
          <select
            value={String(speed)}
            onChange={(e) => props.controller.current?.setSpeed(Number((e.target as HTMLSelectElement).value))}
          >
            {SPEEDS.map((s) => <option key={s} value={String(s)}>{s}x</option>)}
          </select>
        </label>
        {props.live && (
          <button
            type="button"
            class="secondary"
            onClick={() => {
              const c = props.controller.current;
              if (!c) return;
              if (c.goLive) c.goLive();
              else {
                c.seek(Math.max(0, duration - 1));
                c.play();
              }
            }}
          >
            Go live
          </button>
        )}
        <span class="muted keys">Keys: Space play/pause · ← → 5 s (Shift: 30 s)</span>
      </div>
      <div class="timeline" role="group" aria-label="Timeline">
        <div class="track">
          {props.idle.map((spell, i) => (
            <span
              key={i}
              class="idle"
              title={`Idle ${fmtDuration(spell.to - spell.from)}`}
              style={{ left: pct(spell.from), width: `calc(${pct(spell.to)} - ${pct(spell.from)})` }}
            />
          ))}
          <span class="played" style={{ width: pct(time) }} />
        </div>
        <input
          type="range"
          class="scrub"
          aria-label="Position"
          min={0}
          max={Math.max(1, Math.ceil(duration))}
          step={1}
          value={Math.floor(time)}
          onInput={(e) => seek(Number((e.target as HTMLInputElement).value))}
        />
        <div class="markers">
          {props.markers.map((m, i) => (
            <button
              key={i}
              type="button"
              class={`marker marker-${m.kind} ${m.severity ? 'sev-' + m.severity : ''}`}
              style={{ left: pct(m.t) }}
              aria-label={`${m.label} at ${fmtDuration(m.t)}`}
              title={`${m.label} at ${fmtDuration(m.t)}`}
              onClick={() => seek(m.t)}
            />
          ))}
        </div>
      </div>
    </section>
  );
}

function currentEvent(markers: Marker[], t: number): string {
  let last: Marker | null = null;
  for (const m of markers) if (m.t <= t && m.kind !== 'comment') last = m;
  return last ? `${fmtDuration(last.t)} ${last.label}` : 'Session start';
}
