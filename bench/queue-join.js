// k6: a burst of distinct buyers joining a sale's queue as an arrival rate (k6 counts arrivals it
// could not start as dropped_iterations). Against the ceiling the same rate POSTs its buy route.
//   k6 run -e URL=http://127.0.0.1:3080/sales/<id>/queue -e RATE=5000 bench/queue-join.js
import http from 'k6/http';

const rate = Number(__ENV.RATE || 5000);

export const options = {
  scenarios: {
    joins: {
      executor: 'constant-arrival-rate',
      rate,
      timeUnit: '1s',
      duration: __ENV.HOLD || '3s',
      preAllocatedVUs: Number(__ENV.VUS || 500),
      maxVUs: Number(__ENV.MAX_VUS || 2000),
    },
  },
  summaryTrendStats: ['med', 'p(99)', 'max'],
  discardResponseBodies: true,
};

export default function () {
  http.post(__ENV.URL, null, {
    headers: { 'x-user-id': `join-${__VU}-${__ITER}` },
    responseCallback: http.expectedStatuses(200, 201, 202),
  });
}

export function handleSummary(data) {
  const out = {};
  out[__ENV.SUMMARY || 'queue-join-summary.json'] = JSON.stringify(data);
  return out;
}
