// k6 scenario: a flash sale. VUS virtual users hammer POST /sales/$SALE/buy for DURATION, each
// request as a distinct buyer. Writes the end-of-test summary as JSON to $SUMMARY.
import http from 'k6/http';
import { Counter } from 'k6/metrics';

const accepted = new Counter('buy_accepted');   // 202
const soldOut = new Counter('buy_sold_out');    // 409 sold_out / insufficient_stock
const other = new Counter('buy_other');         // anything else

export const options = {
  scenarios: {
    flash: { executor: 'constant-vus', vus: Number(__ENV.VUS || 100), duration: __ENV.DURATION || '5s' },
  },
  summaryTrendStats: ['avg', 'med', 'p(99)', 'max'],
  discardResponseBodies: true,
};

export default function () {
  const res = http.post(`${__ENV.API}/sales/${__ENV.SALE}/buy`, null, {
    headers: { 'x-user-id': `k6-${__VU}-${__ITER}` },
  });
  if (res.status === 202) accepted.add(1);
  else if (res.status === 409) soldOut.add(1);
  else other.add(1);
}

export function handleSummary(data) {
  return { [__ENV.SUMMARY || 'summary.json']: JSON.stringify(data) };
}
