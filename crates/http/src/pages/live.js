// The live sale view: one snapshot a second from GET /admin/sales/{id}/live, shown as numbers and
// small time series (the last two minutes). Rates are the differences of the snapshot's counters.
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const sale = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop());
  const KEEP = 120;
  const series = {};
  let last = null;
  $('sale').textContent = sale;

  const NUMBERS = [
    ['remaining', 'remaining'], ['reserved', 'reserved'], ['pending', 'pending'],
    ['held', 'held'], ['paid', 'paid'], ['expired', 'expired'], ['cancelled', 'cancelled'],
    ['refunded', 'refunded'], ['accepted_per_s', 'accepted/s'], ['sold_out_per_s', 'sold out/s'],
    ['queue_depth', 'queue'], ['dlq_depth', 'DLQ'], ['settlement_lag_s', 'settlement lag (s)'],
  ];
  // A sale with a waiting room: its queue too.
  const ROOM = [
    ['waiting', 'waiting'], ['admitted', 'admitted'], ['used', 'used'], ['outstanding', 'admitted, unused'],
    ['no_show_pct', 'no-shows %'], ['admitted_per_second', 'admitted/s'],
    ['eta_last_seconds', 'wait of the last (s)'], ['paused', 'paused'],
  ];
  const CHARTS = ['remaining', 'accepted_per_s', 'sold_out_per_s', 'pending', 'held'];

  function token() {
    return sessionStorage.getItem('flashflow:operator') || '';
  }

  function ask() {
    const f = $('auth');
    f.hidden = false;
    f.addEventListener('submit', (ev) => {
      ev.preventDefault();
      sessionStorage.setItem('flashflow:operator', $('token').value);
      f.hidden = true;
      poll();
    }, { once: true });
    $('token').focus();
  }

  function spark(values) {
    const w = 200, h = 60;
    const max = Math.max(1, ...values), n = Math.max(1, values.length - 1);
    const pts = values.map((v, i) => `${(i / n) * w},${h - (v / max) * (h - 4) - 2}`).join(' ');
    return `<svg viewBox="0 0 ${w} ${h}" preserveAspectRatio="none" role="img" aria-label="last ${values.length} s">` +
      `<polyline fill="none" stroke="#1f5fd6" stroke-width="2" points="${pts}"/></svg>`;
  }

  function show(s) {
    const view = Object.assign({}, s);
    if (last) {
      const dt = Math.max(0.001, (s.at_ms - last.at_ms) / 1000);
      view.accepted_per_s = Math.max(0, Math.round((s.accepted - last.accepted) / dt));
      view.sold_out_per_s = Math.max(0, Math.round((s.sold_out_answers - last.sold_out_answers) / dt));
    } else {
      view.accepted_per_s = 0;
      view.sold_out_per_s = 0;
    }
    view.settlement_lag_s = s.oldest_pending_ms == null ? 0 : Math.round((s.at_ms - s.oldest_pending_ms) / 100) / 10;
    last = s;
    const rows = NUMBERS.slice();
    if (s.waiting_room) {
      Object.assign(view, s.waiting_room);
      view.no_show_pct = Math.round(s.waiting_room.no_show_rate * 100);
      view.paused = s.waiting_room.paused ? 'yes' : 'no';
      rows.push(...ROOM);
    }
    $('numbers').innerHTML = rows.map(([k, label]) =>
      `<div class="stat" data-name="${k}">${label}<b>${view[k] == null ? '–' : view[k]}</b></div>`).join('');
    if (s.waiting_room) {
      const r = s.waiting_room;
      $('draw').hidden = false;
      $('draw').textContent = `Draw: commitment ${r.commitment}` +
        (r.seed ? `; seed ${r.seed}, ${r.cohort} in the pre-queue` : '; seed revealed at the opening');
    }
    for (const k of CHARTS) {
      (series[k] = series[k] || []).push(Number(view[k]) || 0);
      if (series[k].length > KEEP) series[k].shift();
    }
    $('charts').innerHTML = CHARTS.map((k) =>
      `<div class="chart">${NUMBERS.find(([n]) => n === k)[1]}${spark(series[k])}</div>`).join('');
  }

  async function poll() {
    for (;;) {
      try {
        const r = await fetch(`/admin/sales/${encodeURIComponent(sale)}/live`, {
          headers: { authorization: `Bearer ${token()}` }, cache: 'no-store',
        });
        if (r.status === 401 || r.status === 403) {
          $('message').textContent = 'The operator token was refused.';
          sessionStorage.removeItem('flashflow:operator');
          ask();
          return;
        }
        if (r.ok) {
          $('message').textContent = '';
          show(await r.json());
        } else {
          $('message').textContent = `The snapshot answered ${r.status}.`;
        }
      } catch (e) {
        $('message').textContent = 'No answer: retrying.';
      }
      await new Promise((res) => setTimeout(res, 1000));
    }
  }

  if (token()) poll(); else ask();
})();
