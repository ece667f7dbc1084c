// A screen recording made in the browser itself (a canvas recorded by
// MediaRecorder as WebM), uploaded as a recording's content by a server's
// AGENT, then played and sought in the console's <video>.
import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { SRS_URL, eventually, gql, launch, newPage, shootAndCheck, signIn } from './helpers.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** Four seconds of a moving square over noise as WebM, recorded in the page. */
async function recordWebm(page) {
  const base64 = await page.evaluate(async () => {
    const canvas = document.createElement('canvas');
    canvas.width = 320;
    canvas.height = 180;
    document.body.append(canvas);
    const g = canvas.getContext('2d');
    const stream = canvas.captureStream(25);
    // A high bitrate and noise make it several of Chromium's 32 KB media
    // cache blocks, so a partial first answer leaves it wanting the rest.
    const recorder = new MediaRecorder(stream, { mimeType: 'video/webm', videoBitsPerSecond: 2_500_000 });
    const parts = [];
    recorder.ondataavailable = (e) => e.data.size && parts.push(e.data);
    const stopped = new Promise((resolve) => (recorder.onstop = resolve));
    recorder.start(250);
    const started = performance.now();
    await new Promise((resolve) => {
      const draw = () => {
        const t = (performance.now() - started) / 1000;
        g.fillStyle = '#123';
        g.fillRect(0, 0, 320, 180);
        for (let i = 0; i < 150; i++) {
          g.fillStyle = `hsl(${Math.floor(Math.random() * 360)} 60% 50%)`;
          g.fillRect(Math.random() * 320, Math.random() * 180, 6, 6);
        }
        g.fillStyle = '#fc3';
        g.fillRect(20 + t * 60, 70, 40, 40);
        g.fillStyle = '#fff';
        g.font = '20px sans-serif';
        g.fillText(`t=${t.toFixed(1)}`, 10, 30);
        if (t < 4) requestAnimationFrame(draw);
        else resolve();
      };
      draw();
    });
    recorder.stop();
    await stopped;
    canvas.remove();
    const bytes = new Uint8Array(await new Blob(parts, { type: 'video/webm' }).arrayBuffer());
    let text = '';
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(text);
  });
  return Buffer.from(base64, 'base64');
}

