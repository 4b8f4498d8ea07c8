// The storefront: the sale (refreshed every 2 s), a countdown to its opening, one buy per intent,
// the hold's timer, the payment with Stripe Elements, the outcome.
//
// A sale with a waiting room: the buyer joins its queue (with a proof of work computed in a Web
// Worker, pages/pow.js, when the sale asks for one), the page asks about the place when the server
// says to (`retry_after_ms`: every second near the front, every 30 s an hour away), shows the
// position, a progress bar and the estimated wait, and the buy button once admitted; the admission
// token is kept for the tab (sessionStorage), as the Idempotency-Key is, and sent with the buy. A
// throttled request (429) is asked again after its Retry-After, never dropped.
//
// One Idempotency-Key per intent: it is made on the first click, kept in sessionStorage until the
// order is known, and sent again on every retry (a double click, no answer, a 5xx, a reload), so
// the API gives the same order back instead of a second one. The known order is kept too, so a
// reload shows it instead of offering to buy again.
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const sale = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop());
  const intentKey = `flashflow:intent:${sale}`;
  const orderKey = `flashflow:order:${sale}`;
  const ticketKey = `flashflow:ticket:${sale}`;
  const admissionKey = `flashflow:admission:${sale}`;
  let place = null; // the last status of this tab's place in the queue
  let firstAhead = null; // how many were ahead when the place was first seen waiting
  let config = { identity: 'header' };
  let info = null;
  let skew = 0; // server clock - device clock, ms
  let buying = false;
  let order = JSON.parse(sessionStorage.getItem(orderKey) || 'null');
  let stripe = null;
  let card = null;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const now = () => Date.now() + skew;

  // Who a JWT names (its `sub` claim), read only to show it: the API checks the token itself.
  function subOf(token) {
    try {
      const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const sub = JSON.parse(atob(part)).sub;
      return typeof sub === 'string' && sub ? sub : null;
    } catch (e) {
      return null;
    }
  }

  function showWho() {
    const token = sessionStorage.getItem('flashflow:token');
    $('who').hidden = !token;
    $('who-name').textContent = token ? (subOf(token) || 'an unnamed account') : '';
  }

  // The identity a link brings (`#token=`) never replaces a signed-in buyer silently: a link
  // someone else made would have the visitor pay for that account's order (login fixation). A
  // visitor not signed in is signed in by it (the sign-in page's redirect); one signed in as
  // someone else is asked, and nothing changes until they choose.
  function adoptLinkToken() {
    const offered = new URLSearchParams(location.hash.slice(1)).get('token');
    if (location.hash) history.replaceState(null, '', location.pathname + location.search);
    const current = sessionStorage.getItem('flashflow:token');
    if (!offered || offered === current) return;
    if (!current) {
      sessionStorage.setItem('flashflow:token', offered);
      return;
    }
    const [to, from] = [subOf(offered) || 'another account', subOf(current) || 'your account'];
    $('switch-to').textContent = to;
    $('switch-go-name').textContent = to;
    $('switch-from').textContent = from;
    $('switch-stay-name').textContent = from;
    $('switch').hidden = false;
    $('switch-stay').onclick = () => { $('switch').hidden = true; };
    $('switch-go').onclick = () => {
      sessionStorage.clear(); // the other account's order and intent stay theirs
      sessionStorage.setItem('flashflow:token', offered);
      location.reload();
    };
  }

  function say(text, kind) {
    const m = $('message');
    m.textContent = text;
    m.className = kind || '';
  }

  function headers(extra) {
    const h = Object.assign({ 'content-type': 'application/json' }, extra || {});
    if (config.identity === 'jwt') {
      // In AWS the site that signed the buyer in passes its JWT (see the README).
      const token = sessionStorage.getItem('flashflow:token');
      if (token) h.authorization = `Bearer ${token}`;
    } else {
      h['x-user-id'] = $('buyer').value.trim();
    }
    return h;
  }

  // `minor` units of `currency`, whose minor-unit digits the server says (`exponent`: 0 for JPY,
  // 2 for EUR, 3 for KWD): the price the buyer will be charged, never a guess.
  function money(minor, currency, exponent) {
    const digits = Number.isInteger(exponent) ? exponent : 2;
    const units = minor / Math.pow(10, digits);
    try {
      return new Intl.NumberFormat(undefined, {
        style: 'currency', currency: currency.toUpperCase(),
        minimumFractionDigits: digits, maximumFractionDigits: digits,
      }).format(units);
    } catch (e) {
      return `${units.toFixed(digits)} ${currency.toUpperCase()}`;
    }
  }

  function left(ms) {
    const s = Math.max(0, Math.ceil(ms / 1000));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return (h ? `${h}:${String(m).padStart(2, '0')}` : `${m}`) + `:${String(r).padStart(2, '0')}`;
  }

  const REFUSALS = {
    sold_out: 'Sold out. Every unit is taken.',
    insufficient_stock: 'Not that many left.',
    limit_reached: 'You already have as many as this sale allows.',
    sale_not_open: 'The sale has not opened yet.',
    sale_closed: 'The sale has closed.',
    sale_not_found: 'There is no such sale.',
    unauthenticated: 'Enter your name (or sign in) first.',
    invalid_buyer: 'That name cannot be used.',
    not_admitted: 'Your admission is not valid (it may have expired): join the queue again.',
    admission_used: 'Your turn bought an order already: join the queue again to buy again.',
    queue_not_open: 'The queue has not opened yet.',
    invalid_proof: 'The queue did not take the proof of work: try again.',
    entry_not_allowed: 'This drop is for verified accounts: sign in with an account whose phone number is verified.',
    already_entered: 'Someone with the same phone number is in this queue already: one place per person.',
  };

  async function refresh() {
    try {
      const r = await fetch(`/sales/${encodeURIComponent(sale)}`, { cache: 'no-store' });
      if (r.status === 404) {
        $('name').textContent = 'No such sale';
        say(REFUSALS.sale_not_found, 'error');
        return;
      }
      if (!r.ok) return;
      info = await r.json();
      skew = info.now_ms - Date.now();
      render();
    } catch (e) {
      // A refresh that fails is tried again on the next tick.
    }
  }

  function opensIn() {
    return info && info.opens_at ? Date.parse(info.opens_at) - now() : 0;
  }

  function render() {
    if (!info) return;
    $('name').textContent = info.name || info.id;
    document.title = `${info.name || info.id} · FlashFlow`;
    $('price').textContent = info.price
      ? money(info.price, info.currency, info.currency_exponent) : '';
    $('remaining').textContent = info.remaining;
    $('remaining-label').textContent = `of ${info.stock} left`;
    const wait = opensIn();
    const cd = $('countdown');
    cd.hidden = wait <= 0;
    if (wait > 0) cd.textContent = `Opens in ${left(wait)}`;
    const closed = info.closes_at && Date.parse(info.closes_at) <= now();
    const room = !!info.waiting_room;
    $('queue').hidden = !room || !!order;
    const admitted = !room || (place && place.state === 'admitted');
    $('buy').hidden = !admitted;
    $('buy').disabled = buying || !!order || wait > 0 || closed || info.remaining <= 0 || !admitted;
    if (room) renderQueue();
    if (!order && !buying && info.remaining <= 0 && (!room || !place || place.state !== 'waiting')) {
      say(REFUSALS.sold_out, 'error');
    }
  }

  // ---- the waiting room
  function renderQueue() {
    const state = $('queue-state'), detail = $('queue-detail'), bar = $('queue-progress');
    const joinOpens = Date.parse(info.waiting_room.opens_at) - now();
    $('join').hidden = !!place && !['expired', 'used', 'rejoin'].includes(place.state);
    $('draw-link').href = `/shop/${encodeURIComponent(sale)}/draw`;
    $('join').disabled = joinOpens > 0;
    bar.hidden = true;
    detail.textContent = '';
    if (!place) {
      state.textContent = joinOpens > 0
        ? `The queue opens in ${left(joinOpens)}.`
        : 'This sale lets buyers in through a queue. Join it: where you stand does not depend on how fast you click.';
      const entry = info.waiting_room.entry;
      if (entry) {
        const asks = Object.keys(entry.require_claims || {}).map((c) => c.replace(/_/g, ' '));
        detail.textContent = [
          asks.length ? `For signed-in accounts with: ${asks.join(', ')}.` : '',
          entry.one_per ? `One place per ${entry.one_per.replace(/_/g, ' ')}.` : '',
        ].filter(Boolean).join(' ');
      }
      return;
    }
    if (place.state === 'waiting' && place.position == null) {
      state.textContent = "You're in the queue.";
      detail.textContent = 'Everyone who joined before the opening is drawn into a random order then.';
      return;
    }
    if (place.state === 'drawing') {
      state.textContent = 'The sale has opened: the draw is being made.';
      detail.textContent = "It waits for a public beacon's random round, due in a few seconds, so nobody could know the order in advance.";
      return;
    }
    if (place.state === 'waiting') {
      if (firstAhead == null) firstAhead = Math.max(place.ahead, 1);
      state.textContent = `You're number ${place.position} in line` +
        (place.ahead ? ` (${place.ahead} ahead of you).` : ': next!');
      bar.hidden = false;
      bar.value = Math.max(0, Math.min(1, 1 - place.ahead / firstAhead));
      if (place.held != null) {
        detail.textContent = place.held > 0
          ? `Sold out for now: ${place.held} held for payment may come back. Keep your place.`
          : 'Sold out for now.';
      } else if (place.eta_seconds != null) {
        detail.textContent = `About ${left(place.eta_seconds * 1000)} to wait.`;
      }
      return;
    }
    if (place.state === 'admitted') {
      const until = Date.parse(place.admission_expires_at) - now();
      state.textContent = "It's your turn: you may buy now.";
      detail.textContent = until > 0 ? `Your turn lasts ${left(until)} more.` : '';
      return;
    }
    if (place.state === 'expired') {
      state.textContent = 'Your turn passed unused. Join again to queue at the back.';
      return;
    }
    if (place.state === 'used') {
      state.textContent = 'Your turn bought an order. To buy again, join again at the back.';
      return;
    }
    if (place.state === 'closed') {
      state.textContent = 'The sale has closed: the queue admits nobody any more.';
      return;
    }
    if (place.state === 'rejoin') {
      state.textContent = 'The queue was rebuilt and your place was lost with it: join again.';
      return;
    }
    if (place.state === 'sold_out') {
      state.textContent = 'Sold out: the queue will not reach your place. Sorry.';
    }
  }

  // A nonce such that SHA-256(challenge ‖ nonce) starts with `bits` zero bits: found in a Web
  // Worker (pages/pow.js), hashing in batches off the page's thread.
  function proofOfWork(challenge, bits) {
    return new Promise((resolve, reject) => {
      const worker = new Worker('/pages/pow.js');
      worker.onmessage = (e) => {
        if (e.data.progress) {
          $('queue-detail').textContent = `Proving you are not a script… (${e.data.progress})`;
          return;
        }
        worker.terminate();
        resolve(e.data.nonce);
      };
      worker.onerror = (e) => { worker.terminate(); reject(e); };
      worker.postMessage({ challenge, bits });
    });
  }

  async function join() {
    if (config.identity !== 'jwt' && !$('buyer').value.trim()) {
      say(REFUSALS.unauthenticated, 'error');
      $('buyer').focus();
      return;
    }
    localStorage.setItem('flashflow:buyer', $('buyer').value.trim());
    $('join').disabled = true;
    try {
      let body;
      const c = await fetch(`/sales/${encodeURIComponent(sale)}/queue/challenge`, { headers: headers() });
      const challenge = await c.json().catch(() => ({}));
      if (c.ok && challenge.bits > 0) {
        const nonce = await proofOfWork(challenge.challenge, challenge.bits);
        body = JSON.stringify({ challenge: challenge.challenge, nonce });
      }
      const r = await fetch(`/sales/${encodeURIComponent(sale)}/queue`, { method: 'POST', headers: headers(), body });
      const b = await r.json().catch(() => ({}));
      if (r.status === 429) {
        const s = Number(r.headers.get('retry-after') || 5);
        say(`Too many tries: join again in ${s} s.`, 'error');
        return;
      }
      if (!r.ok) {
        say(REFUSALS[b.error] || b.message || `The queue refused (${r.status}).`, 'error');
        return;
      }
      say('');
      sessionStorage.removeItem(admissionKey);
      sessionStorage.setItem(ticketKey, b.ticket);
      firstAhead = null;
      seen(b);
    } catch (e) {
      say('The queue did not answer: try again.', 'error');
    } finally {
      $('join').disabled = false;
      render();
    }
  }

  function seen(status) {
    place = status;
    if (status.state === 'admitted' && status.admission_token) {
      sessionStorage.setItem(admissionKey, status.admission_token);
    }
  }

  // Asks about the place, then says when to ask again (ms): when the server said (its
  // retry_after_ms, or a 429's or 503's Retry-After), a second when there is nothing to ask yet,
  // never while nothing will change by itself (admitted, used, expired, sold out, closed).
  async function poll() {
    const ticket = sessionStorage.getItem(ticketKey);
    if (!ticket || !info || !info.waiting_room || order) return 1000;
    let next = 2000;
    try {
      const r = await fetch(`/sales/${encodeURIComponent(sale)}/queue/${encodeURIComponent(ticket)}`,
        { headers: headers(), cache: 'no-store' });
      if (r.status === 404) {
        sessionStorage.removeItem(ticketKey); // another buyer's ticket, or a queue gone
        place = null;
        next = 1000;
      } else if (r.ok) {
        seen(await r.json());
        next = place.retry_after_ms == null ? null : place.retry_after_ms;
      } else {
        // Throttled or away: transient, asked again when the server says.
        next = 1000 * Number(r.headers.get('retry-after') || 2);
      }
    } catch (e) { /* asked again below */ }
    render();
    return next;
  }

  async function pollLoop() {
    for (;;) {
      const next = await poll();
      // Nothing will change by itself: look again only when the page changes it (a join).
      await sleep(next == null ? 1000 : next);
      if (next == null) {
        while (place && place.retry_after_ms == null && sessionStorage.getItem(ticketKey) === place.ticket) {
          await sleep(1000);
          // An admission that runs out, or a sale reopened, shows at the next refresh.
          if (place.state === 'admitted' && Date.parse(place.admission_expires_at) <= now()) break;
        }
      }
    }
  }

  async function buy(ev) {
    ev.preventDefault();
    if (buying || order) return; // a second click while the first is on its way: the same intent
    if (config.identity !== 'jwt' && !$('buyer').value.trim()) {
      say(REFUSALS.unauthenticated, 'error');
      $('buyer').focus();
      return;
    }
    buying = true;
    $('buy').disabled = true;
    localStorage.setItem('flashflow:buyer', $('buyer').value.trim());
    let key = sessionStorage.getItem(intentKey);
    if (!key) {
      key = crypto.randomUUID();
      sessionStorage.setItem(intentKey, key);
    }
    say('Buying…');
    try {
      for (let attempt = 0; ; attempt++) {
        let r = null, body = {};
        try {
          const extra = { 'idempotency-key': key };
          const admission = sessionStorage.getItem(admissionKey);
          if (admission) extra['admission-token'] = admission;
          r = await fetch(`/sales/${encodeURIComponent(sale)}/buy`, {
            method: 'POST', headers: headers(extra), body: '{"quantity":1}',
          });
          body = await r.json().catch(() => ({}));
        } catch (e) {
          r = null; // no answer: the order may exist; the same key asks again
        }
        if (r && (r.status === 202 || r.status === 200)) {
          known({ order_id: body.order_id, buyer: $('buyer').value.trim() });
          say(body.pay_by ? 'Reserved: it is yours until the timer runs out.' : 'Reserved!', 'ok');
          return;
        }
        if (r && r.status === 429) {
          // Throttled (this buyer's attempts, or the API's rate): nothing was reserved, and the
          // intent stands: the same key asks again after the wait.
          const s = Number(r.headers.get('retry-after') || 5);
          say(`Too many attempts: asking again in ${s} s.`);
          if (attempt >= 8) {
            say('The shop is busy. Your request is kept: reload to ask again.', 'error');
            return;
          }
          await sleep(s * 1000);
          continue;
        }
        if (r && r.status >= 400 && r.status < 500 && r.status !== 408) {
          say(REFUSALS[body.error] || body.message || `Refused (${r.status}).`, 'error');
          sessionStorage.removeItem(intentKey);
          return;
        }
        // 408, 5xx (outcome_unknown names the order), or no answer: ask again with the same key.
        if (body.error === 'outcome_unknown') say('The outcome is not known yet: asking again…');
        else say('No answer yet: asking again…');
        if (attempt >= 8) {
          say('The shop does not answer. Your request is kept: reload to ask again.', 'error');
          return;
        }
        const s = Number((r && r.headers.get('retry-after')) || 1);
        await sleep(Math.min(5000, s * 1000 * (attempt + 1)));
      }
    } finally {
      buying = false;
      render();
    }
  }

  function known(o) {
    order = o;
    sessionStorage.setItem(orderKey, JSON.stringify(o));
    sessionStorage.removeItem(intentKey);
    $('order').hidden = false;
    $('order-id').textContent = o.order_id;
    track();
  }

  const FINAL = {
    CONFIRMED: ['Paid: it is yours.', 'ok'],
    EXPIRED: ['The hold ran out before payment; the unit went back on sale.', 'error'],
    CANCELLED: ['Cancelled; the unit went back on sale.', 'error'],
    REFUNDED: ['Paid after the hold ended: your payment was refunded.', 'error'],
    REJECTED: ['The order could not be accepted.', 'error'],
  };

  async function track() {
    let payBy = null;
    for (;;) {
      let status = null;
      try {
        const r = await fetch(`/orders/${order.order_id}`, { headers: headers(), cache: 'no-store' });
        if (r.ok) {
          const o = await r.json();
          status = o.status;
          if (o.pay_by) payBy = Date.parse(o.pay_by);
        }
      } catch (e) { /* asked again below */ }
      if (status) $('order-status').textContent = status;
      if (status === 'HELD' && payBy) showPayment(payBy);
      if (FINAL[status] || status === 'DUPLICATE') {
        $('pay-form').hidden = true;
        $('hold').hidden = true;
        const [text, kind] = FINAL[status] || ['This order repeats an earlier one.', ''];
        say(text, kind);
        if (status === 'CONFIRMED') $('order-status').textContent = 'CONFIRMED';
        return;
      }
      await sleep(1000);
    }
  }

  function showPayment(payBy) {
    const hold = $('hold');
    hold.hidden = false;
    const tick = () => {
      const ms = payBy - now();
      hold.textContent = ms > 0 ? `Pay within ${left(ms)}` : 'The hold has run out.';
      if (ms > 0 && !hold.hidden) setTimeout(tick, 500);
    };
    if (!hold.dataset.ticking) {
      hold.dataset.ticking = '1';
      tick();
    }
    if (!$('pay-form').hidden || !window.Stripe) return;
    $('pay-form').hidden = false;
    if (!stripe) {
      stripe = window.Stripe(config.stripe_key);
      card = stripe.elements().create('card');
      card.mount('#card');
    }
  }

  async function pay(ev) {
    ev.preventDefault();
    const button = $('pay');
    if (button.disabled) return;
    button.disabled = true;
    say('Paying…');
    try {
      const r = await fetch(`/orders/${order.order_id}/payment`, { method: 'POST', headers: headers() });
      const p = await r.json().catch(() => ({}));
      if (!r.ok) {
        say(p.error === 'hold_expired' ? FINAL.EXPIRED[0] : (p.message || 'The payment could not start.'), 'error');
        return;
      }
      const result = await stripe.confirmCardPayment(p.client_secret, { payment_method: { card } });
      if (result.error) {
        say(`The card was refused: ${result.error.message || 'try another'}.`, 'error');
        return;
      }
      // The order becomes CONFIRMED when Stripe tells the shop, never on the page's word.
      say('Payment sent: waiting for the confirmation…');
    } catch (e) {
      say('The payment did not go through: try again.', 'error');
    } finally {
      button.disabled = false;
    }
  }

  async function cancel() {
    const r = await fetch(`/orders/${order.order_id}/cancel`, { method: 'POST', headers: headers() });
    const b = await r.json().catch(() => ({}));
    if (!r.ok) say(b.message || 'The order could not be cancelled.', 'error');
  }

  function loadStripe() {
    if (!config.stripe_js || window.Stripe) return;
    const s = document.createElement('script');
    s.src = config.stripe_js;
    document.head.appendChild(s);
  }

  async function start() {
    try {
      const r = await fetch('/pages/config.json');
      if (r.ok) config = await r.json();
    } catch (e) { /* the defaults */ }
    // The local server takes a name or a signed-in token: a link that brings a token (a sale whose
    // queue asks for verified claims) signs this tab in, as in AWS.
    if (location.hash.includes('token=') || sessionStorage.getItem('flashflow:token')) {
      config.identity = 'jwt';
    }
    if (config.identity === 'jwt') {
      adoptLinkToken();
      showWho();
      // A link followed on this very page changes only the fragment: the same rule applies.
      window.addEventListener('hashchange', () => { adoptLinkToken(); showWho(); });
      $('sign-out').onclick = () => {
        sessionStorage.clear();
        location.reload();
      };
      $('buyer').hidden = true;
      $('who-label').hidden = true;
      $('buyer').required = false;
    } else {
      $('buyer').value = $('buyer').value || localStorage.getItem('flashflow:buyer') || '';
    }
    loadStripe();
    $('buy-form').addEventListener('submit', buy);
    $('pay-form').addEventListener('submit', pay);
    $('cancel').addEventListener('click', cancel);
    $('join').addEventListener('click', join);
    await refresh();
    setInterval(refresh, 2000);
    setInterval(render, 500);
    pollLoop();
    if (order) {
      $('buyer').value = order.buyer || $('buyer').value;
      known(order);
    } else if (sessionStorage.getItem(intentKey)) {
      // A reload while a buy was on its way: ask again with its key to learn the answer.
      buy(new Event('submit'));
    }
  }

  start();
})();
