// The console in headless Chromium against a running srs with demo data:
// what each page shows is compared with the GraphQL answers the test
// fetches itself.
import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { ADMIN, SRS_URL, eventually, fmtDuration, gql, launch, newPage, shootAndCheck, signIn } from './helpers.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** The number a headline count of the dashboard shows. */
async function headline(page, label) {
  const text = await page.locator('dl.headline .count', { has: page.locator('dt', { hasText: new RegExp(`^${label}$`) }) }).locator('dd').innerText();
  return Number(text);
}

test('signing in shows the pages the role may use; signing out forgets the token', async () => {
  const page = await newPage(browser);
  await page.goto(`${SRS_URL}/recordings`);
  await page.getByLabel('Token').waitFor();
  await shootAndCheck(page, 'signin');

  await page.getByLabel('Token').fill('not-a-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').waitFor();

  // A link opened signed out leads there once signed in.
  await page.getByLabel('Token').fill(ADMIN);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Recordings', level: 1 }).waitFor();
  assert.equal(new URL(page.url()).pathname, '/recordings');
  const nav = page.getByRole('navigation', { name: 'Main' });
  for (const name of ['Dashboard', 'Recordings', 'Live', 'Servers', 'Policies', 'Access', 'Audit']) {
    assert.equal(await nav.getByRole('link', { name, exact: true }).count(), 1, name);
  }
  assert.ok(!page.url().includes(ADMIN), 'the token is never in the URL');
  assert.equal(await page.evaluate(() => JSON.stringify(localStorage)), '{}', 'nothing in localStorage');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('srs.token')), ADMIN);

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Token').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);

  // A VIEWER sees only the dashboard and the servers.
  const viewer = (await gql('mutation { issueToken(input: { name: "console-viewer", role: VIEWER }) { secret } }')).issueToken.secret;
  await eventually(() => gql('{ me { name } }', {}, viewer));
  await signIn(page, viewer);
  const links = await page.getByRole('navigation', { name: 'Main' }).getByRole('link').allInnerTexts();
  assert.deepEqual(links, ['Dashboard', 'Servers']);
  await page.context().close();
});

test('a token revoked meanwhile ends the session: the sign-in page says so and leads back', async () => {
  const secret = (await gql('mutation { issueToken(input: { name: "console-ending", role: ADMIN }) { secret } }')).issueToken.secret;
  await eventually(() => gql('{ me { name } }', {}, secret));
  const tokenId = (await gql('{ me { tokenId } }', {}, secret)).me.tokenId;
  const page = await newPage(browser);
  await signIn(page, secret);
  await page.goto(`${SRS_URL}/servers`);
  await page.getByRole('table', { name: 'Servers' }).waitFor();

  await gql('mutation($id: ID!) { revokeToken(id: $id) { position } }', { id: tokenId });
  await eventually(() => assert.rejects(gql('{ me { name } }', {}, secret), /UNAUTHENTICATED/));
  // The next page asks GraphQL with the revoked token.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit' }).click();
  await page.getByRole('alert').filter({ hasText: 'Your session ended. Sign in again.' }).waitFor();
  assert.equal(new URL(page.url()).pathname, '/signin');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('srs.token')), null, 'the token is forgotten');
  await shootAndCheck(page, 'signin-session-ended');

  // Signed in again, back on the page it was on.
  await page.getByLabel('Token').fill(ADMIN);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('table', { name: 'Admin audit trail' }).waitFor();
  assert.equal(new URL(page.url()).pathname, '/audit');
  assert.equal(await page.getByText('Your session ended').count(), 0);
  await page.context().close();
});

test('the dashboard shows the numbers the dashboard query answers', async () => {
  const page = await newPage(browser);
  await signIn(page);
  await page.getByRole('heading', { name: 'Dashboard', level: 1 }).waitFor();
  const query = `query($from: DateTime) { dashboard(from: $from) { recordingsTotal recordingsLive recordingsInRange detectionsInRange restrictedCount pendingArchive pendingDelete } }`;
  const from = () => new Date(Date.now() - 30 * 86400_000).toISOString();
  const first = (await gql(query, { from: from() })).dashboard;
  await page.locator('dl.headline').waitFor();
  const shown = {
    recordingsTotal: await headline(page, 'Total recordings'),
    recordingsLive: await headline(page, 'Live now'),
    recordingsInRange: await headline(page, 'Recordings in range'),
    detectionsInRange: await headline(page, 'Detections in range'),
    restrictedCount: await headline(page, 'Restricted'),
    pendingArchive: await headline(page, 'Pending archive'),
    pendingDelete: await headline(page, 'Pending delete'),
  };
  const second = (await gql(query, { from: from() })).dashboard;
  // The demo's fleet keeps recording: each figure is one the server
  // answered just before or just after the page asked.
  for (const [key, value] of Object.entries(shown)) {
    const low = Math.min(first[key], second[key]);
    const high = Math.max(first[key], second[key]);
    assert.ok(value >= low && value <= high, `${key}: page ${value}, GraphQL ${first[key]}..${second[key]}`);
  }
  assert.ok(shown.recordingsTotal > 0);
  // The pickers are in the URL.
  await page.getByLabel('Time range').selectOption('7');
  await page.waitForURL(/days=7/);
  await page.reload();
  assert.equal(await page.getByLabel('Time range').inputValue(), '7');
  await page.getByLabel('Time range').selectOption('30');
  await page.getByRole('img', { name: /^Recordings per day/ }).locator('canvas').waitFor();
  await page.getByRole('img', { name: /^Detections per day by severity/ }).locator('canvas').waitFor();
  await shootAndCheck(page, 'dashboard');
  await page.context().close();
});

