// A terminal recording in asciinema-player, growing while its session is
// live.
//
// asciinema-player plays a recording it has loaded whole; its live drivers
// (WebSocket, EventSource) stream a feed but cannot seek, and a custom
// driver would mean re-implementing its playback. A live session here must
// both follow its tail and seek back to what happened, so this view keeps
// the asciicast's text and, when new lines arrive, makes a new player of
// the longer text at the moment the old one shows, playing on if it
// played. The new player is built in a hidden layer over the old one and
// replaces it only once it shows that moment, so the swap does not
// flicker. It is rebuilt only when the new lines are needed: at once when
// the viewer follows the tail and waits at its end, otherwise when playback
// reaches the old end, or on play, seek or a speed change. So a viewer
// following a live session watches its output play at its own pace, a
// poll interval behind, and one reviewing an earlier moment is left alone.
import * as AsciinemaPlayer from 'asciinema-player';
import type { Controller } from './player';

type Shown = { player: AsciinemaPlayer.Player; layer: HTMLDivElement };

export class TerminalView implements Controller {
  private text = '';
  private version = 2;
  /** When the last event of the text happens (cast time, seconds). */
  private end = 0;
  private events = 0;
  private current: Shown | null = null;
  private incoming: Shown | null = null;
  private generation = 0;
  /** What the viewer asked: playing (or, live at the end, following). */
  private wanted = false;
  private ended = false;
  /** The text holds lines the current player lacks. */
  private stale = false;
  private speed = 1;
  private startAt: number;

  constructor(
    private host: HTMLElement,
    private live: boolean,
    startAt: number,
    private hooks: { onShown: (duration: number) => void; onError: (message: string) => void },
  ) {
    this.startAt = startAt;
    // A live session opened without a moment to go to follows its tail.
    this.wanted = live && startAt === 0;
  }

  /** New complete lines of the asciicast (`reset`: they are all of it). */
  append(lines: string, reset = false): void {
    if (reset) {
      this.text = '';
      this.end = 0;
      this.events = 0;
    }
    for (const line of lines.split('\n')) this.scan(line);
    this.text += lines;
    if (this.events === 0) return;
    if (!this.current && !this.incoming) {
      if (this.live && this.wanted) this.goLive();
      else this.build(this.startAt);
      return;
    }
    this.stale = true;
    if (this.wanted && this.ended && !this.incoming) this.build(this.time());
  }

  /** Reads one line's time: the header's version, an event's time. */
  private scan(line: string) {
    if (!line.trim()) return;
    try {
      const value = JSON.parse(line);
      if (Array.isArray(value) && typeof value[0] === 'number') {
        this.events += 1;
        this.end = this.version === 3 ? this.end + value[0] : value[0];
      } else if (value && typeof value.version === 'number') {
        this.version = value.version;
      }
    } catch {
      // not JSON: the player's parser will say so
    }
  }

  /** Makes a player of the text at `at`, playing if the viewer wants it playing. */
  private build(at: number) {
    const generation = ++this.generation;
    this.discard(this.incoming);
    const layer = document.createElement('div');
    layer.className = this.current ? 'ap-layer ap-incoming' : 'ap-layer';
    this.host.append(layer);
    const player = AsciinemaPlayer.create({ data: this.text, parser: 'asciicast' }, layer, {
      speed: this.speed,
      startAt: at,
      autoPlay: false,
      preload: true,
      controls: false,
      fit: 'width',
      terminalFontSize: 'small',
      idleTimeLimit: undefined,
    });
    const built = { player, layer };
    this.incoming = built;
    this.stale = false;
    const mine = () => generation === this.generation;
    // Positioned: it takes the old one's place once it has drawn that
    // moment (the terminal draws on a later animation frame; a terminal
    // that stays empty takes it after half a second of frames).
    let swapping = false;
    const swap = () => {
      if (!mine() || this.incoming !== built) return;
      this.incoming = null;
      this.discard(this.current);
      this.current = built;
      layer.classList.remove('ap-incoming');
      this.hooks.onShown(player.getDuration() ?? this.end);
    };
    const show = () => {
      if (swapping) return;
      swapping = true;
      if (!this.current) return swap();
      let frames = 0;
      const drawn = () => {
        frames += 1;
        if (!mine()) return;
        if ((frames >= 2 && (layer.textContent ?? '').trim()) || frames > 30) swap();
        else requestAnimationFrame(drawn);
      };
      requestAnimationFrame(drawn);
    };
    // 'ready' (loaded), 'seeked' and 'error' are player events the typings omit.
    const on = player.addEventListener as (name: string, handler: (payload?: any) => void) => void;
    on('ready', () => {
      if (!mine()) return;
      this.ended = false;
      // Asked when it is loaded: the viewer may have paused meanwhile.
      if (this.wanted) void player.play();
      else void player.seek(at);
    });
    player.addEventListener('playing', show);
    on('error', (error?: { message?: string }) => {
      if (mine()) this.hooks.onError(error?.message ?? 'the terminal recording cannot be played');
    });
    on('seeked', show);
    player.addEventListener('ended', () => {
      show();
      if (this.current !== built && this.incoming !== built) return;
      this.ended = true;
      if (!this.wanted) return;
      // At the end of what it has: on with the newer lines, or (live)
      // wait for them; a finished recording stops.
      if (this.stale) this.build(this.time());
      else if (!this.live) this.wanted = false;
    });
  }

  private discard(shown: Shown | null) {
    if (!shown) return;
    shown.player.dispose();
    shown.layer.remove();
  }

  /** Plays from a second before the latest output and follows the tail. */
  goLive(): void {
    this.wanted = true;
    if (this.events > 0) this.build(Math.max(0, this.end - 1));
  }

  time(): number {
    return this.current ? this.current.player.getCurrentTime() ?? 0 : this.startAt;
  }

  seek(t: number): void {
    const at = Math.max(0, t);
    if (!this.current || this.stale || this.incoming) {
      this.startAt = at;
      if (this.events > 0) this.build(at);
      return;
    }
    const player = this.current.player;
    const resume = this.ended && this.wanted;
    this.ended = false;
    void player.seek(at).then(() => {
      if (resume && this.wanted && this.current?.player === player) void player.play();
    });
  }

  play(): void {
    this.wanted = true;
    if (!this.current) return;
    if (this.stale) this.build(this.time());
    // Live at its end: following, the next lines play when they come.
    else if (!(this.ended && this.live)) {
      this.ended = false;
      void this.current.player.play();
    }
  }

  pause(): void {
    this.wanted = false;
    void this.current?.player.pause();
  }

  playing(): boolean {
    return this.wanted;
  }

  /** The player's speed is fixed when it is made: made again at the same moment. */
  setSpeed(speed: number): void {
    this.speed = speed;
    if (this.current) this.build(this.time());
  }

  dispose(): void {
    this.generation += 1;
    this.discard(this.incoming);
    this.discard(this.current);
    this.incoming = null;
    this.current = null;
  }
}
