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

/** Four seconds of a moving square as WebM, recorded in the page. */
async function recordWebm(page) {
  const base64 = await page.evaluate(async () => {
    const canvas = document.createElement('canvas');
    canvas.width = 320;
    canvas.height = 180;
    document.body.append(canvas);
    const g = canvas.getContext('2d');
    const stream = canvas.captureStream(25);
    const recorder = new MediaRecorder(stream, { mimeType: 'video/webm' });
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
});