test('a search narrows the recordings and survives a reload', async () => {
  const page = await newPage(browser);
  await signIn(page);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Recordings' }).click();
  await page.getByRole('heading', { name: 'Recordings', level: 1 }).waitFor();
  const table = page.getByRole('table', { name: 'Recordings' });
  await table.waitFor();
  for (const column of ['User', 'Host', 'Application', 'Client', 'Started', 'Duration', 'Detections', 'State']) {
    assert.equal(await table.getByRole('columnheader', { name: column, exact: true }).count(), 1, column);
  }
  const all = (await gql('{ recordings { totalCount } }')).recordings.totalCount;
  const sample = (await gql('{ recordings(first: 1, filter: { live: false }) { edges { node { user } } } }')).recordings.edges[0].node.user;
  const needle = sample.split(/[\\@]/).find((part) => part.length > 2 && !/corp|example/i.test(part)) ?? sample;
  // The count of the page's own URL (not one of a search before).
  const count = async () => {
    const search = new URL(page.url()).search;
    const status = page.locator(`p[role=status][data-search="${search}"]`);
    await status.waitFor();
    return Number((await status.innerText()).match(/\d+/)[0]);
  };

  await page.getByLabel('Search', { exact: true }).fill(needle);
  await page.getByRole('button', { name: 'Apply', exact: true }).click();
  await page.waitForURL(/text=/);
  const low = (await gql('query($t: String) { recordings(filter: { text: $t }) { totalCount } }', { t: needle })).recordings.totalCount;
  const narrowed = await count();
  const high = (await gql('query($t: String) { recordings(filter: { text: $t }) { totalCount } }', { t: needle })).recordings.totalCount;
  assert.ok(narrowed >= low && narrowed <= high, `page ${narrowed}, GraphQL ${low}..${high}`);
  assert.ok(narrowed > 0 && narrowed < all, `narrowed ${narrowed} of ${all}`);
  const rows = await table.locator('tbody tr').count();
  assert.equal(rows, Math.min(25, narrowed));

  await page.reload();
  await page.getByRole('table', { name: 'Recordings' }).waitFor();
  assert.equal(await page.getByLabel('Search', { exact: true }).inputValue(), needle);
  const again = await count();
  assert.ok(again >= narrowed && again <= narrowed + 2, `after reload ${again}, before ${narrowed}`);

  // Sorting by duration puts the longest first.
  await page.getByLabel('Sort').selectOption('LONGEST_FIRST');
  await page.waitForURL(/orderBy=LONGEST_FIRST/);
  await shootAndCheck(page, 'recordings');
  await page.context().close();
});

/** A finished recording whose playback content is an asciicast. */
async function terminalRecording() {
  const page = await gql('{ recordings(first: 300, filter: { live: false, restricted: false }) { edges { node { id applications durationSec } } } }');
  for (const { node } of page.recordings.edges) {
    if (!node.applications.some((a) => /cmd|powershell|ssh/i.test(a)) || node.durationSec < 5) continue;
    const played = await gql('query($id: ID!) { recording(id: $id) { playback { contentType contentSize } } }', { id: node.id });
    if (played.recording.playback.contentType.includes('asciicast') && played.recording.playback.contentSize > 0) return node.id;
  }
  throw new Error('the demo has no finished terminal recording');
}

test('a terminal recording plays in the player: press play, terminal text appears', async () => {
  const id = await terminalRecording();
  const page = await newPage(browser);
  await signIn(page);
  // The content comes by its playback ticket, with no bearer header.
  const contentGets = [];
  page.on('request', (request) => {
    if (request.url().includes(`/recordings/${id}/content`)) {
      contentGets.push({ url: request.url(), authorization: request.headers()['authorization'] });
    }
  });
  await page.goto(`${SRS_URL}/recordings/${id}`);
  const player = page.getByRole('region', { name: 'Player' });
  await player.waitFor();
  const terminal = player.locator('[data-kind=terminal]');
  await terminal.locator('.ap-wrapper, .ap-player, pre, .ap-term').first().waitFor({ timeout: 20000 });
  await player.getByRole('button', { name: 'Play', exact: true }).click();
  await page.waitForFunction(() => {
    const el = document.querySelector('[data-kind=terminal]');
    return el && el.textContent.replace(/\s/g, '').length > 0;
  }, null, { timeout: 30000 });
  await page.waitForFunction(() => document.querySelector('output[aria-label="Current time"]').textContent !== '0:00', null, { timeout: 30000 });
  const text = await terminal.innerText();
  assert.ok(text.trim().length > 0, 'the terminal shows text');
  assert.ok(contentGets.length > 0, 'the player fetched the content');
  for (const get of contentGets) {
    assert.match(get.url, /[?&]ticket=[0-9a-f]+/, 'a content GET by ticket');
    assert.equal(get.authorization, undefined, 'no bearer header on a ticket GET');
  }
  await player.getByRole('button', { name: 'Pause', exact: true }).click();
  await shootAndCheck(page, 'recording-terminal');
  await page.context().close();
});

