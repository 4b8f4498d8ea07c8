// k6: the opening second of a flash sale as an arrival rate (buyers arrive whether or not the
// server keeps up; k6 counts the arrivals it could not start as dropped_iterations). Distinct buyers.
//   k6 run -e API=http://127.0.0.1:3080 -e SALE=<id> -e RATE=1500 -e P99_MS=50 bench/opening.js
// Thresholds: p99 under P99_MS, fewer than 1% failed requests, no dropped arrivals. With
// K6_WEB_DASHBOARD=true K6_WEB_DASHBOARD_EXPORT=<file>.html k6 writes its HTML report.
import http from 'k6/http';
import { Counter } from 'k6/metrics';

const accepted = new Counter('buy_accepted');
const soldOut = new Counter('buy_sold_out');
const rate = Number(__ENV.RATE || 1500);

export const options = {
  scenarios: {
    opening: {
      executor: 'ramping-arrival-rate',
      startRate: 0,
      timeUnit: '1s',
      preAllocatedVUs: Number(__ENV.VUS || 200),
      maxVUs: Number(__ENV.MAX_VUS || 1000),
      stages: [
        { target: rate, duration: '200ms' },  // the doors open
        { target: rate, duration: __ENV.HOLD || '3s' },
        { target: 0, duration: '200ms' },
      ],
    },
  },
  thresholds: {
    http_req_duration: [`p(99)<${Number(__ENV.P99_MS || 50)}`],
    http_req_failed: ['rate<0.01'],
    dropped_iterations: ['count<1'],
  },
  summaryTrendStats: ['med', 'p(99)', 'max'],
  discardResponseBodies: true,
};

export default function () {
  const res = http.post(`${__ENV.API}/sales/${__ENV.SALE}/buy`, null, {
    headers: { 'x-user-id': `open-${__VU}-${__ITER}` },
    responseCallback: http.expectedStatuses(202, 409),
  });
  if (res.status === 202) accepted.add(1);
  else if (res.status === 409) soldOut.add(1);
}

export function handleSummary(data) {
  const out = {};
  out[__ENV.SUMMARY || 'opening-summary.json'] = JSON.stringify(data);
  return out;
}
