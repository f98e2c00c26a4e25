// distbp dashboard: draws a run folder's lines (issue 6's contract) with uPlot.
// Live: the server pushes them as server-sent events from /events (no polling).
// Report: `distbp report` inlines them as window.DISTBP_RUN and this same script draws them once.
'use strict';
(function () {
  const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];
  const CHART_HEIGHT = 240;
  const MAX_EVENTS_SHOWN = 500;

  // ---- state: one table of steps (a row per step, a column per series) and what the run said besides ----

  let run;

  function freshRun() {
    return {
      config: null, summary: null, runDir: null,
      x: [], columns: new Map(),
      steps: 0, evals: 0, last: null, layerNames: [], deadCount: 0,
      events: [], cluster: null,
    };
  }

  function column(name) {
    let values = run.columns.get(name);
    if (!values) {
      values = new Array(run.x.length).fill(null);
      run.columns.set(name, values);
    }
    return values;
  }

  /** The row of `step`: appended in the usual case, found when a step is reported again (a replay), else inserted. */
  function rowOf(step) {
    const x = run.x;
    if (x.length === 0 || step > x[x.length - 1]) {
      x.push(step);
      for (const values of run.columns.values()) values.push(null);
      return x.length - 1;
    }
    let lo = 0, hi = x.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (x[mid] < step) lo = mid + 1; else hi = mid;
    }
    if (x[lo] !== step) {
      x.splice(lo, 0, step);
      for (const values of run.columns.values()) values.splice(lo, 0, null);
    }
    return lo;
  }

  function put(step, values) {
    const row = rowOf(step);
    for (const [name, value] of Object.entries(values)) {
      column(name)[row] = typeof value === 'number' && isFinite(value) ? value : null;
    }
  }

  function pick(object, ...names) {
    if (!object) return undefined;
    for (const name of names) {
      if (object[name] !== undefined && object[name] !== null) return object[name];
    }
    return undefined;
  }

  // ---- what each kind of line does to the state ----

  function onConfig(config) {
    run.config = config;
  }

  function onMetric(line) {
    if (line.kind === 'eval') {
      run.evals++;
      put(line.step, { test_loss: line.test_loss, test_accuracy: line.test_accuracy });
      run.lastEval = line;
      return;
    }
    if (line.kind !== undefined && line.kind !== 'step') return;
    run.steps++;
    run.last = line;
    const values = {
      loss: line.loss, accuracy: line.accuracy, lr: line.lr,
      grad_norm: line.grad_norm, grad_norm_clipped: line.grad_norm_clipped,
      clip: line.clip ?? clipOfConfig(),
      samples_per_s: line.samples_per_s,
      compute_ms: line.compute_ms, comm_ms: line.comm_ms, coordinator_ms: line.coordinator_ms, step_ms: line.step_ms,
    };
    const norms = line.layer_grad_norms || [];
    if (Array.isArray(line.layer_names) && line.layer_names.length === norms.length) run.layerNames = line.layer_names;
    norms.forEach((v, i) => { values['layer' + i] = v; });
    const dead = line.dead_fractions || [];
    run.deadCount = Math.max(run.deadCount, dead.length);
    dead.forEach((v, i) => { values['dead' + i] = v; });
    put(line.step, values);
  }

  function onEvent(event) {
    if (event.kind === 'cluster') run.cluster = event;
    run.events.push(event);
  }

  function onSummary(summary) {
    run.summary = summary;
  }

  function clipOfConfig() {
    const clip = pick(run.config, 'clip', 'Clip');
    return typeof clip === 'number' && clip > 0 ? clip : null;
  }

  // ---- charts ----

  const charts = [
    {
      id: 'chart-loss', series: () => [
        { col: 'loss', label: 'training loss' },
        { col: 'test_loss', label: 'held-out loss', sparse: true },
      ],
    },
    {
      id: 'chart-accuracy', range: [0, 1], series: () => [
        { col: 'accuracy', label: 'training accuracy' },
        { col: 'test_accuracy', label: 'held-out accuracy', sparse: true },
      ],
    },
    { id: 'chart-throughput', series: () => [{ col: 'samples_per_s', label: 'samples/s' }] },
    {
      id: 'chart-step-time', series: () => [
        { col: 'step_ms', label: 'whole step' }, { col: 'compute_ms', label: 'compute' },
        { col: 'comm_ms', label: 'communication' }, { col: 'coordinator_ms', label: 'coordinator' },
      ],
    },
    {
      id: 'chart-grad-norm', log: true, series: () => [
        { col: 'grad_norm', label: 'norm' },
        { col: 'grad_norm_clipped', label: 'after clipping' },
        { col: 'clip', label: 'clip threshold', color: '#e15759', dash: [6, 4] },
      ],
    },
    {
      id: 'chart-layer-grad-norms', log: true,
      series: () => run.layerNames.map((name, i) => ({ col: 'layer' + i, label: name })),
    },
    {
      id: 'chart-dead-units', range: [0, 1],
      series: () => Array.from({ length: run.deadCount }, (_, i) => ({ col: 'dead' + i, label: 'ReLU layer ' + (i + 1) })),
    },
    { id: 'chart-learning-rate', series: () => [{ col: 'lr', label: 'learning rate' }] },
  ];

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function formatNumber(v) {
    if (v === null || v === undefined || !isFinite(v)) return '–';
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(2);
    if (a >= 100) return v.toFixed(0);
    if (a >= 1) return v.toFixed(3);
    return v.toPrecision(3);
  }

  /** Linear ticks short enough for the axis: 250k, not 250,000. */
  function compactTickLabels(u, ticks) {
    return ticks.map(v => {
      if (v === null || v === undefined) return '';
      const a = Math.abs(v);
      if (a >= 1e6) return +(v / 1e6).toPrecision(3) + 'M';
      if (a >= 1e4) return +(v / 1e3).toPrecision(3) + 'k';
      return String(+v.toPrecision(4));
    });
  }

  /** A log axis labels 1, 2 and 5 of each decade; the other ticks are grid lines only. */
  function logTickLabels(u, ticks) {
    return ticks.map(v => {
      if (v === null || v === undefined || v <= 0) return '';
      const mantissa = Math.round(v / Math.pow(10, Math.floor(Math.log10(v) + 1e-9)));
      return mantissa === 1 || mantissa === 2 || mantissa === 5 ? String(+v.toPrecision(3)) : '';
    });
  }

  function makePlot(chart, series, width) {
    const grid = cssVar('--grid'), muted = cssVar('--muted');
    const axis = { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const y = chart.log ? { distr: 3, log: 10 } : chart.range ? { range: chart.range } : {};
    return new uPlot({
      width, height: CHART_HEIGHT,
      scales: { x: { time: false }, y },
      axes: [
        { ...axis, size: 32, font: '11px system-ui, sans-serif' }, // x: the step (the legend's first entry says so)
        { ...axis, size: 56, font: '11px system-ui, sans-serif', values: chart.log ? logTickLabels : compactTickLabels },
      ],
      series: [
        { label: 'step', value: (u, v) => (v === null || v === undefined ? '–' : String(v)) },
        ...series.map((s, i) => ({
          label: s.label,
          stroke: s.color || PALETTE[i % PALETTE.length],
          width: 1.5,
          dash: s.dash,
          spanGaps: !!s.sparse,
          points: { show: !!s.sparse, size: 6, fill: s.color || PALETTE[i % PALETTE.length] },
          value: (u, v) => formatNumber(v),
        })),
      ],
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
    }, [[]], chart.element);
  }

  function drawChart(chart) {
    const figure = document.getElementById(chart.id);
    chart.element = chart.element || figure.querySelector('.plot');
    const series = chart.series().filter(s => run.columns.has(s.col));
    const xs = run.x;
    const data = [xs];
    let points = 0;
    for (const s of series) {
      const values = run.columns.get(s.col);
      const shown = chart.log ? values.map(v => (v !== null && v > 0 ? v : null)) : values;
      for (const v of shown) if (v !== null) points++;
      data.push(shown);
    }
    figure.dataset.points = String(points);
    if (points === 0) {
      if (chart.plot) { chart.plot.destroy(); chart.plot = null; chart.signature = null; }
      if (!chart.element.querySelector('.empty')) {
        const empty = document.createElement('div');
        empty.className = 'empty';
        empty.textContent = 'no data yet';
        chart.element.appendChild(empty);
      }
      return;
    }
    chart.element.querySelector('.empty')?.remove();
    const signature = series.map(s => s.col + ':' + s.label).join('|');
    if (chart.signature !== signature) {
      if (chart.plot) chart.plot.destroy();
      chart.plot = makePlot(chart, series, Math.max(200, chart.element.clientWidth));
      chart.signature = signature;
    }
    chart.plot.setData(data);
  }

  const resize = new ResizeObserver(entries => {
    for (const entry of entries) {
      const chart = charts.find(c => c.element === entry.target);
      if (chart && chart.plot) chart.plot.setSize({ width: Math.max(200, entry.contentRect.width), height: CHART_HEIGHT });
    }
  });

  // ---- the cards, the cluster and the events ----

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === undefined || value === null) continue;
      if (name === 'class') node.className = value; else node.setAttribute(name, value);
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function figures(target, rows) {
    target.replaceChildren(...rows.filter(r => r && r[1] !== undefined && r[1] !== null && r[1] !== '')
      .flatMap(([name, value, big]) => [el('dt', null, name), el('dd', big ? { class: 'big' } : null, value)]));
  }

  function percent(v) { return typeof v === 'number' ? (100 * v).toFixed(2) + ' %' : undefined; }
  function number(v, digits) { return typeof v === 'number' ? v.toLocaleString('en-US', { maximumFractionDigits: digits }) : undefined; }
  function seconds(v) { return typeof v === 'number' ? v.toFixed(1) + ' s' : undefined; }

  function drawCards() {
    const c = run.config;
    const command = pick(c, 'command') || 'run';
    const layers = pick(c, 'layers', 'Layers');
    document.getElementById('run-title').textContent =
      c ? `${command} ${layers ? '· ' + layers + ' ' : ''}· ${run.runDir || ''}` : 'waiting for the run folder' + (run.runDir ? ' ' + run.runDir : '');

    const last = run.last;
    figures(document.getElementById('run-figures'), [
      ['step', last ? number(last.step, 0) : '–', true],
      ['epoch', last ? number(last.epoch, 0) : undefined],
      ['elapsed', last ? seconds(last.elapsed_s) : undefined],
      ['training loss', last ? formatNumber(last.loss) : undefined],
      ['held-out accuracy', run.lastEval ? percent(run.lastEval.test_accuracy) : undefined],
      ['samples/s', last ? number(last.samples_per_s, 0) : undefined],
      ['workers alive', last ? number(last.workers_alive, 0) : undefined],
      ['events', String(run.events.length)],
    ]);

    const s = run.summary;
    if (s) {
      const health = s.health || {};
      const faults = s.faults || {};
      figures(document.getElementById('summary-figures'), [
        ['test accuracy', percent(s.test_accuracy), true],
        ['test loss', formatNumber(s.test_loss)],
        ['final training loss', formatNumber(s.final_train_loss)],
        ['samples/s', number(s.samples_per_second, 0)],
        ['training time', seconds(s.train_seconds)],
        ['steps', number(s.steps, 0)],
        ['workers · nodes', `${s.workers ?? '?'} · ${s.nodes ?? '?'}`],
        ['clipped · skipped steps', `${health.clipped_steps ?? 0} · ${health.skipped_steps ?? 0}`],
        ['faults injected · detected', `${(faults.injected || []).length} · ${(faults.detected || []).length}`],
        ['aggregation', s.aggregation],
        ['busiest node, MB per step', s.busiest_node_bytes_per_step ? number(s.busiest_node_bytes_per_step / 1e6, 2) : undefined],
        // Tensor bytes each node sent plus received per step: the star of coordinator aggregation shows here.
        ...Object.entries(s.bytes_per_node_per_step || {}).sort(([a], [b]) => a.localeCompare(b))
          .map(([node, bytes]) => [`MB per step · ${node.replace(/^akka[.a-z]*:\/\/[^@]*@/, '')}`, number(bytes / 1e6, 2)]),
        ['weights_sha256', el('span', { class: 'mono', title: s.weights_sha256 }, s.weights_sha256)],
      ]);
    }

    if (c) {
      const rows = Object.entries(c)
        .filter(([, v]) => v !== null && typeof v !== 'object')
        .map(([k, v]) => [k, typeof v === 'number' ? formatConfigNumber(v) : String(v)]);
      figures(document.getElementById('config-figures'), rows);
    }
  }

  function formatConfigNumber(v) {
    return Number.isInteger(v) ? String(v) : String(+v.toPrecision(6));
  }

  function sliceText(slices) {
    if (!slices || slices.length === 0) return 'idle';
    const sorted = [...slices].sort((a, b) => a - b);
    const runs = [];
    let start = sorted[0], prev = sorted[0];
    for (const s of sorted.slice(1).concat([null])) {
      if (s === prev + 1) { prev = s; continue; }
      runs.push(start === prev ? String(start) : `${start}–${prev}`);
      start = prev = s;
    }
    return 'slices ' + runs.join(', ');
  }

  function workerChip(name) {
    const last = run.last || {};
    const slices = (last.slices || {})[name];
    const straggler = (last.stragglers || []).includes(name);
    return el('span', {
      class: 'worker' + (straggler ? ' straggler' : '') + (slices && slices.length ? '' : ' idle'),
      'data-worker': name,
      title: straggler ? 'straggler: a speculative copy of its slices was started' : null,
    }, `${name} · ${sliceText(slices)}${straggler ? ' · straggler' : ''}`);
  }

  function drawCluster() {
    const target = document.getElementById('cluster');
    const nodes = (run.cluster && run.cluster.nodes) || [];
    const last = run.last || {};
    const placed = new Set(nodes.flatMap(n => n.workers || []));
    const unplaced = Object.keys(last.slices || {}).filter(w => !placed.has(w)).sort();
    document.body.dataset.nodes = String(nodes.length);
    if (nodes.length === 0 && unplaced.length === 0) {
      target.replaceChildren(el('p', { class: 'muted' }, 'no cluster snapshot yet'));
      return;
    }
    const caption = [];
    if (nodes.length) caption.push(`${nodes.length} node${nodes.length === 1 ? '' : 's'}`);
    if (last.workers_alive !== undefined) caption.push(`${last.workers_alive} workers alive`);
    if (last.step !== undefined) caption.push(`slices of step ${last.step}`);
    document.getElementById('cluster-caption').textContent = caption.join(' · ');

    const rows = nodes.map(node => el('tr', { 'data-node-address': node.address, class: 'node' },
      el('td', null, el('span', { class: 'mono' }, node.address), ' ',
        node.coordinator ? el('span', { class: 'badge coordinator' }, 'coordinator') : null),
      el('td', null, el('span', { class: 'badge ' + (node.status || 'unknown') }, node.status || 'unknown')),
      el('td', null, (node.roles || []).join(', ')),
      el('td', null, ...(node.workers || []).map(workerChip))));
    if (unplaced.length) {
      rows.push(el('tr', null, el('td', { class: 'muted' }, 'workers (node not known)'), el('td'), el('td'),
        el('td', null, ...unplaced.map(workerChip))));
    }
    target.replaceChildren(el('table', { class: 'nodes' },
      el('thead', null, el('tr', null, el('th', null, 'node'), el('th', null, 'status'), el('th', null, 'roles'),
        el('th', null, 'workers and their slices in the last step'))),
      el('tbody', null, ...rows)));
  }

  let eventsShown = 0;

  function eventItem(e) {
    const when = [e.step !== undefined && e.step !== null ? 'step ' + e.step : null,
      typeof e.elapsed_s === 'number' ? e.elapsed_s.toFixed(1) + ' s' : null].filter(Boolean).join(' · ');
    const who = [e.worker, e.node].filter(Boolean).join(' on ');
    return el('li', { class: e.kind || 'info', 'data-kind': e.kind || '', 'data-type': e.type || '' },
      el('div', { class: 'ev-head' },
        el('span', { class: 'badge' }, e.kind || 'info'),
        el('span', { class: 'ev-type' }, e.type || ''),
        who ? el('span', { class: 'muted mono' }, who) : null,
        el('span', { class: 'when', title: e.time || '' }, when)),
      e.message ? el('div', { class: 'ev-message' }, e.message) : null,
      e.fix ? el('div', { class: 'ev-fix' }, e.fix) : null,
      typeof e.recovery_s === 'number' ? el('div', { class: 'ev-recovery' }, `recovered in ${e.recovery_s.toFixed(2)} s`) : null);
  }

  // Which kinds of event the list shows; checkpoints and cluster snapshots (drawn in the cluster panel) start hidden
  // so that faults and warnings stay in view.
  const EVENT_KINDS = [
    ['fault', 'faults', true], ['health', 'health', true], ['membership', 'membership', true],
    ['info', 'run', true], ['checkpoint', 'checkpoints', false], ['cluster', 'cluster snapshots', false],
  ];
  const shownKinds = new Set(EVENT_KINDS.filter(k => k[2]).map(k => k[0]));

  function kindShown(e) {
    const kind = EVENT_KINDS.some(k => k[0] === e.kind) ? e.kind : 'info';
    return shownKinds.has(kind);
  }

  function drawEventFilters() {
    const target = document.getElementById('event-filters');
    if (target.childElementCount === 0) {
      for (const [kind, label] of EVENT_KINDS) {
        const box = el('input', { type: 'checkbox', 'data-kind': kind });
        box.checked = shownKinds.has(kind);
        box.addEventListener('change', () => {
          if (box.checked) shownKinds.add(kind); else shownKinds.delete(kind);
          eventsShown = -1; // redraw the list with the new filter
          scheduleDraw();
        });
        target.append(el('label', { class: 'filter ' + kind }, box, el('span', { 'data-label': label }, label)));
      }
    }
    for (const [kind, label] of EVENT_KINDS) {
      const count = run.events.filter(e => (EVENT_KINDS.some(k => k[0] === e.kind) ? e.kind : 'info') === kind).length;
      target.querySelector(`span[data-label="${label}"]`).textContent = `${label} ${count}`;
    }
  }

  function drawEvents() {
    const list = document.getElementById('event-list');
    if (eventsShown !== run.events.length) {
      // Newest first by the time each event happened: a fault's line is written once it has recovered, so it can
      // arrive after later events. Only the newest MAX_EVENTS_SHOWN of the kinds shown are drawn.
      const shown = run.events.filter(kindShown)
        .map((e, i) => [e, i])
        .sort((a, b) => (b[0].elapsed_s ?? 0) - (a[0].elapsed_s ?? 0) || b[1] - a[1])
        .slice(0, MAX_EVENTS_SHOWN)
        .map(([e]) => eventItem(e));
      list.replaceChildren(...shown);
      eventsShown = run.events.length;
    }
    document.getElementById('no-events').hidden = list.children.length > 0;
    drawEventFilters();
    const faults = run.events.filter(e => e.kind === 'fault').length;
    const health = run.events.filter(e => e.kind === 'health').length;
    document.getElementById('events-caption').textContent =
      `${faults} fault${faults === 1 ? '' : 's'} · ${health} health warning${health === 1 ? '' : 's'}`;
  }

  // ---- status and drawing ----

  let connection = 'connecting';

  function status() {
    if (run.summary) return ['finished', 'finished'];
    if (connection === 'report') return ['stopped', 'stopped without a summary'];
    if (connection === 'ended') return ['stopped', 'stopped without a summary (the run process ended)'];
    if (connection === 'disconnected') return ['disconnected', 'disconnected: reconnecting'];
    if (connection === 'connecting') return ['connecting', 'connecting'];
    if (run.last) return ['running', `running · step ${run.last.step} · epoch ${run.last.epoch}`];
    return ['running', 'waiting for the first step'];
  }

  let pending = false;

  function scheduleDraw() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; draw(); });
  }

  function draw() {
    for (const chart of charts) drawChart(chart);
    drawCards();
    drawCluster();
    drawEvents();
    const [state, text] = status();
    document.body.dataset.status = state;
    document.getElementById('status-text').textContent = text;
    document.body.dataset.steps = String(run.steps);
    document.body.dataset.evals = String(run.evals);
    document.body.dataset.events = String(run.events.length);
    // What tests (and curious people) can read without parsing the DOM.
    window.distbpDashboard = {
      status: state,
      steps: run.steps,
      evals: run.evals,
      events: run.events.map(e => ({ kind: e.kind, type: e.type, node: e.node ?? null, worker: e.worker ?? null })),
      nodes: ((run.cluster && run.cluster.nodes) || []).map(n => n.address),
      workers: Object.keys((run.last && run.last.slices) || {}),
      chartPoints: Object.fromEntries(charts.map(c => [c.id, +document.getElementById(c.id).dataset.points])),
      summary: !!run.summary,
    };
  }

  function handle(kind, data) {
    let value;
    try { value = JSON.parse(data); } catch { return; }
    if (kind === 'config') onConfig(value);
    else if (kind === 'metric') onMetric(value);
    else if (kind === 'event') onEvent(value);
    else if (kind === 'summary') onSummary(value);
    else if (kind === 'hello') { resetPage(); run.runDir = value.run_dir; }
    scheduleDraw();
  }

  /** The server sends everything again on each (re)connection: start from nothing. */
  function resetPage() {
    run = freshRun();
    eventsShown = 0;
    document.getElementById('event-list').replaceChildren();
  }

  run = freshRun();
  for (const chart of charts) {
    chart.element = document.getElementById(chart.id).querySelector('.plot');
    resize.observe(chart.element);
  }

  const report = window.DISTBP_RUN;
  if (report) {
    connection = 'report';
    run.runDir = report.run_dir || null;
    if (report.config) onConfig(report.config);
    (report.metrics || []).forEach(onMetric);
    (report.events || []).forEach(onEvent);
    if (report.summary) onSummary(report.summary);
    document.getElementById('footer').textContent = `distbp report of ${report.run_dir || 'a run folder'}, made ${report.generated_utc || ''}`;
    draw();
  } else {
    const source = new EventSource('events');
    for (const kind of ['hello', 'config', 'metric', 'event', 'summary']) {
      source.addEventListener(kind, e => handle(kind, e.data));
    }
    source.addEventListener('hello', () => { connection = 'live'; });
    // The server says "end" when the run's process stops serving: everything has been sent, nothing to reconnect to.
    source.addEventListener('end', () => { source.close(); connection = 'ended'; scheduleDraw(); });
    source.onerror = () => { if (connection !== 'ended') { connection = 'disconnected'; scheduleDraw(); } };
    document.getElementById('footer').textContent = 'live: the server pushes each new line of the run folder as it is written';
    draw();
  }
})();