test('a detection marker seeks the player there, and a comment is added at the current time', async () => {
  // An events-only timeline (no content): the player's clock is the
  // recording's own, so any detection's time can be sought.
  const list = await gql('{ recordings(first: 100, filter: { live: false, hasDetections: true, restricted: false }) { edges { node { id durationSec detections { type offsetMs } } } } }');
  let target = null;
  for (const { node } of list.recordings.edges) {
    if (!node.detections.some((d) => d.offsetMs > 6000)) continue;
    const played = await gql('query($id: ID!) { recording(id: $id) { playback { contentSize } } }', { id: node.id });
    if (played.recording.playback.contentSize === 0) {
      target = node;
      break;
    }
  }
  assert.ok(target, 'a recording with a detection and no content');
  const detection = target.detections.find((d) => d.offsetMs > 6000);

  const page = await newPage(browser);
  await signIn(page);
  await page.goto(`${SRS_URL}/recordings/${target.id}`);
  const player = page.getByRole('region', { name: 'Player' });
  await player.waitFor();
  const timeline = player.getByRole('group', { name: 'Timeline' });
  const expected = fmtDuration(detection.offsetMs / 1000);
  const label = new RegExp(`^Detection: .* at ${expected}$`);
  const marker = timeline.getByRole('button', { name: label }).first();
  await marker.waitFor();
  await marker.click();
  const clock = player.getByRole('status').or(player.locator('output[aria-label="Current time"]'));
  await page.waitForFunction((want) => document.querySelector('output[aria-label="Current time"]').textContent === want, expected, { timeout: 15000 });
  assert.equal(await player.locator('output[aria-label="Current time"]').innerText(), expected, `${await clock.count()}`);
  await page.waitForURL(new RegExp(`[?&]t=${Math.floor(detection.offsetMs / 1000)}\\b`));

  // A comment at the current time, and a click on it seeks back there.
  const text = `Checked at ${expected} by the console test (${Date.now()})`;
  await page.getByLabel('Comment', { exact: true }).fill(text);
  await page.getByRole('button', { name: `Add comment at ${expected}` }).click();
  await page.getByRole('list', { name: 'Comments' }).getByText(text).waitFor();
  await eventually(async () => {
    const stored = (await gql('query($id: ID!) { recording(id: $id) { comments { text offsetMs author } } }', { id: target.id })).recording.comments;
    const mine = stored.find((c) => c.text === text);
    assert.ok(mine, 'the comment is stored');
    assert.equal(mine.offsetMs, Math.floor(detection.offsetMs / 1000) * 1000);
  });

  await player.getByLabel('Position', { exact: true }).focus();
  await page.keyboard.press('Home');
  await page.waitForFunction(() => document.querySelector('output[aria-label="Current time"]').textContent === '0:00');
  await page.getByRole('button', { name: `Jump to comment at ${expected}` }).first().click();
  await page.waitForFunction((want) => document.querySelector('output[aria-label="Current time"]').textContent === want, expected);
  // The keys: an arrow moves 5 s, Space plays and pauses.
  await page.locator('h1').click();
  await page.keyboard.press('ArrowLeft');
  const minus5 = fmtDuration(Math.floor(detection.offsetMs / 1000) - 5);
  await page.waitForFunction((want) => document.querySelector('output[aria-label="Current time"]').textContent === want, minus5);
  await page.keyboard.press(' ');
  await player.getByRole('button', { name: 'Pause', exact: true }).waitFor();
  await page.keyboard.press(' ');
  await player.getByRole('button', { name: 'Play', exact: true }).waitFor();
  await shootAndCheck(page, 'recording-timeline');
  await page.context().close();
});

test('an AUDITOR without a grant cannot open a restricted recording', async () => {
  const restricted = (await gql('{ recordings(first: 1, filter: { restricted: true }) { edges { node { id } } } }')).recordings.edges[0]?.node.id;
  assert.ok(restricted, 'the demo has a restricted recording');
  const auditor = (await gql('mutation { issueToken(input: { name: "console-auditor", role: AUDITOR }) { secret } }')).issueToken.secret;
  await eventually(() => gql('{ me { name } }', {}, auditor));
  // The API refuses it: the recording is not there for this auditor.
  assert.equal((await gql('query($id: ID!) { recording(id: $id) { id } }', { id: restricted }, auditor)).recording, null);

  const page = await newPage(browser);
  await signIn(page, auditor);
  await page.goto(`${SRS_URL}/recordings/${restricted}`);
  const refusal = page.getByRole('alert').filter({ hasText: 'You may not open this recording' });
  await refusal.waitFor();
  assert.equal(await page.getByRole('region', { name: 'Player' }).count(), 0);
  await shootAndCheck(page, 'recording-refused');
  await page.context().close();
});

test('a live session view updates while the fleet streams into it', async () => {
  const liveNow = async () => (await gql('{ recordings(first: 100, filter: { live: true }) { edges { node { id eventCount } } } }')).recordings.edges.map((e) => e.node);
  // The demo's fleet works on a few sessions at a time: find one that grows.
  let growing = null;
  for (let round = 0; round < 30 && !growing; round++) {
    const first = new Map((await liveNow()).map((r) => [r.id, r.eventCount]));
    await new Promise((resolve) => setTimeout(resolve, 2000));
    growing = (await liveNow()).find((r) => first.has(r.id) && r.eventCount > first.get(r.id))?.id ?? null;
  }
  assert.ok(growing, 'a live session that receives events');

  const page = await newPage(browser);
  // The worst moment for a session to start: after the server answered the
  // Live page's list and before the page's `liveRecordings` subscription
  // reaches the server (held here until the session has started). The page
  // follows `liveRecordings` from the list's `asOf`, so the start still
  // reaches it (a subscription "from now" misses it, and the page's
  // periodic refresh is every 30 s, past this wait).
  const server = await ownServer('sr-live-follow');
  let started = null;
  let listed = '';
  let release;
  const sessionStarted = new Promise((resolve) => { release = resolve; });
  const received = [];
  await page.routeWebSocket(/\/graphql\/ws/, (socket) => {
    const upstream = socket.connectToServer();
    socket.onMessage(async (message) => {
      if (String(message).includes('liveRecordings')) await sessionStarted;
      upstream.send(message);
    });
    upstream.onMessage((message) => {
      received.push(String(message));
      socket.send(message);
    });
  });
  await page.route('**/graphql', async (route) => {
    const body = route.request().postData() ?? '';
    if (started || !body.includes('query Live')) return route.continue();
    const response = await route.fetch();
    listed = await response.text();
    started = (await gql(
      'mutation($server: ID!, $user: String!) { startRecording(input: {serverId: $server, sessionId: "follow-1", session: {user: $user, host: "vda-follow", clientIp: "10.0.0.9", clientName: "laptop-9", applications: ["Excel"]}}) { recordingId recorded } }',
      { server: server.serverId, user: 'CORP\\livefollow' },
      server.agentToken,
    )).startRecording;
    release();
    await route.fulfill({ response });
  });
  await signIn(page);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Live' }).click();
  await page.getByRole('table', { name: 'Live sessions' }).waitFor();
  assert.equal(started?.recorded, true);
  assert.ok(listed.includes('"asOf"') && !listed.includes('livefollow'), 'the list was answered before the session started');
  await page.getByRole('table', { name: 'Live sessions' }).getByText(/livefollow/).first().waitFor({ timeout: 10000 });
  // It came through the subscription (not a reload another change made).
  await eventually(async () =>
    assert.ok(received.some((f) => f.includes('liveRecordings') && f.includes(started.recordingId)), 'the start reached the page'));
  await shootAndCheck(page, 'live');
  await page.goto(`${SRS_URL}/recordings/${growing}`);
  const note = page.locator('p.live-note');
  await note.waitFor();
  const before = (await page.getByRole('list', { name: 'Events' }).locator('li').count());
  await page.waitForFunction(() => /Live: [1-9]\d* new event/.test(document.querySelector('p.live-note')?.textContent ?? ''), null, { timeout: 90000 });
  const afterCount = await page.getByRole('list', { name: 'Events' }).locator('li').count();
  assert.ok(afterCount > before, `events ${before} -> ${afterCount}`);
  // "Go live" plays from the live edge.
  const player = page.getByRole('region', { name: 'Player' });
  await player.getByRole('button', { name: 'Go live', exact: true }).click();
  await page.waitForFunction(() => document.querySelector('output[aria-label="Current time"]').textContent !== '0:00');
  await shootAndCheck(page, 'recording-live');
  await page.context().close();
});

