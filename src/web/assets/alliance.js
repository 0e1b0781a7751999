// hongxin 红心 — the alliance's page (/alliance): is the programme working? The board of the
// Red Heart Property Alliance and the sector committee see, across every company and with no
// personal data, the fee collection rate of each compound month by month (from its takeover),
// how many households take part in spend 50 get 55, the cooperative's sales and what it shared,
// each company's allocations, settlements and arrears, and the figures by grid and building.
// Every chart is drawn here as inline SVG from the API's figures and has its table beside it;
// the one-page monthly summary prints on its own. Amounts are shown as the API sent them;
// ratios ("0.8532") become percentages by moving the decimal point, never by float arithmetic.
'use strict';

(function () {
  const { el, $, t, show } = HX;

  HX.strings({
    'zh-CN': {
      'role.alliance': '物业联盟',
      'alliance.title': '红心物业联盟 · 项目成效',
      'alliance.sign_in.title': '物业联盟登录',
      'alliance.month': '月份',
      'alliance.loading': '加载中…',
      'alliance.export.table': '导出表格',
      'alliance.export.csv': '下载 CSV',
      'alliance.export.xlsx': '下载 Excel（全部表格）',
      'alliance.print': '打印月报',
      'alliance.table.totals': '全部小区合计（按月）',
      'alliance.table.compounds': '小区（按月）',
      'alliance.table.grids': '网格',
      'alliance.table.buildings': '楼栋',
      'alliance.table.cooperatives': '合作社（按月）',
      'alliance.table.companies': '物业公司（按月）',
      'alliance.table.arrears': '欠费账龄',
      'alliance.summary.title': '红心物业联盟月报 · {month}',
      'alliance.summary.as_of': '数据截至 {date}；不含任何住户个人信息。',
      'alliance.summary.households': '住户',
      'alliance.summary.holders': '持有储值余额的住户',
      'alliance.summary.billed': '本月应收物业费',
      'alliance.summary.collected': '已收（当月 + 逾期）',
      'alliance.summary.collection_rate': '收缴率',
      'alliance.summary.in_month_rate': '当月收缴率',
      'alliance.summary.previous': '上月 {rate}',
      'alliance.summary.covered': '合作社盈利抵扣占比',
      'alliance.summary.topup_share': '充值住户占比',
      'alliance.summary.credit_sold': '售出储值 / 赠送',
      'alliance.summary.sales': '合作社销售（储值 / 现金）',
      'alliance.summary.pool': '分配池 / 已分配 / 储备',
      'alliance.summary.open': '尚未结账',
      'alliance.collection.title': '物业费收缴率（按小区、按月）',
      'alliance.collection.explain': '收缴率 = 已收 ÷ 应收（当月与逾期收缴，含合作社抵扣）。竖线为物业公司接管之月。',
      'alliance.collection.takeover': '接管',
      'alliance.participation.title': '居民参与 · {month}',
      'alliance.participation.explain': '居民购物50元换55元：本月充值户、消费户占小区住户的比例，及目前持有余额的住户。',
      'alliance.coop.title': '合作社：销售与分配',
      'alliance.coop.prepaid': '预付储值余额（当前）',
      'alliance.coop.custody': '应存管金额',
      'alliance.companies.title': '物业公司：合作社分配、结算与欠费',
      'alliance.places.title': '按网格 · {month}',
      'alliance.places.buildings': '按楼栋',
      'alliance.places.none': '（未登记）',
      'alliance.col.compound': '小区',
      'alliance.col.company': '物业公司',
      'alliance.col.taken_over': '接管日期',
      'alliance.col.households': '住户',
      'alliance.col.billed': '应收',
      'alliance.col.collected_in_month': '当月收缴',
      'alliance.col.collected_late': '逾期收缴',
      'alliance.col.outstanding': '未收',
      'alliance.col.collection_rate': '收缴率',
      'alliance.col.covered': '合作社抵扣',
      'alliance.col.topup': '充值户',
      'alliance.col.spend': '消费户',
      'alliance.col.holders': '持有余额户',
      'alliance.col.credit_sold': '售出储值',
      'alliance.col.bonus': '赠送',
      'alliance.col.month': '月份',
      'alliance.col.credit_sales': '储值销售',
      'alliance.col.cash_sales': '现金销售',
      'alliance.col.sales': '销售额',
      'alliance.col.profit': '利润',
      'alliance.col.pool': '分配池',
      'alliance.col.allocated': '已分配',
      'alliance.col.reserve': '储备',
      'alliance.col.prepaid_paid': '月末预付余额（本金）',
      'alliance.col.custody_base': '上季末预付余额（本金）',
      'alliance.col.cooperative': '合作社',
      'alliance.col.paid': '实收部分',
      'alliance.col.bonus_part': '赠送部分',
      'alliance.col.total': '合计',
      'alliance.col.received': '合作社分配',
      'alliance.col.settled': '已结算',
      'alliance.col.due': '合作社待付',
      'alliance.col.arrears': '欠费合计',
      'alliance.col.grid': '网格',
      'alliance.col.building': '楼栋',
      'alliance.age.0-30': '30天内',
      'alliance.age.31-90': '31–90天',
      'alliance.age.91-180': '91–180天',
      'alliance.age.over-180': '180天以上',
      'alliance.legend.topup': '充值户占比',
      'alliance.legend.spend': '消费户占比',
      'alliance.legend.holders': '持有余额占比',
      'alliance.legend.credit': '储值销售',
      'alliance.legend.cash': '现金销售',
      'alliance.legend.pool': '分配池',
      'alliance.none': '暂无数据',
    },
    en: {
      'role.alliance': 'Property alliance',
      'alliance.title': 'Red Heart Property Alliance · Is the programme working?',
      'alliance.sign_in.title': 'Property alliance: sign in',
      'alliance.month': 'Month',
      'alliance.loading': 'Loading…',
      'alliance.export.table': 'Table to export',
      'alliance.export.csv': 'Download CSV',
      'alliance.export.xlsx': 'Download Excel (every table)',
      'alliance.print': 'Print the monthly summary',
      'alliance.table.totals': 'All compounds (by month)',
      'alliance.table.compounds': 'Compounds (by month)',
      'alliance.table.grids': 'Grids',
      'alliance.table.buildings': 'Buildings',
      'alliance.table.cooperatives': 'Cooperatives (by month)',
      'alliance.table.companies': 'Companies (by month)',
      'alliance.table.arrears': 'Arrears by age',
      'alliance.summary.title': 'Red Heart Property Alliance · monthly summary {month}',
      'alliance.summary.as_of': 'Figures as of {date}; no resident’s personal data.',
      'alliance.summary.households': 'Households',
      'alliance.summary.holders': 'Households holding credit',
      'alliance.summary.billed': 'Property fees billed for the month',
      'alliance.summary.collected': 'Collected (in month + late)',
      'alliance.summary.collection_rate': 'Collection rate',
      'alliance.summary.in_month_rate': 'Collected within the month',
      'alliance.summary.previous': 'month before {rate}',
      'alliance.summary.covered': 'Share covered by the cooperative’s profit',
      'alliance.summary.topup_share': 'Households that topped up',
      'alliance.summary.credit_sold': 'Credit sold / bonus granted',
      'alliance.summary.sales': 'Cooperative sales (credit / cash)',
      'alliance.summary.pool': 'Pool / allocated / reserve',
      'alliance.summary.open': 'not closed yet',
      'alliance.collection.title': 'Fee collection rate by compound and month',
      'alliance.collection.explain': 'Collection rate = collected ÷ billed (within the month and late, the cooperative’s allocations included). The vertical line marks the month the company took the compound over.',
      'alliance.collection.takeover': 'takeover',
      'alliance.participation.title': 'Participation · {month}',
      'alliance.participation.explain': 'Spend 50, get 55: households that topped up or spent credit this month, and those holding credit now, as shares of each compound’s households.',
      'alliance.coop.title': 'The cooperative: sales and what it shared',
      'alliance.coop.prepaid': 'Prepaid credit outstanding (now)',
      'alliance.coop.custody': 'Custody deposit due',
      'alliance.companies.title': 'Companies: allocations, settlements and arrears',
      'alliance.places.title': 'By grid · {month}',
      'alliance.places.buildings': 'By building',
      'alliance.places.none': '(not recorded)',
      'alliance.col.compound': 'Compound',
      'alliance.col.company': 'Company',
      'alliance.col.taken_over': 'Taken over',
      'alliance.col.households': 'Households',
      'alliance.col.billed': 'Billed',
      'alliance.col.collected_in_month': 'Collected in month',
      'alliance.col.collected_late': 'Collected late',
      'alliance.col.outstanding': 'Outstanding',
      'alliance.col.collection_rate': 'Collection rate',
      'alliance.col.covered': 'Covered by cooperative',
      'alliance.col.topup': 'Topped up',
      'alliance.col.spend': 'Spent credit',
      'alliance.col.holders': 'Holding credit',
      'alliance.col.credit_sold': 'Credit sold',
      'alliance.col.bonus': 'Bonus',
      'alliance.col.month': 'Month',
      'alliance.col.credit_sales': 'Credit sales',
      'alliance.col.cash_sales': 'Cash sales',
      'alliance.col.sales': 'Sales',
      'alliance.col.profit': 'Profit',
      'alliance.col.pool': 'Pool',
      'alliance.col.allocated': 'Allocated',
      'alliance.col.reserve': 'Reserve',
      'alliance.col.prepaid_paid': 'Prepaid paid at month end',
      'alliance.col.custody_base': "Last quarter's prepaid balance",
      'alliance.col.cooperative': 'Cooperative',
      'alliance.col.paid': 'Paid part',
      'alliance.col.bonus_part': 'Bonus part',
      'alliance.col.total': 'Total',
      'alliance.col.received': 'Allocations received',
      'alliance.col.settled': 'Settled',
      'alliance.col.due': 'Due from cooperative',
      'alliance.col.arrears': 'Arrears',
      'alliance.col.grid': 'Grid',
      'alliance.col.building': 'Building',
      'alliance.age.0-30': '0–30 days',
      'alliance.age.31-90': '31–90 days',
      'alliance.age.91-180': '91–180 days',
      'alliance.age.over-180': 'Over 180 days',
      'alliance.legend.topup': 'Topped up',
      'alliance.legend.spend': 'Spent credit',
      'alliance.legend.holders': 'Holding credit',
      'alliance.legend.credit': 'Credit sales',
      'alliance.legend.cash': 'Cash sales',
      'alliance.legend.pool': 'Pool shared',
      'alliance.none': 'No figures yet',
    },
  });

  const TABLES = ['compounds', 'totals', 'grids', 'buildings', 'cooperatives', 'companies', 'arrears'];
  const AGES = ['0-30', '31-90', '91-180', 'over-180'];
  const view = { report: null, summary: null, month: null, session: null };

  // ---- figures as text ------------------------------------------------------------------

  // '0.8532' → '85.32%', by moving the decimal point in the string; null → '—'.
  function pct(ratio) {
    if (ratio === null || ratio === undefined) return '—';
    const s = String(ratio);
    const neg = s.startsWith('-');
    const [whole, frac = ''] = (neg ? s.slice(1) : s).split('.');
    const f = frac.padEnd(4, '0');
    const units = (BigInt(whole) * 100n + BigInt(f.slice(0, 2))).toString();
    return `${neg ? '-' : ''}${units}.${f.slice(2, 4)}%`;
  }

  // A ratio as a number between 0 and 1, for a chart's geometry only.
  function share(ratio) {
    return ratio === null || ratio === undefined ? null : Number(ratio);
  }

  // An amount's fen as a number, for a chart's geometry only (never shown, never summed).
  function scale(amount) {
    return Number(HX.fen(amount) ?? 0n);
  }

  const money = (a) => HX.yuan(a);
  const placeName = (name) => (name === '' ? t('alliance.places.none') : name);

  // ---- tables ---------------------------------------------------------------------------

  // columns: [{head, num, cell: (row) => text, cls}]
  function table(id, columns, rows, rowAttrs) {
    const head = el('tr', null, columns.map((c) => el('th', { class: c.num ? 'num' : null }, c.head)));
    const body = rows.map((r) => el('tr', rowAttrs ? rowAttrs(r) : null,
      columns.map((c) => el('td', { class: [c.num ? 'num' : '', c.cls || ''].join(' ').trim() || null }, c.cell(r)))));
    const tbl = el('table', { id }, el('thead', null, head), el('tbody', null, body));
    if (!rows.length) {
      tbl.append(el('tfoot', null, el('tr', null, el('td', { colspan: columns.length, class: 'muted' }, t('alliance.none')))));
    }
    return tbl;
  }

  // ---- charts (inline SVG) --------------------------------------------------------------

  const W = 640;
  const H = 260;
  const PAD = { left: 60, right: 36, top: 14, bottom: 40 };

  function svgEl(tag, attrs, ...children) {
    return el(tag, Object.assign({ svg: true }, attrs), ...children);
  }

  function axisY(svg, max, label) {
    for (let i = 0; i <= 4; i++) {
      const y = PAD.top + (H - PAD.top - PAD.bottom) * (1 - i / 4);
      svg.append(svgEl('line', { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, class: 'grid-line' }));
      svg.append(svgEl('text', { x: PAD.left - 6, y: y + 4, class: 'axis-label', 'text-anchor': 'end' }, label(max * i / 4)));
    }
  }

  function xOf(i, n) {
    const span = W - PAD.left - PAD.right;
    return PAD.left + (n <= 1 ? span / 2 : (span * i) / (n - 1));
  }

  function yOf(v, max) {
    return PAD.top + (H - PAD.top - PAD.bottom) * (1 - (max > 0 ? v / max : 0));
  }

  // Collection rate per compound over the months, with each takeover marked.
  function collectionChart(report) {
    const months = report.months;
    const svg = svgEl('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': 'collection-chart-title', id: 'collection-svg' });
    svg.append(svgEl('title', { id: 'collection-chart-title' }, t('alliance.collection.title')));
    const max = Math.max(1, ...report.compounds.flatMap((c) => c.months.map((m) => share(m.fees.collection_rate) || 0)));
    axisY(svg, max, (v) => `${Math.round(v * 100)}%`);
    months.forEach((m, i) => {
      svg.append(svgEl('text', { x: xOf(i, months.length), y: H - PAD.bottom + 16, class: 'axis-label', 'text-anchor': 'middle' }, m));
    });
    const legend = el('div', { class: 'legend' });
    report.compounds.forEach((c, k) => {
      const cls = `series series-${k % 12}`;
      const points = c.months
        .filter((m) => m.fees.collection_rate !== null)
        .map((m) => [xOf(months.indexOf(m.month), months.length), yOf(share(m.fees.collection_rate), max), m]);
      if (points.length) {
        svg.append(svgEl('polyline', {
          points: points.map(([x, y]) => `${x},${y}`).join(' '),
          class: `${cls} rate-line`,
          dataset: { compound: c.compound },
        }));
        for (const [x, y, m] of points) {
          svg.append(svgEl('circle', { cx: x, cy: y, r: 3, class: cls },
            svgEl('title', null, `${c.compound} ${m.month} ${pct(m.fees.collection_rate)}`)));
        }
      }
      if (c.taken_over_on) {
        const month = c.taken_over_on.slice(0, 7);
        const i = months.indexOf(month);
        if (i >= 0) {
          const x = xOf(i, months.length);
          svg.append(svgEl('line', {
            x1: x, x2: x, y1: PAD.top, y2: H - PAD.bottom,
            class: `${cls} takeover`, dataset: { compound: c.compound },
          }, svgEl('title', null, `${c.compound} ${t('alliance.collection.takeover')} ${c.taken_over_on}`)));
        }
      }
      legend.append(el('span', null, el('span', { class: `swatch ${cls}` }), c.compound));
    });
    return [svg, legend];
  }

  // Grouped bars: per group (label), one bar per series (value between 0 and max).
  function barChart(id, groups, series, max, label) {
    const svg = svgEl('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', id });
    axisY(svg, max, label);
    const span = W - PAD.left - PAD.right;
    const slot = span / Math.max(1, groups.length);
    const barW = Math.max(2, (slot * 0.8) / series.length);
    groups.forEach((g, i) => {
      const x0 = PAD.left + slot * i + slot * 0.1;
      series.forEach((s, j) => {
        const v = g.values[j];
        if (v === null || v === undefined) return;
        const top = yOf(Math.max(0, v), max);
        const base = yOf(0, max);
        svg.append(svgEl('rect', {
          x: x0 + barW * j, y: top, width: barW * 0.9, height: Math.max(0, base - top), class: `bar ${s.cls}`,
        }, svgEl('title', null, `${g.label} ${s.name}: ${g.texts[j]}`)));
      });
      svg.append(svgEl('text', { x: x0 + (barW * series.length) / 2, y: H - PAD.bottom + 16, class: 'axis-label', 'text-anchor': 'middle' }, g.label));
    });
    const legend = el('div', { class: 'legend' },
      series.map((s) => el('span', null, el('span', { class: `swatch ${s.cls}` }), s.name)));
    return [svg, legend];
  }

  // ---- sections -------------------------------------------------------------------------

  function monthOf(series, month) {
    return series.find((m) => m.month === month) || null;
  }

  function renderSummary(s) {
    $('#summary-title').textContent = t('alliance.summary.title', { month: s.month });
    $('#summary-as-of').textContent = t('alliance.summary.as_of', { date: s.as_of });
    const f = s.totals.fees;
    const p = s.totals.participation;
    const prev = s.previous ? t('alliance.summary.previous', { rate: pct(s.previous.fees.collection_rate) }) : '';
    const coops = s.cooperatives.map((c) => {
      const close = c.month.close;
      return [
        el('dt', null, `${c.cooperative} · ${t('alliance.summary.sales')}`),
        el('dd', { class: 'summary-sales', dataset: { cooperative: c.cooperative } },
          `${money(c.month.sales)} (${money(c.month.credit_sales)} / ${money(c.month.cash_sales)})`),
        el('dt', null, `${c.cooperative} · ${t('alliance.summary.pool')}`),
        el('dd', { class: 'summary-pool', dataset: { cooperative: c.cooperative } },
          close ? `${money(close.pool)} / ${money(close.allocated)} / ${money(close.reserve)}` : t('alliance.summary.open')),
      ];
    });
    const figures = el('dl', { class: 'figures summary-figures' },
      el('dt', null, t('alliance.summary.households')), el('dd', { id: 'summary-households' }, String(s.households)),
      el('dt', null, t('alliance.summary.holders')), el('dd', { id: 'summary-holders' }, `${s.holders} (${pct(s.holder_share)})`),
      el('dt', null, t('alliance.summary.billed')), el('dd', { id: 'summary-billed' }, money(f.billed)),
      el('dt', null, t('alliance.summary.collected')), el('dd', { id: 'summary-collected' }, money(f.collected)),
      el('dt', null, t('alliance.summary.collection_rate')), el('dd', { id: 'summary-rate' }, `${pct(f.collection_rate)} ${prev}`.trim()),
      el('dt', null, t('alliance.summary.in_month_rate')), el('dd', { id: 'summary-in-month' }, pct(f.in_month_rate)),
      el('dt', null, t('alliance.summary.covered')), el('dd', { id: 'summary-covered' }, pct(f.covered_by_cooperative)),
      el('dt', null, t('alliance.summary.topup_share')), el('dd', { id: 'summary-topups' }, `${p.topup_households} (${pct(p.topup_share)})`),
      el('dt', null, t('alliance.summary.credit_sold')), el('dd', { id: 'summary-credit' }, `${money(p.credit_sold)} / ${money(p.bonus_granted)}`),
      coops.flat(),
    );
    const compounds = table('summary-compounds', [
      { head: t('alliance.col.compound'), cell: (c) => `${c.compound} ${c.name}` },
      { head: t('alliance.col.company'), cell: (c) => c.company },
      { head: t('alliance.col.billed'), num: true, cell: (c) => money(c.figures.fees.billed), cls: 'billed' },
      { head: t('alliance.col.collection_rate'), num: true, cell: (c) => pct(c.figures.fees.collection_rate), cls: 'rate' },
      { head: t('alliance.col.covered'), num: true, cell: (c) => pct(c.figures.fees.covered_by_cooperative) },
      { head: t('alliance.col.topup'), num: true, cell: (c) => pct(c.figures.participation.topup_share) },
      { head: t('alliance.col.outstanding'), num: true, cell: (c) => money(c.figures.fees.outstanding) },
    ], s.compounds, (c) => ({ dataset: { compound: c.compound } }));
    const companies = table('summary-companies', [
      { head: t('alliance.col.company'), cell: (k) => `${k.company} ${k.name}` },
      { head: t('alliance.col.received'), num: true, cell: (k) => money(k.month.allocations_received) },
      { head: t('alliance.col.settled'), num: true, cell: (k) => money(k.month.settlements_received) },
      { head: t('alliance.col.due'), num: true, cell: (k) => money(k.month.outstanding) },
      { head: t('alliance.col.arrears'), num: true, cell: (k) => money(k.arrears.total) },
    ], s.companies, (k) => ({ dataset: { company: k.company } }));
    $('#summary-body').replaceChildren(figures, compounds, companies);
  }

  function renderCollection(r) {
    const [svg, legend] = collectionChart(r);
    $('#collection-chart').replaceChildren(svg, legend);
    const cols = [
      { head: t('alliance.col.compound'), cell: (c) => c.compound },
      { head: t('alliance.col.taken_over'), cell: (c) => c.taken_over_on || '—', cls: 'taken-over' },
      ...r.months.map((m) => ({
        head: m,
        num: true,
        cell: (c) => {
          const x = monthOf(c.months, m);
          return x ? pct(x.fees.collection_rate) : '—';
        },
        cls: `rate rate-${m}`,
      })),
    ];
    $('#collection-table').replaceChildren(table('collection-rates', cols, r.compounds, (c) => ({ dataset: { compound: c.compound } })));
  }

  function renderParticipation(r) {
    const month = r.month;
    $('#participation-title').textContent = t('alliance.participation.title', { month });
    const rows = r.compounds.map((c) => ({ c, m: monthOf(c.months, month) }));
    const partOf = (x) => (x.m ? x.m.participation : null);
    const [svg, legend] = barChart('participation-svg', rows.map((x) => ({
      label: x.c.compound,
      values: [share(partOf(x)?.topup_share), share(partOf(x)?.spend_share), share(x.c.holder_share)],
      texts: [pct(partOf(x)?.topup_share), pct(partOf(x)?.spend_share), pct(x.c.holder_share)],
    })), [
      { name: t('alliance.legend.topup'), cls: 'bar-topup' },
      { name: t('alliance.legend.spend'), cls: 'bar-spend' },
      { name: t('alliance.legend.holders'), cls: 'bar-holders' },
    ], 1, (v) => `${Math.round(v * 100)}%`);
    $('#participation-chart').replaceChildren(svg, legend);
    $('#participation-table').replaceChildren(table('participation-rates', [
      { head: t('alliance.col.compound'), cell: (x) => x.c.compound },
      { head: t('alliance.col.households'), num: true, cell: (x) => String(x.c.households), cls: 'households' },
      { head: t('alliance.col.topup'), num: true, cell: (x) => `${partOf(x)?.topup_households ?? 0} (${pct(partOf(x)?.topup_share)})`, cls: 'topup' },
      { head: t('alliance.col.spend'), num: true, cell: (x) => `${partOf(x)?.spend_households ?? 0} (${pct(partOf(x)?.spend_share)})`, cls: 'spend' },
      { head: t('alliance.col.holders'), num: true, cell: (x) => `${x.c.holders} (${pct(x.c.holder_share)})`, cls: 'holders' },
      { head: t('alliance.col.credit_sold'), num: true, cell: (x) => money(partOf(x)?.credit_sold ?? '0.00'), cls: 'credit-sold' },
      { head: t('alliance.col.bonus'), num: true, cell: (x) => money(partOf(x)?.bonus_granted ?? '0.00') },
    ], rows, (x) => ({ dataset: { compound: x.c.compound } })));
  }

  function renderCooperative(r) {
    const lines = r.cooperatives.flatMap((c) => c.months.map((m) => ({ coop: c.cooperative, m })));
    const max = Math.max(1, ...lines.flatMap(({ m }) => [scale(m.credit_sales), scale(m.cash_sales), m.close ? scale(m.close.pool) : 0]));
    const [svg, legend] = barChart('coop-svg', lines.map(({ coop, m }) => ({
      label: r.cooperatives.length > 1 ? `${coop} ${m.month}` : m.month,
      values: [scale(m.credit_sales), scale(m.cash_sales), m.close ? scale(m.close.pool) : null],
      texts: [money(m.credit_sales), money(m.cash_sales), m.close ? money(m.close.pool) : '—'],
    })), [
      { name: t('alliance.legend.credit'), cls: 'bar-credit' },
      { name: t('alliance.legend.cash'), cls: 'bar-cash' },
      { name: t('alliance.legend.pool'), cls: 'bar-pool' },
    ], max, (v) => `¥${Math.round(v / 100)}`);
    $('#coop-chart').replaceChildren(svg, legend);
    const close = (x, f) => (x.m.close ? money(f(x.m.close)) : '—');
    $('#coop-table').replaceChildren(table('coop-months', [
      { head: t('alliance.col.cooperative'), cell: (x) => x.coop },
      { head: t('alliance.col.month'), cell: (x) => x.m.month },
      { head: t('alliance.col.credit_sales'), num: true, cell: (x) => money(x.m.credit_sales), cls: 'credit-sales' },
      { head: t('alliance.col.cash_sales'), num: true, cell: (x) => money(x.m.cash_sales), cls: 'cash-sales' },
      { head: t('alliance.col.sales'), num: true, cell: (x) => money(x.m.sales), cls: 'sales' },
      { head: t('alliance.col.profit'), num: true, cell: (x) => close(x, (c) => c.profit), cls: 'profit' },
      { head: t('alliance.col.pool'), num: true, cell: (x) => close(x, (c) => c.pool), cls: 'pool' },
      { head: t('alliance.col.reserve'), num: true, cell: (x) => close(x, (c) => c.reserve) },
      { head: t('alliance.col.prepaid_paid'), num: true, cell: (x) => money(x.m.prepaid_paid), cls: 'prepaid-paid' },
      { head: t('alliance.col.custody_base'), num: true, cell: (x) => money(x.m.custody_base), cls: 'custody-base' },
      { head: t('alliance.coop.custody'), num: true, cell: (x) => money(x.m.custody_deposit), cls: 'custody' },
    ], lines, (x) => ({ dataset: { cooperative: x.coop, month: x.m.month } })));
    $('#coop-prepaid').replaceChildren(
      el('h3', null, t('alliance.coop.prepaid')),
      table('coop-prepaid-table', [
        { head: t('alliance.col.cooperative'), cell: (c) => c.cooperative },
        { head: t('alliance.col.paid'), num: true, cell: (c) => money(c.prepaid.paid), cls: 'prepaid-paid' },
        { head: t('alliance.col.bonus_part'), num: true, cell: (c) => money(c.prepaid.bonus) },
        { head: t('alliance.col.total'), num: true, cell: (c) => money(c.prepaid.total) },
        { head: t('alliance.coop.custody'), num: true, cell: (c) => money(c.months.find((m) => m.month === r.month)?.custody_deposit), cls: 'custody' },
      ], r.cooperatives, (c) => ({ dataset: { cooperative: c.cooperative } })),
    );
  }

  function renderCompanies(r) {
    $('#companies-table').replaceChildren(table('companies-figures', [
      { head: t('alliance.col.company'), cell: (k) => `${k.company} ${k.name}` },
      { head: t('alliance.col.households'), num: true, cell: (k) => String(k.households) },
      { head: t('alliance.col.received'), num: true, cell: (k) => money(k.allocations_received), cls: 'received' },
      { head: t('alliance.col.settled'), num: true, cell: (k) => money(k.settlements_received), cls: 'settled' },
      { head: t('alliance.col.due'), num: true, cell: (k) => money(k.outstanding), cls: 'due' },
      ...AGES.map((a) => ({ head: t(`alliance.age.${a}`), num: true, cell: (k) => money(k.arrears[a]), cls: `age-${a}` })),
      { head: t('alliance.col.arrears'), num: true, cell: (k) => money(k.arrears.total), cls: 'arrears' },
    ], r.companies, (k) => ({ dataset: { company: k.company } })));
  }

  function placeColumns(withBuilding) {
    return [
      { head: t('alliance.col.compound'), cell: (p) => p.compound },
      { head: t('alliance.col.grid'), cell: (p) => placeName(p.grid) },
      ...(withBuilding ? [{ head: t('alliance.col.building'), cell: (p) => placeName(p.building) }] : []),
      { head: t('alliance.col.households'), num: true, cell: (p) => String(p.households), cls: 'households' },
      { head: t('alliance.col.billed'), num: true, cell: (p) => money(p.fees.billed), cls: 'billed' },
      { head: t('alliance.col.collection_rate'), num: true, cell: (p) => pct(p.fees.collection_rate), cls: 'rate' },
      { head: t('alliance.col.outstanding'), num: true, cell: (p) => money(p.fees.outstanding), cls: 'outstanding' },
      { head: t('alliance.col.topup'), num: true, cell: (p) => `${p.participation.topup_households} (${pct(p.participation.topup_share)})`, cls: 'topup' },
      { head: t('alliance.col.holders'), num: true, cell: (p) => `${p.holders} (${pct(p.holder_share)})` },
    ];
  }

  function renderPlaces(r) {
    $('#places-title').textContent = t('alliance.places.title', { month: r.month });
    const attrs = (p) => ({ dataset: { compound: p.compound, grid: p.grid, building: p.building ?? '' } });
    $('#grids-table').replaceChildren(table('grid-figures', placeColumns(false), r.grids, attrs));
    $('#buildings-table').replaceChildren(table('building-figures', placeColumns(true), r.buildings, attrs));
  }

  function renderControls(r) {
    const months = $('#alliance-month');
    months.replaceChildren(...r.months.slice().reverse().map((m) => el('option', { value: m }, m)));
    months.value = r.month;
    const tables = $('#alliance-table');
    const chosen = tables.value || 'compounds';
    tables.replaceChildren(...TABLES.map((name) => el('option', { value: name }, t(`alliance.table.${name}`))));
    tables.value = chosen;
    updateLinks();
  }

  function updateLinks() {
    const month = encodeURIComponent($('#alliance-month').value || view.month || '');
    const table = encodeURIComponent($('#alliance-table').value || 'compounds');
    const m = month ? `&month=${month}` : '';
    $('#download-csv').href = `/v1/alliance/report?format=csv&table=${table}${m}`;
    $('#download-xlsx').href = `/v1/alliance/report?format=xlsx${m}`;
  }

  function render() {
    const r = view.report;
    if (!r) return;
    renderControls(r);
    if (view.summary) renderSummary(view.summary);
    renderCollection(r);
    renderParticipation(r);
    renderCooperative(r);
    renderCompanies(r);
    renderPlaces(r);
  }

  async function load(month) {
    const problem = $('#alliance-problem');
    show($('#alliance-loading'), true);
    const q = month ? `?month=${encodeURIComponent(month)}` : '';
    const [report, summary] = await Promise.all([
      HX.api('GET', `/v1/alliance/report${q}`),
      HX.api('GET', `/v1/alliance/summary${q}`),
    ]);
    show($('#alliance-loading'), false);
    if (!report.ok || !summary.ok) {
      HX.showProblem(problem, (report.ok ? summary : report).problem);
      return;
    }
    HX.showProblem(problem, null);
    view.report = report.data;
    view.summary = summary.data;
    view.month = report.data.month;
    // The custody deposit is in the report itself, per cooperative and month (the maintained
    // paid credit per month): no second request.
    render();
    document.body.dataset.loaded = view.month;
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('#alliance-month').addEventListener('change', (ev) => load(ev.target.value));
    $('#alliance-table').addEventListener('change', updateLinks);
    $('#print-summary').addEventListener('click', () => window.print());
    HX.boot({
      roles: ['alliance', 'admin'],
      signInForm: $('#sign-in'),
      main: $('#alliance-main'),
      onReady: (session) => {
        view.session = session;
        load(null);
      },
    });
  });
  document.addEventListener('hx:lang', () => {
    if (view.session) $('#who').textContent = t(`role.${view.session.role}`);
    render();
  });
})();
