// k6 smoke test of a deployed FlashFlow: a small flash sale bought by ONE authenticated buyer (the
// JWT in TOKEN), so the per-buyer limit is the thing under test: exactly LIMIT buys are accepted (202),
// every other one is refused with 403 limit_reached, nothing answers 5xx, and each accepted order
// reaches CONFIRMED through SQS, settle and DynamoDB.
//   k6 run -e API=https://... -e TOKEN=<jwt> -e SALE=<id> -e LIMIT=3 bench/smoke.js
// (USER_ID adds the local X-User-Id header, for a dry run against the local stack.)
import http from 'k6/http';
import { check, sleep } from 'k6';
import { Counter } from 'k6/metrics';

const accepted = new Counter('smoke_accepted');
const limited = new Counter('smoke_limit_reached');
const confirmed = new Counter('smoke_confirmed');

export const options = {
  scenarios: {
    opening: { executor: 'shared-iterations', vus: Number(__ENV.VUS || 10), iterations: Number(__ENV.BUYS || 30), maxDuration: '30s' },
  },
  thresholds: {
    'http_req_failed{expected_response:true}': ['rate==0'],
    'checks': ['rate==1'],
    'http_req_duration{name:buy}': ['p(99)<1500'],
    smoke_accepted: [`count==${Number(__ENV.LIMIT || 3)}`],
    smoke_confirmed: [`count==${Number(__ENV.LIMIT || 3)}`],
  },
  summaryTrendStats: ['med', 'p(99)', 'max'],
};

function headers() {
  // A dry run on the local stack names the buyer with X-User-Id (there is no JWT authorizer
  // there, and a bearer token would be taken for an operator's).
  if (__ENV.USER_ID) return { 'x-user-id': __ENV.USER_ID, 'content-type': 'application/json' };
  return { authorization: `Bearer ${__ENV.TOKEN}`, 'content-type': 'application/json' };
}

export function setup() {
  return { started: Date.now() };
}

export default function () {
  const h = headers();
  h['idempotency-key'] = `smoke-${__VU}-${__ITER}-${Date.now()}`;
  const res = http.post(`${__ENV.API}/sales/${__ENV.SALE}/buy`, '{"quantity":1}', {
    headers: h, tags: { name: 'buy' }, responseCallback: http.expectedStatuses(202, 403),
  });
  check(res, { 'buy answers 202 or 403 limit_reached': (r) =>
    r.status === 202 || (r.status === 403 && r.json('error') === 'limit_reached') });
  if (res.status !== 202) { limited.add(1); return; }
  accepted.add(1);
  const id = res.json('order_id');
  // Poll the order until it settles (10 s at most).
  for (let i = 0; i < 40; i++) {
    const s = http.get(`${__ENV.API}/orders/${id}`, { headers: headers(), tags: { name: 'status' },
      responseCallback: http.expectedStatuses(200, 404) });
    if (s.status === 200 && s.json('status') === 'CONFIRMED') { confirmed.add(1); return; }
    sleep(0.25);
  }
  check(null, { [`order ${id} confirmed within 10 s`]: () => false });
}