/** A server of its own on a new site that records everyone, and its AGENT token. */
async function ownServer(prefix) {
  const name = `${prefix}-${Date.now()}`;
  const site = (await gql('mutation($n: String!) { createSite(input: {name: $n}) { siteId } }', { n: `${name} site` })).createSite.siteId;
  await gql('mutation($id: ID!, $site: ID) { activatePolicy(policyId: $id, siteId: $site) { position } }', {
    id: '00000000-0000-8000-8000-000000000002',
    site,
  });
  const server = (await gql(
    'mutation($site: ID!, $n: String!) { connectServer(input: {siteId: $site, name: $n, host: "rec.example", deployment: ON_PREMISES, version: "2407"}) { serverId agentToken } }',
    { site, n: name },
  )).connectServer;
  await eventually(() => gql('{ me { name } }', {}, server.agentToken));
  return server;
}

/** Uploads `text` as chunk `seq` of a recording, as its server's agent does. */
async function putChunk(agent, id, seq, text) {
  const body = Buffer.from(text, 'utf8');
  const put = await fetch(`${SRS_URL}/recordings/${id}/chunks/${seq}`, {
    method: 'PUT',
    headers: {
      authorization: `Bearer ${agent}`,
      'content-type': 'application/x-asciicast',
      'x-content-sha256': createHash('sha256').update(body).digest('hex'),
    },
    body,
  });
  assert.equal(put.status, 201, await put.text());
}

