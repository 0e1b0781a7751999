// hongxin 红心 — the property company's office (/office): the month's statement with its
// tie-out checked here again in exact BigInt fen, the settlement with the cooperative, CSV and
// XLSX downloads (plain links: the session cookie authenticates a GET), arrears by age, and a
// chart of billed vs paid vs covered over the months, drawn as SVG with the DOM.
'use strict';

(function () {
  const { el, t, $ } = HX;

  HX.strings({
    'zh-CN': {
      'office.title': '物业公司对账',
      'office.page_title': '红心 · 物业公司',
      'office.company': '物业公司代码',
      'office.company_needed': '请输入物业公司代码',
      'office.month': '月份',
      'office.show': '查看',
      'office.month_closed': '{month}（已结账）',
      'office.month_open': '{month}（未结账）',
      'office.download_csv': '下载 CSV',
      'office.download_xlsx': '下载 Excel (XLSX)',
      'office.statement': '对账单',
      'office.statement_of': '{company} · {month} 对账单',
      'office.loading': '正在加载…',
      'office.no_months': '还没有任何账单。',
      'office.ties': '✓ 账目相符',
      'office.not_ties': '✗ 账目不符',
      'office.tie_formula': '期初 {opening} + 应收 {billed} − 住户缴纳 {paid} − 合作社抵扣 {allocated} = 期末 {closing}',
      'office.tie_bad_households': '{count} 户对不上：{list}',
      'office.tie_bad_sums': '各住户之和与合计不符',
      'office.tie_server_differs': '注意：服务器的核对结果为“{server}”',
      'office.summary': '汇总',
      'office.sum.arrears_brought_forward': '上期结转欠费',
      'office.sum.arrears_this_month': '本月新增欠费',
      'office.sum.billed': '本月应收',
      'office.sum.arrears_recovered': '收回往期欠费',
      'office.sum.prepaid': '预缴余额',
      'office.sum.received': '住户缴纳',
      'office.sum.covered_by_cooperative': '合作社抵扣',
      'office.settlement': '与合作社结算',
      'office.coop.opening': '月初合作社应付',
      'office.coop.allocated': '本月合作社抵扣',
      'office.coop.due': '合作社应付合计',
      'office.coop.settled': '本月已结算',
      'office.coop.outstanding': '月末待结算',
      'office.coop.paid_up': '已结清',
      'office.coop.owes': '待结算',
      'office.coop.none': '本月没有合作社抵扣或结算。',
      'office.by_compound': '按小区',
      'office.by_household': '按住户',
      'office.col.compound': '小区',
      'office.col.household': '住户',
      'office.col.occupant': '住户姓名',
      'office.col.area': '面积（平方米）',
      'office.col.households': '户数',
      'office.col.opening': '期初',
      'office.col.billed': '应收',
      'office.col.paid': '缴纳',
      'office.col.allocated': '抵扣',
      'office.col.closing': '期末',
      'office.col.check': '核对',
      'office.total': '合计',
      'office.find_household': '查找住户',
      'office.show_only': '显示',
      'office.only_all': '全部住户',
      'office.only_owing': '仍欠费的',
      'office.only_untied': '对不上的',
      'office.households_count': '显示 {shown} / {count} 户',
      'office.more': '再显示 {n} 户',
      'office.no_households': '没有符合条件的住户。',
      'office.journal': '账本序号 {seq} · 哈希 {hash}',
      'office.chart': '每月应收与实收',
      'office.billed': '本月应收',
      'office.paid': '住户缴纳',
      'office.covered': '合作社抵扣',
      'office.month_short': '{m}月',
      'office.col.month': '月份',
      'office.col.state': '状态',
      'office.closed': '已结账',
      'office.open': '未结账',
      'office.arrears': '欠费账龄',
      'office.arrears_as_of': '截至 {date}，{count} 户欠费',
      'office.age': '账龄',
      'office.amount': '金额',
      'office.age.0-30': '0–30 天',
      'office.age.31-90': '31–90 天',
      'office.age.91-180': '91–180 天',
      'office.age.over-180': '180 天以上',
      'office.no_arrears': '没有欠费。',
      'office.arrears_top': '欠费最多的住户',
      'office.col.oldest': '最早欠费月',
      'office.col.bills': '欠费账单数',
      'office.col.owed': '欠费',
    },
    en: {
      'office.title': 'Company office',
      'office.page_title': 'Hongxin · Company office',
      'office.company': 'Company code',
      'office.company_needed': 'Enter a company code',
      'office.month': 'Month',
      'office.show': 'Show',
      'office.month_closed': '{month} (closed)',
      'office.month_open': '{month} (open)',
      'office.download_csv': 'Download CSV',
      'office.download_xlsx': 'Download Excel (XLSX)',
      'office.statement': 'Statement',
      'office.statement_of': 'Statement {company} · {month}',
      'office.loading': 'Loading…',
      'office.no_months': 'No bills yet.',
      'office.ties': '✓ Ties out',
      'office.not_ties': '✗ Does not tie out',
      'office.tie_formula': 'opening {opening} + billed {billed} − paid {paid} − covered {allocated} = closing {closing}',
      'office.tie_bad_households': '{count} households do not tie out: {list}',
      'office.tie_bad_sums': 'The households do not add up to the totals',
      'office.tie_server_differs': 'Note: the server says “{server}”',
      'office.summary': 'Summary',
      'office.sum.arrears_brought_forward': 'Arrears brought forward',
      'office.sum.arrears_this_month': "This month's arrears",
      'office.sum.billed': 'Billed',
      'office.sum.arrears_recovered': 'Arrears recovered',
      'office.sum.prepaid': 'Prepaid',
      'office.sum.received': 'Paid by residents',
      'office.sum.covered_by_cooperative': 'Covered by the cooperative',
      'office.settlement': 'Settlement with the cooperative',
      'office.coop.opening': 'Owed at the start',
      'office.coop.allocated': 'Covered this month',
      'office.coop.due': 'Due from the cooperative',
      'office.coop.settled': 'Settled this month',
      'office.coop.outstanding': 'Outstanding at month end',
      'office.coop.paid_up': 'Settled in full',
      'office.coop.owes': 'Outstanding',
      'office.coop.none': 'No cooperative coverage or settlement this month.',
      'office.by_compound': 'By compound',
      'office.by_household': 'By household',
      'office.col.compound': 'Compound',
      'office.col.household': 'Household',
      'office.col.occupant': 'Occupant',
      'office.col.area': 'Area (m²)',
      'office.col.households': 'Households',
      'office.col.opening': 'Opening',
      'office.col.billed': 'Billed',
      'office.col.paid': 'Paid',
      'office.col.allocated': 'Covered',
      'office.col.closing': 'Closing',
      'office.col.check': 'Check',
      'office.total': 'Total',
      'office.find_household': 'Find a household',
      'office.show_only': 'Show',
      'office.only_all': 'All households',
      'office.only_owing': 'Still owing',
      'office.only_untied': 'Not tying out',
      'office.households_count': 'Showing {shown} of {count} households',
      'office.more': 'Show {n} more',
      'office.no_households': 'No household matches.',
      'office.journal': 'Journal sequence {seq} · hash {hash}',
      'office.chart': 'Billed and received by month',
      'office.billed': 'Billed',
      'office.paid': 'Paid by residents',
      'office.covered': 'Covered by the cooperative',
      'office.month_short': '{y}-{mm}',
      'office.col.month': 'Month',
      'office.col.state': 'State',
      'office.closed': 'Closed',
      'office.open': 'Open',
      'office.arrears': 'Arrears by age',
      'office.arrears_as_of': 'As of {date}: {count} households owe',
      'office.age': 'Age',
      'office.amount': 'Amount',
      'office.age.0-30': '0–30 days',
      'office.age.31-90': '31–90 days',
      'office.age.91-180': '91–180 days',
      'office.age.over-180': 'Over 180 days',
      'office.no_arrears': 'No arrears.',
      'office.arrears_top': 'Households owing most',
      'office.col.oldest': 'Oldest month',
      'office.col.bills': 'Unpaid bills',
      'office.col.owed': 'Owed',
    },
  });

  const COLUMNS = ['opening', 'billed', 'paid', 'allocated', 'closing'];
  const SUMMARY = [
    'arrears_brought_forward', 'arrears_this_month', 'billed', 'arrears_recovered',
    'prepaid', 'received', 'covered_by_cooperative',
  ];
  const AGES = ['0-30', '31-90', '91-180', 'over-180'];
  const PAGE = 100;
  const TOP_ARREARS = 20;
  const SERIES = [
    ['billed', 'bar-billed', 'office.billed'],
    ['paid', 'bar-paid', 'office.paid'],
    ['covered', 'bar-covered', 'office.covered'],
  ];

  const view = {
    session: null,
    company: null,
    months: null, // the months endpoint's answer
    month: null,
    statement: null,
    check: null,
    arrears: null,
    shown: PAGE,
    loading: { months: false, statement: false, arrears: false },
  };
  // Answers to requests that a newer one has replaced are dropped.
  const latest = { months: 0, statement: 0, arrears: 0 };

  const companyPath = (c) => `/v1/companies/${encodeURIComponent(c)}`;
  const money = (s) => HX.yuan(s);
  const numCell = (amount, attrs) =>
    el('td', Object.assign({ class: 'num', dataset: { amount } }, attrs || {}), money(amount));

  // ---- the tie-out, exactly --------------------------------------------------------------

  // opening + billed − paid − allocated = closing per household and in total, and the
  // households add up to the totals. Every amount through BigInt fen; an unreadable amount
  // is a failure, not a zero.
  function tieOut(s) {
    const bad = [];
    const sums = { opening: 0n, billed: 0n, paid: 0n, allocated: 0n, closing: 0n };
    let readable = true;
    const fens = (row) => {
      const f = {};
      for (const c of COLUMNS) {
        f[c] = HX.fen(row[c]);
        if (f[c] === null) readable = false;
      }
      return f;
    };
    const ties = (f) =>
      COLUMNS.every((c) => f[c] !== null) &&
      f.opening + f.billed - f.paid - f.allocated === f.closing;
    const untied = new Set();
    for (const h of s.households) {
      const f = fens(h);
      if (!ties(f)) {
        bad.push(h.household);
        untied.add(h.household);
      }
      if (COLUMNS.every((c) => f[c] !== null)) for (const c of COLUMNS) sums[c] += f[c];
    }
    const total = fens(s.totals);
    const totalTies = ties(total);
    const sumsMatch = readable && COLUMNS.every((c) => sums[c] === total[c]);
    return { ok: readable && bad.length === 0 && totalTies && sumsMatch, bad, untied, totalTies, sumsMatch };
  }

  // ---- loading ---------------------------------------------------------------------------

  function setLoading(part, on) {
    view.loading[part] = on;
    HX.show($('#statement-loading'), view.loading.statement || (view.loading.months && !view.statement));
    HX.show($('#chart-loading'), view.loading.months);
    HX.show($('#arrears-loading'), view.loading.arrears);
    $('#load').disabled = view.loading.months || view.loading.statement;
  }

  async function loadCompany(company) {
    view.company = company;
    view.months = null;
    view.statement = null;
    view.arrears = null;
    view.month = null;
    renderAll();
    loadArrears();
    const n = ++latest.months;
    setLoading('months', true);
    const r = await HX.api('GET', `${companyPath(company)}/months?last=12`);
    if (n !== latest.months) return;
    setLoading('months', false);
    if (!r.ok) {
      HX.showProblem($('#pick-problem'), r.problem, $('#pick'));
      renderAll();
      return;
    }
    HX.showProblem($('#pick-problem'), null, $('#pick'));
    view.months = r.data;
    const months = r.data.months;
    view.month = r.data.latest_closed || (months.length ? months[months.length - 1].month : null);
    renderMonths();
    renderChart();
    if (view.month) loadStatement(view.month);
    else renderStatement();
  }

  async function loadStatement(month) {
    view.month = month;
    view.shown = PAGE;
    $('#month').value = month;
    renderDownloads();
    renderChart();
    const n = ++latest.statement;
    setLoading('statement', true);
    const r = await HX.api(
      'GET', `${companyPath(view.company)}/statements/${encodeURIComponent(month)}`);
    if (n !== latest.statement) return;
    setLoading('statement', false);
    if (!r.ok) {
      view.statement = null;
      HX.showProblem($('#pick-problem'), r.problem, $('#pick'));
      renderStatement();
      return;
    }
    HX.showProblem($('#pick-problem'), null, $('#pick'));
    view.statement = r.data;
    view.check = tieOut(r.data);
    renderStatement();
  }

  async function loadArrears() {
    const n = ++latest.arrears;
    setLoading('arrears', true);
    const r = await HX.api('GET', `${companyPath(view.company)}/arrears`);
    if (n !== latest.arrears) return;
    setLoading('arrears', false);
    view.arrears = r.ok ? r.data : null;
    renderArrears();
  }

  // ---- drawing ---------------------------------------------------------------------------

  function renderAll() {
    renderMonths();
    renderDownloads();
    renderStatement();
    renderChart();
    renderArrears();
  }

  function renderMonths() {
    const select = $('#month');
    const months = view.months ? view.months.months : [];
    select.replaceChildren(...months.slice().reverse().map((m) =>
      el('option', { value: m.month, selected: m.month === view.month },
        t(m.closed ? 'office.month_closed' : 'office.month_open', { month: m.month }))));
    select.disabled = months.length === 0;
  }

  function renderDownloads() {
    for (const [id, format] of [['#download-csv', 'csv'], ['#download-xlsx', 'xlsx']]) {
      const a = $(id);
      if (view.company && view.month) {
        // The CSV speaks the page's language (its headers, row kinds and summary lines).
        const lang = format === 'csv' ? `&lang=${encodeURIComponent(HX.lang())}` : '';
        a.href = `${companyPath(view.company)}/statements/${encodeURIComponent(view.month)}?format=${format}${lang}`;
        a.classList.remove('disabled');
        a.removeAttribute('aria-disabled');
      } else {
        a.removeAttribute('href');
        a.classList.add('disabled');
        a.setAttribute('aria-disabled', 'true');
      }
    }
  }

  function headRow(keys, numeric) {
    return el('thead', null, el('tr', null, keys.map((k, i) =>
      el('th', { class: i >= numeric ? 'num' : undefined }, t(k)))));
  }

  function renderStatement() {
    const s = view.statement;
    const empty = view.months && view.months.months.length === 0;
    HX.show($('#statement-empty'), Boolean(empty) && !view.loading.months);
    HX.show($('#statement-body'), Boolean(s));
    HX.show($('#household-lines'), Boolean(s));
    const pill = $('#tie-out');
    HX.show(pill, Boolean(s));
    $('#statement-title').textContent = s
      ? t('office.statement_of', { company: s.company_name ? `${s.company_name}（${s.company}）` : s.company, month: s.month })
      : t('office.statement');
    if (!s) return;
    const check = view.check;

    pill.textContent = t(check.ok ? 'office.ties' : 'office.not_ties');
    pill.className = `pill ${check.ok ? 'ok' : 'warn'}`;
    pill.dataset.ties = String(check.ok);
    const detail = [t('office.tie_formula', {
      opening: money(s.totals.opening), billed: money(s.totals.billed), paid: money(s.totals.paid),
      allocated: money(s.totals.allocated), closing: money(s.totals.closing),
    })];
    if (check.bad.length) {
      const list = check.bad.slice(0, 10).join(', ') + (check.bad.length > 10 ? ' …' : '');
      detail.push(t('office.tie_bad_households', { count: check.bad.length, list }));
    }
    if (!check.sumsMatch) detail.push(t('office.tie_bad_sums'));
    if (s.ties_out !== check.ok) {
      detail.push(t('office.tie_server_differs', {
        server: t(s.ties_out ? 'office.ties' : 'office.not_ties'),
      }));
    }
    $('#tie-out-detail').replaceChildren(...detail.map((d) => el('span', { class: 'office-line' }, d)));

    $('#summary').replaceChildren(...SUMMARY.flatMap((k) => [
      el('dt', null, t(`office.sum.${k}`)),
      el('dd', { id: `sum-${k}`, dataset: { amount: s.summary[k] } }, money(s.summary[k])),
    ]));

    renderSettlement(s);

    $('#compounds').replaceChildren(
      headRow(['office.col.compound', 'office.col.households', ...COLUMNS.map((c) => `office.col.${c}`)], 1),
      el('tbody', null, s.compounds.map((c) => el('tr', { dataset: { compound: c.compound } },
        el('th', { scope: 'row' }, c.name ? `${c.name}（${c.compound}）` : c.compound),
        el('td', { class: 'num' }, String(c.households)),
        COLUMNS.map((col) => numCell(c[col]))))),
      el('tfoot', null, el('tr', { id: 'totals' },
        el('td', null, t('office.total')),
        el('td', { class: 'num', id: 'total-households' }, String(s.households.length)),
        COLUMNS.map((col) => numCell(s.totals[col], { id: `total-${col}` })))));

    renderHouseholds();
    const hash = s.journal_hash || '';
    $('#journal').replaceChildren(el('span', { title: hash },
      t('office.journal', { seq: s.journal_seq, hash: hash.slice(0, 16) + (hash.length > 16 ? '…' : '') })));
  }

  function renderSettlement(s) {
    const box = $('#settlement');
    if (!s.cooperatives.length) {
      box.replaceChildren(el('p', { class: 'muted', id: 'settlement-none' }, t('office.coop.none')));
      return;
    }
    box.replaceChildren(...s.cooperatives.map((c) => {
      const due = HX.fen(c.opening) + HX.fen(c.allocated);
      const outstanding = HX.fen(c.outstanding);
      const paidUp = outstanding === 0n;
      const row = (key, cls, amount) => [
        el('dt', null, t(key)),
        el('dd', { class: cls, dataset: { amount } }, money(amount)),
      ];
      return el('div', { class: 'office-coop', dataset: { coop: c.cooperative } },
        el('p', null, el('strong', null, c.cooperative_name || c.cooperative), ' ',
          el('span', { class: `pill coop-state ${paidUp ? 'ok' : 'warn'}`, dataset: { settled: String(paidUp) } },
            t(paidUp ? 'office.coop.paid_up' : 'office.coop.owes'))),
        el('dl', { class: 'figures' },
          row('office.coop.opening', 'coop-opening', c.opening),
          row('office.coop.allocated', 'coop-allocated', c.allocated),
          row('office.coop.due', 'coop-due', HX.amount(due)),
          row('office.coop.settled', 'coop-settled', c.settled),
          row('office.coop.outstanding', 'coop-outstanding', c.outstanding)));
    }));
  }

  function matchingHouseholds() {
    const s = view.statement;
    const q = $('#household-filter').value.trim().toLowerCase();
    const only = $('#household-only').value;
    return s.households.filter((h) => {
      if (q && !h.household.toLowerCase().includes(q) && !h.compound.toLowerCase().includes(q)) return false;
      if (only === 'owing' && !(HX.fen(h.closing) > 0n)) return false;
      if (only === 'untied' && !view.check.untied.has(h.household)) return false;
      return true;
    });
  }

  function renderHouseholds() {
    const s = view.statement;
    if (!s) return;
    const rows = matchingHouseholds();
    const shown = rows.slice(0, view.shown);
    const body = shown.length
      ? shown.map((h) => {
        const ok = !view.check.untied.has(h.household);
        return el('tr', { dataset: { household: h.household }, class: ok ? undefined : 'untied' },
          el('th', { scope: 'row' }, h.household),
          el('td', { class: 'hide-narrow' }, h.compound),
          el('td', { class: 'hide-narrow occupant' }, h.occupant || ''),
          el('td', { class: 'hide-narrow area' }, h.area_m2),
          COLUMNS.map((c) => numCell(h[c])),
          el('td', { class: `check ${ok ? 'ok' : 'bad'}` }, ok ? '✓' : '✗'));
      })
      : [el('tr', null, el('td', { colspan: 10, class: 'muted' }, t('office.no_households')))];
    const head = headRow(['office.col.household', 'office.col.compound', 'office.col.occupant', 'office.col.area',
      ...COLUMNS.map((c) => `office.col.${c}`), 'office.col.check'], 4);
    for (const i of [1, 2, 3]) head.querySelectorAll('th')[i].classList.add('hide-narrow');
    $('#households').replaceChildren(head, el('tbody', null, body));
    $('#households-count').textContent =
      t('office.households_count', { shown: shown.length, count: rows.length });
    const more = $('#households-more');
    const rest = rows.length - shown.length;
    HX.show(more, rest > 0);
    more.textContent = t('office.more', { n: Math.min(rest, PAGE) });
  }

  function renderChart() {
    const box = $('#chart');
    const months = view.months ? view.months.months : [];
    HX.show($('#chart-empty'), Boolean(view.months) && months.length === 0);
    if (!months.length) {
      box.replaceChildren();
      $('#chart-table').replaceChildren();
      return;
    }
    const fens = months.map((m) => Object.fromEntries(SERIES.map(([k]) => [k, HX.fen(m[k]) ?? 0n])));
    let max = 0n;
    for (const f of fens) for (const [k] of SERIES) if (f[k] > max) max = f[k];
    const topAmount = max;
    if (max === 0n) max = 1n;
    // Wider slots when there are few months, so a short history still reads well.
    const slot = Math.min(120, Math.max(64, 480 / months.length));
    const bar = Math.round(slot / 5);
    const top = 18;
    const plot = 170;
    const base = top + plot;
    const width = Math.max(320, months.length * slot);
    const svg = el('svg', {
      viewBox: `0 0 ${width} ${base + 28}`, role: 'img', 'aria-label': t('office.chart'),
      id: 'chart-svg', preserveAspectRatio: 'xMinYMin meet',
    });
    svg.append(el('line', { svg: true, x1: 0, x2: width, y1: base, y2: base, class: 'chart-axis' }));
    svg.append(el('line', { svg: true, x1: 0, x2: width, y1: top, y2: top, class: 'chart-grid' }));
    svg.append(el('text', { svg: true, x: 2, y: top - 6, class: 'chart-label chart-max' },
      topAmount > 0n ? money(HX.amount(topAmount)) : ''));
    months.forEach((m, i) => {
      const x0 = i * slot + (slot - SERIES.length * bar - 4) / 2;
      const g = el('g', {
        svg: true, class: `month${m.month === view.month ? ' selected' : ''}`,
        dataset: { month: m.month, closed: String(m.closed) }, tabindex: 0,
      });
      g.append(el('rect', { svg: true, class: 'chart-hit', x: i * slot + 2, y: 0, width: slot - 4, height: base + 26 }));
      SERIES.forEach(([key, cls, label], j) => {
        const f = fens[i][key];
        // Tenths of a unit, from BigInt: the proportion is exact up to the drawing's grain.
        const h = f > 0n ? Number((f * BigInt(plot * 10)) / max) / 10 : 0;
        g.append(el('rect', {
          svg: true, class: cls, x: x0 + j * (bar + 2), y: base - h, width: bar, height: h,
          dataset: { series: key, fen: String(f), amount: m[key] },
        }, el('title', { svg: true }, `${m.month} ${t(label)} ${money(m[key])}`)));
      });
      const [y, mo] = m.month.split('-');
      g.append(el('text', {
        svg: true, x: i * slot + slot / 2, y: base + 18, 'text-anchor': 'middle', class: 'chart-label',
      }, t('office.month_short', { y, m: String(Number(mo)), mm: mo })));
      const choose = () => loadStatement(m.month);
      g.addEventListener('click', choose);
      g.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter' || ev.key === ' ') {
          ev.preventDefault();
          choose();
        }
      });
      svg.append(g);
    });
    box.replaceChildren(svg);

    $('#chart-table').replaceChildren(
      headRow(['office.col.month', 'office.billed', 'office.paid', 'office.covered', 'office.col.state'], 1),
      el('tbody', null, months.slice().reverse().map((m) => el('tr', { dataset: { month: m.month } },
        el('th', { scope: 'row' }, m.month),
        numCell(m.billed), numCell(m.paid), numCell(m.covered),
        el('td', { class: 'num' }, el('span', { class: `pill ${m.closed ? 'ok' : ''}` },
          t(m.closed ? 'office.closed' : 'office.open')))))));
  }

  function renderArrears() {
    const a = view.arrears;
    HX.show($('#arrears-empty'), Boolean(a) && a.households.length === 0);
    HX.show($('#arrears-top-title'), Boolean(a) && a.households.length > 0);
    if (!a) {
      $('#arrears-as-of').textContent = '';
      $('#arrears-ages').replaceChildren();
      $('#arrears-households').replaceChildren();
      return;
    }
    $('#arrears-as-of').textContent =
      t('office.arrears_as_of', { date: a.as_of, count: a.households.length });
    const total = HX.fen(a.total) || 1n;
    const buckets = a.buckets && a.buckets.length ? a.buckets : AGES;
    $('#arrears-ages').replaceChildren(
      headRow(['office.age', 'office.amount', ''], 1),
      el('tbody', null, buckets.map((b) => {
        const f = HX.fen(a.by_age[b]) ?? 0n;
        const pct = f > 0n ? Number((f * 1000n) / total) / 10 : 0;
        const meter = el('svg', { class: 'office-meter', viewBox: '0 0 100 8', preserveAspectRatio: 'none' },
          el('rect', { svg: true, x: 0, y: 0, width: 100, height: 8, class: 'meter-back' }),
          el('rect', { svg: true, x: 0, y: 0, width: pct, height: 8, class: `meter-age age-${b}` }));
        return el('tr', { dataset: { age: b } },
          el('th', { scope: 'row' }, t(`office.age.${b}`)),
          numCell(a.by_age[b], { id: `arrears-${b}` }),
          el('td', { class: 'office-meter-cell' }, meter));
      })),
      el('tfoot', null, el('tr', null,
        el('td', null, t('office.total')),
        numCell(a.total, { id: 'arrears-total' }),
        el('td'))));
    const top = a.households.slice().sort((x, y) => {
      const d = HX.fen(y.total) - HX.fen(x.total);
      return d > 0n ? 1 : d < 0n ? -1 : x.household.localeCompare(y.household);
    }).slice(0, TOP_ARREARS);
    $('#arrears-households').replaceChildren(
      headRow(['office.col.household', 'office.col.oldest', 'office.col.bills', 'office.col.owed'], 2),
      el('tbody', null, top.map((h) => el('tr', { dataset: { household: h.household } },
        el('th', { scope: 'row' }, h.household),
        el('td', null, h.oldest),
        el('td', { class: 'num' }, String(h.bills)),
        numCell(h.total)))));
  }

  // ---- wiring ----------------------------------------------------------------------------

  // An admin names the company: the form says so and marks the field.
  function needCompany() {
    HX.showProblem($('#pick-problem'),
      { code: 'company_needed', field: 'company', detail: t('office.company_needed') }, $('#pick'));
  }

  function companyFromForm() {
    const input = $('#company');
    const code = input.value.trim();
    if (!code) {
      needCompany();
      return null;
    }
    try {
      localStorage.setItem('hx-office-company', code);
    } catch (_) {
      /* private mode: not remembered */
    }
    return code;
  }

  // The header names who is signed in; common.js writes it once, this page in each language.
  function renderWho() {
    const who = document.getElementById('who');
    const s = view.session;
    if (who && s) who.textContent = `${t('role.' + s.role)} ${s.scope_name || s.company || ''}`.trim();
  }

  function onReady(session) {
    view.session = session;
    const admin = session.role === 'admin';
    HX.show($('#company-field'), admin);
    if (!admin) {
      loadCompany(session.company);
      return;
    }
    let kept = '';
    try {
      kept = localStorage.getItem('hx-office-company') || '';
    } catch (_) {
      kept = '';
    }
    $('#company').value = kept;
    if (kept) loadCompany(kept);
    else {
      view.company = null;
      renderAll();
      needCompany();
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('#pick').addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (!$('#company-field').hidden) {
        const code = companyFromForm();
        if (!code) return;
        if (code !== view.company) {
          loadCompany(code);
          return;
        }
      }
      if (view.company && $('#month').value) loadStatement($('#month').value);
    });
    $('#month').addEventListener('change', () => {
      if (view.company && $('#month').value) loadStatement($('#month').value);
    });
    $('#household-filter').addEventListener('input', () => {
      view.shown = PAGE;
      renderHouseholds();
    });
    $('#household-only').addEventListener('change', () => {
      view.shown = PAGE;
      renderHouseholds();
    });
    $('#households-more').addEventListener('click', () => {
      view.shown += PAGE;
      renderHouseholds();
    });
    document.addEventListener('hx:lang', () => {
      renderWho();
      renderAll();
      if (!$('#pick-problem').hidden && !view.company) needCompany();
    });
    HX.boot({
      roles: ['company', 'admin'],
      signInForm: $('#sign-in'),
      main: $('#office'),
      onReady,
    });
  });
})();