test('a WebM recorded in the browser plays and seeks in the console', async () => {
  // A server of its own, and a policy that records the screen.
  const siteId = (await gql('{ sites { id } }')).sites[0].id;
  const connected = (await gql(
    'mutation($s: ID!) { connectServer(input: { siteId: $s, name: "console-video", host: "sr-video.corp.example", deployment: ON_PREMISES, version: "1.0" }) { serverId agentToken } }',
    { s: siteId },
  )).connectServer;
  const policy = (await gql(
    'mutation($s: ID!) { createRecordingPolicy(siteId: $s, input: { name: "Console video", rules: [{ name: "Video tester", action: RECORD_SCREEN_AND_EVENTS, notify: false, users: ["CORP\\\\video.tester"] }], fallback: RECORD_EVENTS_ONLY }) { policyId } }',
    { s: siteId },
  )).createRecordingPolicy.policyId;
  await gql('mutation($id: ID!) { activatePolicy(policyId: $id) { position } }', { id: policy });
  const agent = connected.agentToken;
  await eventually(() => gql('{ me { name } }', {}, agent));

  const page = await newPage(browser);
  await signIn(page);
  const webm = await recordWebm(page);
  assert.ok(webm.length > 1000, `a WebM of ${webm.length} bytes`);

  const started = (await gql(
    'mutation($in: StartRecordingInput!) { startRecording(input: $in) { recordingId recorded decision { action } } }',
    { in: { serverId: connected.serverId, sessionId: `video-${Date.now()}`, session: { user: 'CORP\\video.tester', host: 'VDA-VIDEO-01', applications: ['paint.exe'] }, startedAt: new Date(Date.now() - 4000).toISOString() } },
    agent,
  )).startRecording;
  assert.equal(started.decision.action, 'RECORD_SCREEN_AND_EVENTS');
  const id = started.recordingId;
  const put = await fetch(`${SRS_URL}/recordings/${id}/chunks/0`, {
    method: 'PUT',
    headers: {
      authorization: `Bearer ${agent}`,
      'content-type': 'video/webm',
      'x-content-sha256': createHash('sha256').update(webm).digest('hex'),
    },
    body: webm,
  });
  assert.equal(put.status, 201, await put.text());
  await gql('mutation($id: ID!) { endRecording(recordingId: $id) { position } }', { id }, agent);
  await eventually(async () => {
    const r = (await gql('query($id: ID!) { recording(id: $id) { live sizeBytes } }', { id })).recording;
    assert.equal(r.live, false);
    assert.equal(r.sizeBytes, webm.length);
  });

  await page.goto(`${SRS_URL}/recordings/${id}`);
  const player = page.getByRole('region', { name: 'Player' });
  const video = player.locator('video');
  await video.waitFor();
  await page.waitForFunction(() => document.querySelector('video').readyState >= 1, null, { timeout: 20000 });
  await player.getByRole('button', { name: 'Play', exact: true }).click();
  await page.waitForFunction(() => document.querySelector('video').currentTime > 1.5, null, { timeout: 20000 });
  await player.getByRole('button', { name: 'Pause', exact: true }).click();

  // Seeking: back to the start with the Position slider, then 2 s on.
  await player.getByLabel('Position', { exact: true }).focus();
  await page.keyboard.press('Home');
  await page.waitForFunction(() => document.querySelector('video').currentTime < 0.5);
  await player.getByLabel('Position', { exact: true }).press('ArrowRight');
  await player.getByLabel('Position', { exact: true }).press('ArrowRight');
  await page.waitForFunction(() => Math.abs(document.querySelector('video').currentTime - 2) < 0.3, null, { timeout: 20000 });
  await page.waitForFunction(() => document.querySelector('output[aria-label="Current time"]').textContent === '0:02');
  // The <video> streamed it by its playback ticket (no blob, no header).
  const src = await page.evaluate(() => document.querySelector('video').currentSrc);
  assert.match(src, new RegExp(`/recordings/${id}/content\\?ticket=[0-9a-f]+$`));
  await shootAndCheck(page, 'recording-video');
  await page.context().close();

  // ---- a ticket refused mid-playback is renewed ----
  // A fresh page whose first content answer holds only the first half, so
  // the <video> must come back for the rest while it plays; that request is
  // held until the video has played a while, then refused as an expired
  // ticket is.
  const again = await newPage(browser);
  await signIn(again);
  const playbacks = [];
  again.on('request', (request) => {
    if (request.url().endsWith('/graphql') && /\bplayRecording\b/.test(request.postData() ?? '')) playbacks.push(request.postData());
  });
  let release;
  const playedAWhile = new Promise((resolve) => (release = resolve));
  let answered = 0;
  let refused = null;
  await again.route(`**/recordings/${id}/content?*`, async (route) => {
    answered += 1;
    if (answered === 1) {
      const cut = Math.floor(webm.length * 0.6);
      return route.fulfill({
        status: 206,
        headers: { 'content-type': 'video/webm', 'accept-ranges': 'bytes', 'content-range': `bytes 0-${cut - 1}/${webm.length}` },
        body: webm.subarray(0, cut),
      });
    }
    if (answered === 2) {
      await playedAWhile;
      refused = route.request().url();
      return route.fulfill({ status: 401, contentType: 'application/json', body: JSON.stringify({ code: 'UNAUTHENTICATED', message: 'the playback ticket is not valid for this recording or has expired' }) });
    }
    return route.continue();
  });
  await again.goto(`${SRS_URL}/recordings/${id}`);
  const againPlayer = again.getByRole('region', { name: 'Player' });
  await again.waitForFunction(() => document.querySelector('video')?.readyState >= 1, null, { timeout: 20000 });
  const opened = playbacks.length;
  const firstSrc = await again.evaluate(() => document.querySelector('video').currentSrc);
  await againPlayer.getByRole('button', { name: 'Play', exact: true }).click();
  await again.waitForFunction(() => document.querySelector('video').currentTime > 0.8, null, { timeout: 20000 });
  const at = await again.evaluate(() => document.querySelector('video').currentTime);
  release();
  // A new ticket (one more `playRecording`), and playing on from there.
  await again.waitForFunction((old) => {
    const v = document.querySelector('video');
    return v.currentSrc !== old && v.readyState >= 2 && !v.paused;
  }, firstSrc, { timeout: 20000 });
  assert.ok(refused, 'the ticket URL was refused once');
  assert.equal(playbacks.length, opened + 1, 'one playback query for a new ticket');
  const resumed = await again.evaluate(() => document.querySelector('video').currentTime);
  assert.ok(resumed >= at - 0.3, `went on from ${at.toFixed(2)} s, not from the start (${resumed.toFixed(2)} s)`);
  const newSrc = await again.evaluate(() => document.querySelector('video').currentSrc);
  assert.match(newSrc, new RegExp(`/recordings/${id}/content\\?ticket=[0-9a-f]+$`));
  assert.notEqual(newSrc, firstSrc);
  await again.waitForFunction((t) => document.querySelector('video').currentTime > t + 0.5, resumed, { timeout: 20000 });
  assert.equal(await again.getByRole('alert').count(), 0, 'no error shown');
  await again.context().close();
});