test('a live terminal session follows its tail: new bytes only, by Range, and a refused ticket is renewed', async () => {
  const server = await ownServer('sr-tail');
  const t0 = Date.now();
  const id = (await gql(
    'mutation($server: ID!) { startRecording(input: {serverId: $server, sessionId: "tail-1", session: {user: "CORP\\\\tail.watcher", host: "vda-tail", applications: ["powershell.exe"]}}) { recordingId recorded } }',
    { server: server.serverId },
    server.agentToken,
  )).startRecording.recordingId;
  const line = (n) => JSON.stringify([Math.max(0.1, (Date.now() - t0) / 1000), 'o', `PS C:\\> echo tail-line-${n}\r\n`]) + '\n';
  const header = JSON.stringify({ version: 2, width: 80, height: 24, timestamp: Math.floor(t0 / 1000) }) + '\n';
  await putChunk(server.agentToken, id, 0, header + line(1) + line(2) + line(3));
  await eventually(async () => assert.ok((await gql('query($id: ID!) { recording(id: $id) { sizeBytes } }', { id })).recording?.sizeBytes > 0));

  const page = await newPage(browser);
  await signIn(page);
  const gets = [];
  page.on('request', (request) => {
    if (request.url().includes(`/recordings/${id}/content`)) gets.push({ url: request.url(), range: request.headers()['range'] });
  });
  const statuses = [];
  page.on('response', (response) => {
    if (response.url().includes(`/recordings/${id}/content`)) statuses.push(response.status());
  });
  const playbacks = [];
  page.on('request', (request) => {
    if (request.url().endsWith('/graphql') && /\bplayRecording\b/.test(request.postData() ?? '')) playbacks.push(request.postData());
  });
  await page.goto(`${SRS_URL}/recordings/${id}`);
  const terminal = page.locator('[data-kind=terminal]');
  // Opened live, the player follows the tail and shows the latest output.
  await terminal.getByText('tail-line-3').first().waitFor({ timeout: 20000 });
  const before = (await terminal.innerText()).trim();
  // From now on the page notes whenever the terminal shows nothing: a
  // player made again for new lines replaces the old one only once drawn.
  await page.evaluate(() => {
    window.blank = 0;
    setInterval(() => {
      if (!document.querySelector('[data-kind=terminal]').innerText.includes('tail-line-1')) window.blank += 1;
    }, 20);
  });

  // The agent goes on writing; the page shows each new line, having asked
  // only for the bytes after those it had.
  let seq = 1;
  const write = async (upTo) => {
    for (; seq + 3 <= upTo; seq++) {
      await putChunk(server.agentToken, id, seq, line(seq + 3));
      await new Promise((resolve) => setTimeout(resolve, 400));
    }
  };
  await write(8);
  await terminal.getByText('tail-line-8').first().waitFor({ timeout: 20000 });
  const grown = (await terminal.innerText()).trim();
  assert.ok(grown.length > before.length, `the terminal text grew: ${before.length} -> ${grown.length} characters`);
  assert.ok(gets.length >= 2, `${gets.length} content GETs`);
  assert.equal(gets[0].range, undefined, 'the first GET asks for the whole content');
  let have = 0;
  for (const get of gets.slice(1)) {
    const from = Number(/^bytes=(\d+)-$/.exec(get.range ?? '')?.[1]);
    assert.ok(from > 0, `a later GET asks for the bytes it lacks: ${get.range}`);
    assert.ok(from >= have, `ranges move on: ${from} after ${have}`);
    have = from;
  }
  assert.ok(statuses.includes(206), `new bytes come as 206: ${statuses}`);
  const stored = (await gql('query($id: ID!) { recording(id: $id) { sizeBytes } }', { id })).recording.sizeBytes;
  assert.ok(have > 0 && have <= stored, `asked from ${have} of ${stored} bytes`);

  // The ticket stops opening the content (as when it expires): the player
  // asks for a new one and goes on from where it was.
  const playedBefore = playbacks.length;
  const at = await page.locator('output[aria-label="Current time"]').innerText();
  let refused = null;
  await page.route(`**/recordings/${id}/content?*`, async (route) => {
    if (refused) return route.continue();
    refused = route.request().url();
    await route.fulfill({ status: 401, contentType: 'application/json', body: JSON.stringify({ code: 'UNAUTHENTICATED', message: 'the playback ticket has expired' }) });
  });
  await eventually(() => assert.ok(refused, 'the ticket URL was asked again'), 80);
  await write(11);
  await terminal.getByText('tail-line-11').first().waitFor({ timeout: 20000 });
  assert.equal(playbacks.length, playedBefore + 1, 'one new playback query for a new ticket');
  const after = gets.slice(gets.findIndex((g) => g.url === refused) + 1);
  const renewed = after.find((g) => g.url !== refused);
  assert.ok(renewed, 'a GET with the new ticket');
  assert.match(renewed.range ?? '', /^bytes=[1-9]\d*-$/, 'the renewed GET goes on after the bytes it had');
  const now = await page.locator('output[aria-label="Current time"]').innerText();
  const secs = (clock) => clock.split(':').reduce((total, part) => total * 60 + Number(part), 0);
  assert.ok(secs(now) >= secs(at), `the position went on: ${at} -> ${now}`);
  assert.equal(await page.getByRole('alert').count(), 0, 'no error shown');
  assert.equal(await page.evaluate(() => window.blank), 0, 'the terminal never went blank while it followed');
  await shootAndCheck(page, 'recording-live-terminal');

  // The session ends right after its last line: the page says so, shows
  // that line, and stops asking for content (and for tickets).
  await putChunk(server.agentToken, id, seq, line(seq + 3));
  const lastLine = `tail-line-${seq + 3}`;
  await gql('mutation($id: ID!) { endRecording(recordingId: $id) { position } }', { id }, server.agentToken);
  await page.waitForFunction(() => /^The session ended: /.test(document.querySelector('p.live-note')?.textContent ?? ''), null, { timeout: 20000 });
  await terminal.getByText(lastLine).first().waitFor({ timeout: 20000 });
  // A poll due when the session ended, and the one after it, may still go.
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const [getsAtEnd, playsAtEnd] = [gets.length, playbacks.length];
  await new Promise((resolve) => setTimeout(resolve, 5000));
  assert.equal(gets.length, getsAtEnd, `no content GET after the end: ${JSON.stringify(gets.slice(getsAtEnd))}`);
  assert.equal(playbacks.length, playsAtEnd, 'no new playback after the end');
  await page.context().close();
});

