// The draw page (/shop/{sale}/draw): the draw's record (GET /sales/{sale}/queue/draw), and for a
// buyer who joined from this tab (their ticket in sessionStorage, as the storefront keeps it) their
// place recomputed here, from the record alone, with docs/api.md's algorithm (ff-draw-v2):
//   key    = SHA-256(seed ‖ randomness ‖ join_root)   (no randomness when the record says fallback)
//   stream = SHA-256(key ‖ be64(0)), SHA-256(key ‖ be64(1)), … read as big-endian u64s
//   Fisher–Yates over the join indexes 0..cohort-1, from the last down, j = below(i + 1)
// and the ticket's entry in the join list checked against the root (RFC 9162's audit path check,
// leaf = SHA-256(0x00 ‖ ticket), node = SHA-256(0x01 ‖ left ‖ right)). The round's BLS signature
// is checked by the server against the chain's key; anyone can read the round at its link.
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const sale = decodeURIComponent(location.pathname.split('/')[2] || '');
  const ticketKey = `flashflow:ticket:${sale}`;

  const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  const bytes = (h) => new Uint8Array((h.match(/../g) || []).map((x) => parseInt(x, 16)));
  const text = (s) => new TextEncoder().encode(s);
  function concat(parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  }
  async function sha(...parts) {
    return new Uint8Array(await crypto.subtle.digest('SHA-256', concat(parts)));
  }
  const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  function be64(n) {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, n);
    return b;
  }

  // The place (1-based) of join `index` among `n`, under `key`.
  async function placeOf(key, n, index) {
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    let block = 0n;
    let words = [];
    const next = async () => {
      if (!words.length) {
        const d = new DataView((await sha(key, be64(block++))).buffer);
        words = [0, 8, 16, 24].map((o) => d.getBigUint64(o));
      }
      return words.shift();
    };
    const max = (1n << 64n) - 1n;
    for (let i = n - 1; i >= 1; i--) {
      const m = BigInt(i + 1);
      const limit = (max / m) * m;
      let x = await next();
      while (x >= limit) x = await next();
      const j = Number(x % m);
      [order[i], order[j]] = [order[j], order[i]];
    }
    return order.indexOf(index) + 1;
  }

  // RFC 9162 §2.1.3.2: does `proof` show `leaf` at `index` in a tree of `size` leaves with `root`?
  async function inList(root, index, size, leaf, proof) {
    if (index >= size) return false;
    let f = index, s = size - 1, r = leaf;
    for (const p of proof) {
      if (s === 0) return false;
      if ((f & 1) === 1 || f === s) {
        r = await sha(new Uint8Array([1]), p, r);
        while ((f & 1) === 0 && f !== 0) { f >>= 1; s >>= 1; }
      } else {
        r = await sha(new Uint8Array([1]), r, p);
      }
      f >>= 1; s >>= 1;
    }
    return s === 0 && same(r, root);
  }

  let config = { identity: 'header' };
  function headers() {
    const h = {};
    if (config.identity === 'jwt' || sessionStorage.getItem('flashflow:token')) {
      const token = sessionStorage.getItem('flashflow:token');
      if (token) h.authorization = `Bearer ${token}`;
    } else {
      h['x-user-id'] = localStorage.getItem('flashflow:buyer') || '';
    }
    return h;
  }

  const mark = (ok) => (ok ? '✔' : '✘');

  async function showMine(record, root, key) {
    const ticket = sessionStorage.getItem(ticketKey);
    if (!ticket) return;
    const r = await fetch(`/sales/${encodeURIComponent(sale)}/queue/${encodeURIComponent(ticket)}`,
      { headers: headers(), cache: 'no-store' });
    if (!r.ok) return;
    const place = await r.json();
    $('mine').hidden = false;
    if (place.join_index == null) {
      $('my-place').textContent = 'You joined after the opening: first come, first served, behind everyone drawn.';
      return;
    }
    if (!place.join_proof) {
      $('my-place').textContent = 'Your place is being drawn.';
      return;
    }
    const leaf = await sha(new Uint8Array([0]), text(place.ticket));
    const entered = await inList(root, place.join_index, record.cohort, leaf,
      place.join_proof.map(bytes));
    const n = await placeOf(key, record.cohort, place.join_index);
    $('my-place').textContent = entered
      ? `Your place ${n}, recomputed in your browser from these values: ✔`
      : `Your ticket is not in the join list this draw used: ✘`;
    $('my-entry').textContent = `You joined ${place.join_index + 1}${['st', 'nd', 'rd'][place.join_index] || 'th'}` +
      ` of ${record.cohort}; your ticket's entry checks out against the root: ${mark(entered)}`;
  }

  async function render(record) {
    $('commitment').textContent = record.commitment;
    $('round').textContent = `#${record.beacon.round}`;
    $('round').href = record.beacon.url;
    $('chain').textContent = `chain ${record.beacon.chain.slice(0, 12)}…`;
    if (record.state !== 'drawn') {
      $('state').textContent = record.state === 'drawing'
        ? 'The sale has opened: the draw waits for the beacon\'s round (a few seconds).'
        : `The draw is made when the sale opens (${new Date(record.draw_at).toLocaleString()}), with drand round #${record.beacon.round}, which nobody holds yet.`;
      return false;
    }
    $('state').textContent = 'Drawn. Check it:';
    const seed = bytes(record.seed);
    $('seed').textContent = record.seed;
    $('seed-check').textContent = `matches the commitment: ${mark(hex(await sha(seed)) === record.commitment)}`;
    $('cohort').textContent = String(record.cohort);
    $('root').textContent = record.join_root;
    const root = bytes(record.join_root);
    let key;
    if (record.beacon.randomness) {
      $('randomness').textContent = record.beacon.randomness;
      const fromSig = hex(await sha(bytes(record.beacon.signature))) === record.beacon.randomness;
      $('randomness-check').textContent = `= SHA-256 of the round's signature: ${mark(fromSig)}`;
      key = await sha(seed, bytes(record.beacon.randomness), root);
    } else {
      $('fallback').hidden = false;
      $('fallback').textContent = `Drawn without the beacon: ${record.fallback}.`;
      key = await sha(seed, root);
    }
    await showMine(record, root, key);
    return true;
  }

  async function main() {
    $('sale').textContent = sale;
    $('back').href = `/shop/${encodeURIComponent(sale)}`;
    try {
      config = await (await fetch('/pages/config.json')).json();
    } catch (e) { /* the header identity */ }
    for (;;) {
      try {
        const r = await fetch(`/sales/${encodeURIComponent(sale)}/queue/draw`, { cache: 'no-store' });
        if (r.status === 404) {
          $('state').textContent = 'This sale has no waiting room, so no draw.';
          return;
        }
        if (r.ok && await render(await r.json())) return;
      } catch (e) {
        $('message').textContent = 'The draw did not answer: trying again.';
      }
      await new Promise((ok) => setTimeout(ok, 2000));
    }
  }
  main();
})();
