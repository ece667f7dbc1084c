// How long the console's dashboard takes to paint its numbers, against a
// running srs (SRS_URL, SRS_ADMIN_TOKEN), e.g. `srs serve --demo`:
//
//   SRS_URL=http://127.0.0.1:8080 SRS_ADMIN_TOKEN=$(cat demo-data/admin.token) \
//     npm run --prefix console bench
//
// Each round loads `/` in a fresh tab (its code from the browser's cache
// after the first) and times navigation start -> the headline counts in
// the page. The baseline, measured in the same run: the very dashboard
// query the page sent, posted from Node.js (the server's share). Every
// round's range ends at a different instant, so no answer is reused.
import { launch, newPage, signIn, SRS_URL, ADMIN } from '../tests/helpers.mjs';

const ROUNDS = Number(process.env.SRS_BENCH_ROUNDS || 15);

function quantile(values, q) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

const browser = await launch();
try {
  const page = await newPage(browser);
  await signIn(page);
  let body = null;
  page.on('request', (request) => {
    if (request.url().endsWith('/graphql') && request.postData()?.includes('dashboard(')) body = request.postData();
  });
  const paints = [];
  const queries = [];
  for (let round = 0; round < ROUNDS; round++) {
    await page.goto(`${SRS_URL}/?round=${round}`);
    await page.locator('dl.headline dd').first().waitFor();
    paints.push(await page.evaluate(() => performance.now()));
    if (!body) throw new Error('the page sent no dashboard query');
    const sent = JSON.parse(body);
    sent.variables.from = new Date(Date.now() - 30 * 86400_000).toISOString();
    const started = performance.now();
    const response = await fetch(`${SRS_URL}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
      body: JSON.stringify(sent),
    });
    const answer = await response.json();
    if (answer.errors?.length) throw new Error(JSON.stringify(answer.errors));
    queries.push(performance.now() - started);
  }
  const [paint50, paint95] = [quantile(paints, 0.5), quantile(paints, 0.95)];
  const [query50, query95] = [quantile(queries, 0.5), quantile(queries, 0.95)];
  console.log(`rounds: ${ROUNDS}`);
  console.log(`dashboard paint ms: p50 ${paint50.toFixed(0)}, p95 ${paint95.toFixed(0)}, max ${Math.max(...paints).toFixed(0)} (target: 1000)`);
  console.log(`baseline dashboard query ms: p50 ${query50.toFixed(1)}, p95 ${query95.toFixed(1)}`);
  console.log(`paint / query at p50: ${(paint50 / query50).toFixed(1)}x`);
} finally {
  await browser.close();
}