test('servers, policies, access and audit pages render what GraphQL answers', async () => {
  const page = await newPage(browser);
  await signIn(page);
  const servers = (await gql('{ servers { name } }')).servers;
  await page.goto(`${SRS_URL}/servers`);
  const table = page.getByRole('table', { name: 'Servers' });
  await table.waitFor();
  assert.equal(await table.locator('tbody tr').count(), servers.length);
  await shootAndCheck(page, 'servers');

  // A stale settings edit shows the conflict instead of overwriting.
  const server = (await gql('{ servers { id name settingsVersion settings { maxFileSizeMb maxRecordingHours } } }')).servers[0];
  const hours = server.settings.maxRecordingHours === 11 ? 10 : 11;
  await page.getByRole('button', { name: `Edit settings of ${server.name}`, exact: true }).click();
  await gql('mutation($id: ID!, $v: Int, $h: Int) { updateServerSettings(serverId: $id, settings: { maxRecordingHours: $h }, expectedVersion: $v) { position } }', { id: server.id, v: server.settingsVersion, h: hours });
  await page.getByLabel('Maximum file size (MB, 10 to 300)').fill('77');
  await page.getByRole('button', { name: 'Save', exact: true }).click();
  await page.getByRole('alert').filter({ hasText: 'changed these settings meanwhile' }).waitFor();
  await eventually(async () => {
    const after = (await gql('query($id: ID!) { server(id: $id) { settings { maxFileSizeMb maxRecordingHours } } }', { id: server.id })).server.settings;
    assert.equal(after.maxRecordingHours, hours);
    assert.equal(after.maxFileSizeMb, server.settings.maxFileSizeMb, 'the stale edit wrote nothing');
  });

  await page.goto(`${SRS_URL}/policies`);
  await page.getByRole('heading', { name: 'Recording policies' }).waitFor();
  const siteId = new URL(page.url()).searchParams.get('site') ?? (await gql('{ sites { id } }')).sites[0].id;

  // A recording policy made with the form, then activated.
  const policyName = `Console contractors ${Date.now()}`;
  await page.getByRole('button', { name: 'New recording policy', exact: true }).click();
  const form = page.getByRole('form', { name: 'New recording policy' });
  await form.getByLabel('Name', { exact: true }).fill(policyName);
  await form.getByRole('button', { name: 'Add rule', exact: true }).click();
  await form.getByLabel('Rule name', { exact: true }).fill('No console testers');
  await form.getByLabel('Action', { exact: true }).selectOption('DO_NOT_RECORD');
  await form.getByLabel('Users', { exact: true }).fill('CORP\\console.tester, CORP\\other.tester');
  await form.getByRole('button', { name: 'Save', exact: true }).click();
  await page.getByRole('heading', { name: new RegExp(`^${policyName}`) }).waitFor();
  const made = await eventually(async () => (await gql('query($s: ID!) { policies(siteId: $s) { recording { all { id name definition { recording { rules { name action users } } } } } } }', { s: siteId }))
    .policies.recording.all.find((p) => p.name === policyName) ?? assert.fail('the policy is stored'));
  assert.deepEqual(made.definition.recording.rules, [{ name: 'No console testers', action: 'DO_NOT_RECORD', users: ['CORP\\console.tester', 'CORP\\other.tester'] }]);
  await page.getByRole('button', { name: `Activate ${policyName}`, exact: true }).click();
  await page.getByRole('article').filter({ hasText: policyName }).getByText('active', { exact: true }).waitFor();
  await page.getByLabel('User (DOMAIN\\user)').fill('CORP\\console.tester');
  await page.getByLabel('Host', { exact: true }).fill('vda-01');
  await page.getByRole('button', { name: 'Test', exact: true }).click();
  await page.getByRole('status').filter({ hasText: 'Not recorded' }).waitFor();
  await shootAndCheck(page, 'policies');

  await page.goto(`${SRS_URL}/access`);
  await page.getByRole('table', { name: 'Playback permissions' }).waitFor();
  await shootAndCheck(page, 'access');

  await page.goto(`${SRS_URL}/audit`);
  await page.getByRole('table', { name: 'Admin audit trail' }).waitFor();
  const download = page.waitForEvent('download');
  await page.getByRole('button', { name: 'Export CSV' }).click();
  const file = await download;
  const csv = await (await file.createReadStream()).toArray();
  const lines = Buffer.concat(csv).toString('utf8').trim().split(/\r\n/);
  assert.equal(lines[0], 'position,at,actor,what,target,detail');
  assert.equal(lines.length - 1, await page.getByRole('table', { name: 'Admin audit trail' }).locator('tbody tr').count());
  await shootAndCheck(page, 'audit');

  // The category filter narrows the trail to playbacks (this test played some).
  await page.getByLabel('Category').selectOption('PLAYBACK');
  await page.getByRole('button', { name: 'Apply', exact: true }).click();
  await page.waitForFunction(() => {
    const cells = [...document.querySelectorAll('table[aria-label="Admin audit trail"] tbody tr td:nth-child(4)')];
    return cells.length > 0 && cells.every((cell) => cell.textContent.startsWith('PLAYBACK'));
  });
  await page.context().close();
});

const POLICIES = `query($s: ID!) { policies(siteId: $s) {
  recording { active { id } all { id name version deleted } }
  eventDetection { active { id } all { id name version deleted definition { eventDetection { name logged monitoredApps rules { name type severity patterns idleSeconds users groups hosts } } } } }
  eventResponse { active { id } all { id name version deleted definition { eventResponse { name rules { name onSessionStart types minSeverity users hosts actions recipients message cooldownSec } } } } }
} }`;

/** A policy of a kind as GraphQL reads it back, once the read model has it. */
async function storedPolicy(siteId, kind, name, check = () => {}) {
  return eventually(async () => {
    const policies = (await gql(POLICIES, { s: siteId })).policies[kind];
    const found = policies.all.find((p) => p.name === name) ?? assert.fail(`${kind} policy ${name} is stored`);
    check(found, policies);
    return found;
  });
}

/** Waits until GraphQL no longer lists `name` (or lists it deleted) and `active` is active. */
async function gone(siteId, kind, name, active) {
  await eventually(async () => {
    const policies = (await gql(POLICIES, { s: siteId })).policies[kind];
    assert.ok(policies.all.every((p) => p.name !== name || p.deleted), `${name} is deleted`);
    assert.equal(policies.active.id, active);
  });
}

/** Activates `name` with its button and waits for its badge. */
async function activate(page, name) {
  await page.getByRole('button', { name: `Activate ${name}`, exact: true }).click();
  await page.getByRole('article').filter({ has: page.getByRole('heading', { name: new RegExp(`^${name}`) }) }).getByText('active', { exact: true }).waitFor();
}

test('event detection and response policies are created, edited, activated and deleted with their forms', async () => {
  const siteId = (await gql('mutation($n: String!) { createSite(input: {name: $n}) { siteId } }', { n: `Policy forms ${Date.now()}` })).createSite.siteId;
  // The site's policies as they start (once the read model has the site).
  const first = await eventually(async () => (await gql(POLICIES, { s: siteId })).policies);
  const page = await newPage(browser);
  await signIn(page);
  await page.goto(`${SRS_URL}/policies?site=${siteId}`);
  await page.getByRole('heading', { name: 'Event detection policies' }).waitFor();

  // ---- event detection ----
  const detection = `Finance files ${Date.now()}`;
  await page.getByRole('button', { name: 'New event detection policy', exact: true }).click();
  let form = page.getByRole('form', { name: 'New event detection policy' });
  await form.getByLabel('Name', { exact: true }).fill(detection);
  const logged = form.getByRole('group', { name: 'Events logged' });
  for (const type of ['Logon', 'File Delete', 'Usb Mass Storage']) await logged.getByLabel(type, { exact: true }).check();
  await form.getByLabel('Monitored applications', { exact: true }).fill('excel.exe, winword.exe');
  await form.getByRole('button', { name: 'Add rule', exact: true }).click();
  await form.getByLabel('Rule name', { exact: true }).fill('Finance deletes');
  await form.getByLabel('Event type', { exact: true }).selectOption('FILE_DELETE');
  await form.getByLabel('Severity', { exact: true }).selectOption('HIGH');
  await form.getByLabel('Patterns', { exact: true }).fill('*\\finance\\*');
  await form.getByLabel('Users', { exact: true }).fill('CORP\\ann');
  await form.getByRole('button', { name: 'Save', exact: true }).click();
  await page.getByRole('heading', { name: new RegExp(`^${detection}`) }).waitFor();
  const made = await storedPolicy(siteId, 'eventDetection', detection);
  assert.deepEqual(made.definition.eventDetection, {
    name: detection,
    logged: ['LOGON', 'FILE_DELETE', 'USB_MASS_STORAGE'],
    monitoredApps: ['excel.exe', 'winword.exe'],
    rules: [{ name: 'Finance deletes', type: 'FILE_DELETE', severity: 'HIGH', patterns: ['*\\finance\\*'], idleSeconds: null, users: ['CORP\\ann'], groups: [], hosts: [] }],
  });

  // Edited: the form holds what is stored; the change is a new version.
  await page.getByRole('button', { name: `Edit ${detection}`, exact: true }).click();
  form = page.getByRole('form', { name: `Edit ${detection}` });
  assert.equal(await form.getByLabel('Patterns', { exact: true }).inputValue(), '*\\finance\\*');
  assert.equal(await form.getByRole('group', { name: 'Events logged' }).getByLabel('Usb Mass Storage', { exact: true }).isChecked(), true);
  await form.getByLabel('Severity', { exact: true }).selectOption('CRITICAL');
  await form.getByLabel('Patterns', { exact: true }).fill('*\\finance\\*, *\\payroll\\*');
  await form.getByRole('group', { name: 'Events logged' }).getByLabel('Usb Mass Storage', { exact: true }).uncheck();
  await form.getByRole('button', { name: 'Save', exact: true }).click();
  await page.getByRole('heading', { name: new RegExp(`^${detection}.*v${made.version + 1}$`) }).waitFor();
  await storedPolicy(siteId, 'eventDetection', detection, (p) => {
    assert.equal(p.version, made.version + 1);
    assert.deepEqual(p.definition.eventDetection.logged, ['LOGON', 'FILE_DELETE']);
    assert.equal(p.definition.eventDetection.rules[0].severity, 'CRITICAL');
    assert.deepEqual(p.definition.eventDetection.rules[0].patterns, ['*\\finance\\*', '*\\payroll\\*']);
  });

  // Activated, then the one active before again, then deleted.
  await activate(page, detection);
  await storedPolicy(siteId, 'eventDetection', detection, (p, all) => assert.equal(all.active.id, p.id));
  const before = first.eventDetection.all.find((p) => p.id === first.eventDetection.active.id);
  await activate(page, before.name);
  await page.getByRole('button', { name: `Delete ${detection}`, exact: true }).click();
  await page.getByRole('heading', { name: new RegExp(`^${detection}`) }).waitFor({ state: 'detached' });
  await gone(siteId, 'eventDetection', detection, before.id);

  // ---- event response ----
  const response = `Alert the SOC ${Date.now()}`;
  await page.getByRole('button', { name: 'New event response policy', exact: true }).click();
  form = page.getByRole('form', { name: 'New event response policy' });
  await form.getByLabel('Name', { exact: true }).fill(response);
  await form.getByRole('button', { name: 'Add rule', exact: true }).click();
  await form.getByLabel('Rule name', { exact: true }).fill('USB copies');
  await form.getByRole('group', { name: 'Event types' }).getByLabel('Usb Mass Storage', { exact: true }).check();
  await form.getByLabel('Minimum severity', { exact: true }).selectOption('MEDIUM');
  await form.getByRole('group', { name: 'Actions' }).getByLabel('Email Alert', { exact: true }).check();
  await form.getByRole('group', { name: 'Actions' }).getByLabel('Lock Session', { exact: true }).check();
  await form.getByLabel('Recipients', { exact: true }).fill('soc@corp.example');
  await form.getByLabel('Message', { exact: true }).fill('A USB copy to look at');
  await form.getByLabel('Cool-down (seconds)', { exact: true }).fill('300');
  await form.getByRole('button', { name: 'Save', exact: true }).click();
  await page.getByRole('heading', { name: new RegExp(`^${response}`) }).waitFor();
  const answered = await storedPolicy(siteId, 'eventResponse', response);
  assert.deepEqual(answered.definition.eventResponse, {
    name: response,
    rules: [{ name: 'USB copies', onSessionStart: false, types: ['USB_MASS_STORAGE'], minSeverity: 'MEDIUM', users: [], hosts: [], actions: ['EMAIL_ALERT', 'LOCK_SESSION'], recipients: ['soc@corp.example'], message: 'A USB copy to look at', cooldownSec: 300 }],
  });

  await page.getByRole('button', { name: `Edit ${response}`, exact: true }).click();
  form = page.getByRole('form', { name: `Edit ${response}` });
  assert.equal(await form.getByLabel('Cool-down (seconds)', { exact: true }).inputValue(), '300');
  await form.getByLabel('Cool-down (seconds)', { exact: true }).fill('600');
  await form.getByRole('group', { name: 'Actions' }).getByLabel('Lock Session', { exact: true }).uncheck();
  await form.getByRole('button', { name: 'Save', exact: true }).click();
  await page.getByRole('heading', { name: new RegExp(`^${response}.*v${answered.version + 1}$`) }).waitFor();
  await storedPolicy(siteId, 'eventResponse', response, (p) => {
    assert.equal(p.definition.eventResponse.rules[0].cooldownSec, 600);
    assert.deepEqual(p.definition.eventResponse.rules[0].actions, ['EMAIL_ALERT']);
  });

  await activate(page, response);
  await storedPolicy(siteId, 'eventResponse', response, (p, all) => assert.equal(all.active.id, p.id));
  const responseBefore = first.eventResponse.all.find((p) => p.id === first.eventResponse.active.id);
  await activate(page, responseBefore.name);
  await page.getByRole('button', { name: `Delete ${response}`, exact: true }).click();
  await page.getByRole('heading', { name: new RegExp(`^${response}`) }).waitFor({ state: 'detached' });
  await gone(siteId, 'eventResponse', response, responseBefore.id);
  await shootAndCheck(page, 'policies-forms');
  await page.context().close();
});

test('the recording policy test shows what evaluateRecordingPolicy answers', async () => {
  const siteId = (await gql('mutation($n: String!) { createSite(input: {name: $n}) { siteId } }', { n: `Policy test ${Date.now()}` })).createSite.siteId;
  const policy = (await gql(
    'mutation($s: ID!) { createRecordingPolicy(siteId: $s, input: { name: "Console test policy", rules: [{ name: "Finance on VDAs", action: RECORD_SCREEN_AND_EVENTS, notify: true, groups: ["CORP\\\\Finance"], hosts: ["vda-*"] }], fallback: RECORD_EVENTS_ONLY }) { policyId } }',
    { s: siteId },
  )).createRecordingPolicy.policyId;
  await gql('mutation($id: ID!) { activatePolicy(policyId: $id) { position } }', { id: policy });
  await storedPolicy(siteId, 'recording', 'Console test policy', (p, all) => assert.equal(all.active.id, p.id));
  const page = await newPage(browser);
  await signIn(page);
  await page.goto(`${SRS_URL}/policies?site=${siteId}`);
  await page.getByRole('heading', { name: 'Test the recording policy' }).waitFor();
  const titled = (s) => s.toLowerCase().split('_').map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join(' ');
  for (const session of [
    { user: 'CORP\\ann', groups: ['CORP\\Finance', 'CORP\\Staff'], host: 'vda-07', clientIp: '10.1.2.3', applications: ['excel.exe'] },
    { user: 'CORP\\bob', groups: ['CORP\\Staff'], host: 'vda-07', clientIp: null, applications: [] },
  ]) {
    await page.getByLabel('User (DOMAIN\\user)').fill(session.user);
    await page.getByLabel('Groups (comma-separated)').fill(session.groups.join(', '));
    await page.getByLabel('Host', { exact: true }).fill(session.host);
    await page.getByLabel('Client IP').fill(session.clientIp ?? '');
    await page.getByLabel('Applications (comma-separated)').fill(session.applications.join(', '));
    await page.getByRole('button', { name: 'Test', exact: true }).click();
    const answer = (await gql(
      'query($s: ID!, $session: SessionAttributesInput!) { evaluateRecordingPolicy(siteId: $s, session: $session) { policyName rule action notify records } }',
      { s: siteId, session: { ...session, deliveryGroup: null } },
    )).evaluateRecordingPolicy;
    const said = `${answer.records ? 'Recorded' : 'Not recorded'}: ${titled(answer.action)}${answer.notify ? ' with notification' : ''}, by ${answer.rule ? `rule “${answer.rule}” of ` : 'the fallback of '}${answer.policyName}.`;
    await page.getByRole('status').filter({ hasText: said }).waitFor();
  }
  // The two sessions got different answers: the rule, then the fallback.
  await page.getByRole('status').filter({ hasText: 'by the fallback of Console test policy' }).waitFor();
  await page.context().close();
});

test('an AUDITOR uses its pages without errors and cannot change configuration', async () => {
  const auditor = process.env.SRS_AUDITOR_TOKEN;
  assert.ok(auditor, 'SRS_AUDITOR_TOKEN is set (the demo writes <data>/auditor.token)');
  const page = await newPage(browser);
  await signIn(page, auditor);
  const links = await page.getByRole('navigation', { name: 'Main' }).getByRole('link').allInnerTexts();
  assert.deepEqual(links, ['Dashboard', 'Recordings', 'Live', 'Servers', 'Policies', 'Access', 'Audit']);
  for (const [path, ready] of [
    ['/', () => page.locator('dl.headline').waitFor()],
    ['/recordings', () => page.getByRole('table', { name: 'Recordings' }).waitFor()],
    ['/live', () => page.getByRole('table', { name: 'Live sessions' }).waitFor()],
    ['/servers', () => page.getByRole('table', { name: 'Servers' }).waitFor()],
    ['/policies', () => page.getByRole('heading', { name: 'Recording policies' }).waitFor()],
    ['/access', () => page.getByRole('table', { name: 'Playback permissions' }).waitFor()],
    ['/audit', () => page.getByRole('table', { name: 'History' }).waitFor()],
  ]) {
    await page.goto(`${SRS_URL}${path}`);
    await ready();
    await page.waitForLoadState('networkidle');
    assert.deepEqual(await page.getByRole('alert').allInnerTexts(), [], `${path}: no error`);
  }
  // Read-only: no configuration controls.
  await page.goto(`${SRS_URL}/servers`);
  await page.getByRole('table', { name: 'Servers' }).waitFor();
  assert.equal(await page.getByRole('button', { name: /^Edit settings|^Rotate token|^Connect$/ }).count(), 0);
  await page.goto(`${SRS_URL}/policies`);
  await page.getByRole('heading', { name: 'Recording policies' }).waitFor();
  assert.equal(await page.getByRole('button', { name: /^(New|Activate|Delete|Edit)/ }).count(), 0);
  await page.context().close();
});
