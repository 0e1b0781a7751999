// hongxin 红心 — the cooperative accountant's page (/coop): the daily till report per shop,
// the month close (preview, then close after a confirmation), the prepaid liability and its
// custody deposit, what the cooperative owes each property company with a form to record a
// settlement, and till pairing codes. Every figure is the API's string, shown as it came.
'use strict';

(function () {
  const { el, $, t, show } = HX;

  HX.strings({
    'zh-CN': {
      'coop.sign_in.title': '合作社财务登录',
      'coop.admin.cooperative': '合作社代码（管理员）',
      'coop.admin.need': '请先填写合作社代码',
      'coop.tab.till': '日结',
      'coop.tab.close': '月结',
      'coop.tab.prepaid': '预付负债',
      'coop.tab.settlements': '物业结算',
      'coop.tab.pairing': '收银台配对',
      'coop.show': '查看',
      'coop.cancel': '取消',
      'coop.month': '月份（YYYY-MM）',
      'coop.loading': '加载中…',
      'coop.count': '{n} 笔',
      'coop.till.title': '门店日结',
      'coop.page_title': '红心 · 合作社财务',
      'coop.till.csv': '导出 CSV',
      'coop.till.total': '全部门店合计',
      'coop.till.total_shops': '{n} 家门店',
      'coop.till.date': '营业日',
      'coop.till.none': '本合作社没有门店',
      'coop.till.quiet': '当日无交易',
      'coop.till.topups': '充值',
      'coop.till.paid': '实收',
      'coop.till.bonus': '赠送',
      'coop.till.credited': '入账',
      'coop.till.sales': '销售',
      'coop.till.refunds': '退款',
      'coop.till.vouchers': '兑换券核销',
      'coop.till.vouchers_count': '{n} 次 / {v} 张',
      'coop.till.drawer': '钱箱（按收款方式）',
      'coop.till.method': '方式',
      'coop.till.tender': '付款方式',
      'coop.till.net': '净额',
      'coop.till.amount': '金额',
      'coop.till.as_vouchers': '（其中 {n} 笔以兑换券发放）',
      'coop.tender.wallet': '钱包',
      'coop.tender.voucher': '兑换券',
      'coop.tender.cash': '现金',
      'coop.tender.wechat': '微信',
      'coop.tender.alipay': '支付宝',
      'coop.tender.bank': '银行',
      'coop.close.title': '月结：利润分配',
      'coop.estimate.title': '{month} 至今（估算）',
      'coop.estimate.marker': '估算，不是结账结果',
      'coop.estimate.note': '按截至 {date} 的账目，用结账的同一算法计算；月末结账时以实际为准，期间的销售、费用和退款都会改变它。',
      'coop.close.preview': '预览',
      'coop.close.start': '结账…',
      'coop.close.confirm': '确认结账',
      'coop.close.confirm_text': '确认结账 {month}：向 {households} 户分配 {allocated} 抵扣物业费，结余 {reserve} 转入下月。结账后该月不能再记账，此操作不可撤销。',
      'coop.close.closed': '已结账（凭证 #{entry}）',
      'coop.close.preview_state': '预览：尚未结账',
      'coop.close.done': '{month} 已结账',
      'coop.close.not_over': '{month} 尚未结束（营业日 {today}），{from} 起才能结账。',
      'coop.close.bad_month': '月份格式应为 YYYY-MM，例如 2026-10',
      'coop.close.sales': '销售额',
      'coop.close.cogs': '销售成本',
      'coop.close.promotion': '充值赠送',
      'coop.close.expenses': '费用',
      'coop.close.profit': '利润',
      'coop.close.loss_carried_in': '以前月份亏损',
      'coop.close.loss_carried_out': '结转亏损',
      'coop.close.distributed': '本月分配额',
      'coop.close.reserve_in': '上月结余',
      'coop.close.pool': '分配池',
      'coop.close.allocated': '已分配',
      'coop.close.reserve': '结余（转下月）',
      'coop.close.households': '受益户数',
      'coop.close.basis': '分配依据',
      'coop.close.policy': '政策',
      'coop.close.companies': '按物业公司',
      'coop.close.company': '物业公司',
      'coop.close.no_companies': '本月没有分配',
      'coop.basis.credit_spend': '按储值消费',
      'coop.basis.spend': '按消费',
      'coop.basis.equal': '平均',
      'coop.basis.area': '按面积',
      'coop.prepaid.title': '预付负债与存管资金',
      'coop.prepaid.as_of': '截至 {date}',
      'coop.prepaid.line': '类别',
      'coop.prepaid.count': '账户数',
      'coop.prepaid.wallets': '钱包',
      'coop.prepaid.vouchers': '有效兑换券',
      'coop.prepaid.expired_vouchers': '已过期兑换券（仍欠持券人，可换新券）',
      'coop.prepaid.total': '合计',
      'coop.prepaid.paid': '实收部分',
      'coop.prepaid.bonus': '赠送部分',
      'coop.prepaid.sum': '余额',
      'coop.breakage.title': '已确认的过期未用余额',
      'coop.breakage.explain': '兑换券过期满政策规定的月数后才确认；换新券时冲回。不计入上面的预付负债。',
      'coop.breakage.paid': '实收部分转入过期收入',
      'coop.breakage.bonus': '赠送部分作废',
      'coop.custody.vouchers': '兑换券（含已过期仍欠）',
      'coop.custody.title': '存管资金',
      'coop.custody.quarter': '上季末',
      'coop.custody.balance': '上季末预付余额（实收）',
      'coop.custody.ratio': '存管比例',
      'coop.custody.deposit': '应存管金额',
      'coop.custody.policy': '政策',
      'coop.settle.title': '应付物业公司',
      'coop.settle.company': '物业公司',
      'coop.settle.opening': '月初应付',
      'coop.settle.allocated': '本月分配',
      'coop.settle.settled': '本月已付',
      'coop.settle.outstanding': '未付',
      'coop.settle.total': '合计',
      'coop.settle.none': '本合作社尚未欠任何物业公司款项',
      'coop.settle.record': '记录付款（银行转账）',
      'coop.settle.amount': '金额（元）',
      'coop.settle.reference': '银行流水号',
      'coop.settle.submit': '记录付款',
      'coop.settle.pick': '请选择物业公司',
      'coop.settle.owed': '当前未付 {amount}',
      'coop.settle.done': '已记录：向 {company} 付款 {amount}，尚欠 {outstanding}',
      'coop.settle.need_reference': '请填写银行流水号',
      'coop.pair.title': '收银台配对码',
      'coop.pair.shop': '门店代码',
      'coop.pair.make': '生成配对码',
      'coop.pair.explain': '在收银平板的登录页输入此配对码。仅可使用一次。',
      'coop.pair.for': '门店 {shop}',
      'coop.pair.expires': '有效至 {time}',
      'coop.pair.expired': '已过期，请重新生成',
      'coop.paired.title': '已配对的收银台',
      'coop.paired.explain': '平板丢失或不再使用时，在此让它退出登录。',
      'coop.paired.none': '没有已登录的配对收银台。',
      'coop.paired.shop': '门店',
      'coop.paired.until': '登录有效至',
      'coop.paired.end': '退出登录',
    },
    en: {
      'coop.sign_in.title': 'Cooperative accounts: sign in',
      'coop.admin.cooperative': 'Cooperative code (admin)',
      'coop.admin.need': 'Enter the cooperative code first',
      'coop.tab.till': 'Daily tills',
      'coop.tab.close': 'Month close',
      'coop.tab.prepaid': 'Prepaid liability',
      'coop.tab.settlements': 'Settlements',
      'coop.tab.pairing': 'Pair a till',
      'coop.show': 'Show',
      'coop.cancel': 'Cancel',
      'coop.month': 'Month (YYYY-MM)',
      'coop.loading': 'Loading…',
      'coop.count': '{n}',
      'coop.till.title': 'Daily till report',
      'coop.page_title': 'Hongxin · Cooperative',
      'coop.till.csv': 'Export CSV',
      'coop.till.total': 'All shops',
      'coop.till.total_shops': '{n} shops',
      'coop.till.date': 'Business date',
      'coop.till.none': 'This cooperative has no shops',
      'coop.till.quiet': 'Nothing passed over the till that day',
      'coop.till.topups': 'Top-ups',
      'coop.till.paid': 'Paid',
      'coop.till.bonus': 'Bonus',
      'coop.till.credited': 'Credited',
      'coop.till.sales': 'Sales',
      'coop.till.refunds': 'Refunds',
      'coop.till.vouchers': 'Vouchers redeemed',
      'coop.till.vouchers_count': '{n} times / {v} vouchers',
      'coop.till.drawer': 'Drawer by method',
      'coop.till.method': 'Method',
      'coop.till.tender': 'Tender',
      'coop.till.net': 'Net',
      'coop.till.amount': 'Amount',
      'coop.till.as_vouchers': '({n} delivered as vouchers)',
      'coop.tender.wallet': 'Wallet',
      'coop.tender.voucher': 'Voucher',
      'coop.tender.cash': 'Cash',
      'coop.tender.wechat': 'WeChat Pay',
      'coop.tender.alipay': 'Alipay',
      'coop.tender.bank': 'Bank',
      'coop.close.title': 'Month close: profit allocation',
      'coop.estimate.title': '{month} so far (estimate)',
      'coop.estimate.marker': 'An estimate, not a close',
      'coop.estimate.note': 'The books to {date}, worked out as the close would; the close at the month’s end decides, and every sale, expense and refund until then changes it.',
      'coop.close.preview': 'Preview',
      'coop.close.start': 'Close the month…',
      'coop.close.confirm': 'Close it',
      'coop.close.confirm_text': 'Close {month}: allocate {allocated} toward the fees of {households} households and carry {reserve} to next month? Nothing more can be posted into the month; this cannot be undone.',
      'coop.close.closed': 'Closed (entry #{entry})',
      'coop.close.preview_state': 'Preview: not closed yet',
      'coop.close.done': '{month} is closed',
      'coop.close.not_over': '{month} has not ended (business date {today}); it can be closed from {from}.',
      'coop.close.bad_month': 'Write the month as YYYY-MM, e.g. 2026-10',
      'coop.close.sales': 'Sales',
      'coop.close.cogs': 'Cost of goods sold',
      'coop.close.promotion': 'Top-up bonus',
      'coop.close.expenses': 'Expenses',
      'coop.close.profit': 'Profit',
      'coop.close.loss_carried_in': 'Losses carried in',
      'coop.close.loss_carried_out': 'Losses carried out',
      'coop.close.distributed': 'Distributed share',
      'coop.close.reserve_in': 'Reserve carried in',
      'coop.close.pool': 'Pool',
      'coop.close.allocated': 'Allocated',
      'coop.close.reserve': 'Reserve (carried on)',
      'coop.close.households': 'Households',
      'coop.close.basis': 'Basis',
      'coop.close.policy': 'Policy',
      'coop.close.companies': 'By company',
      'coop.close.company': 'Company',
      'coop.close.no_companies': 'Nothing allocated this month',
      'coop.basis.credit_spend': 'credit spent',
      'coop.basis.spend': 'spending',
      'coop.basis.equal': 'equal shares',
      'coop.basis.area': 'floor area',
      'coop.prepaid.title': 'Prepaid liability and custody deposit',
      'coop.prepaid.as_of': 'as of {date}',
      'coop.prepaid.line': 'Kind',
      'coop.prepaid.count': 'Accounts',
      'coop.prepaid.wallets': 'Wallets',
      'coop.prepaid.vouchers': 'Vouchers within validity',
      'coop.prepaid.expired_vouchers': 'Expired vouchers (still owed, exchangeable)',
      'coop.prepaid.total': 'Total',
      'coop.prepaid.paid': 'Paid',
      'coop.prepaid.bonus': 'Bonus',
      'coop.prepaid.sum': 'Balance',
      'coop.breakage.title': 'Breakage recognised to date',
      'coop.breakage.explain': 'Recognised only once a voucher has been expired for the months the policy names; an exchange reverses it. Not part of the liability above.',
      'coop.breakage.paid': 'Paid part to breakage income',
      'coop.breakage.bonus': 'Bonus forfeited',
      'coop.custody.vouchers': 'Vouchers (expired but owed included)',
      'coop.custody.title': 'Custody deposit',
      'coop.custody.quarter': 'Last quarter end',
      'coop.custody.balance': 'Prepaid (paid part) at quarter end',
      'coop.custody.ratio': 'Ratio',
      'coop.custody.deposit': 'Deposit required',
      'coop.custody.policy': 'Policy',
      'coop.settle.title': 'Owed to property companies',
      'coop.settle.company': 'Company',
      'coop.settle.opening': 'Owed at start',
      'coop.settle.allocated': 'Allocated',
      'coop.settle.settled': 'Settled',
      'coop.settle.outstanding': 'Outstanding',
      'coop.settle.total': 'Total',
      'coop.settle.none': 'The cooperative owes no property company anything yet',
      'coop.settle.record': 'Record a payment (bank transfer)',
      'coop.settle.amount': 'Amount (yuan)',
      'coop.settle.reference': 'Bank reference',
      'coop.settle.submit': 'Record payment',
      'coop.settle.pick': 'Choose a company',
      'coop.settle.owed': 'Outstanding now {amount}',
      'coop.settle.done': 'Recorded: paid {amount} to {company}; {outstanding} still owed',
      'coop.settle.need_reference': 'Enter the bank reference',
      'coop.pair.title': 'Till pairing code',
      'coop.pair.shop': 'Shop code',
      'coop.pair.make': 'Make a code',
      'coop.pair.explain': 'Type this code on the till tablet\'s sign-in page. It works once.',
      'coop.pair.for': 'shop {shop}',
      'coop.pair.expires': 'valid until {time}',
      'coop.pair.expired': 'Expired; make a new one',
      'coop.paired.title': 'Paired tills',
      'coop.paired.explain': 'When a tablet is lost or no longer used, sign it out here.',
      'coop.paired.none': 'No paired till is signed in.',
      'coop.paired.shop': 'Shop',
      'coop.paired.until': 'Signed in until',
      'coop.paired.end': 'Sign out',
    },
  });

  const state = {
    session: null,
    today: null, // the business date, from the prepaid report
    tab: 'till',
    tillSeq: 0,
    settlementsSeq: 0,
    till: null,
    close: null, // {month, data} or {month, problem}
    prepaid: null,
    settlements: null,
    lastSettlement: null,
    pairing: null,
  };
  const closeAttempt = new HX.Attempt();
  const settleAttempt = new HX.Attempt();

  // ---- helpers --------------------------------------------------------------------------

  function isAdmin() {
    return state.session && state.session.role === 'admin';
  }

  function cooperative() {
    return isAdmin() ? $('#coop-code').value.trim() : null;
  }

  // '?a=b&cooperative=C' with the admin's cooperative added.
  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) if (v) q.set(k, v);
    const c = cooperative();
    if (c) q.set('cooperative', c);
    const s = q.toString();
    return s ? `?${s}` : '';
  }

  function withCoop(body) {
    const c = cooperative();
    return c ? Object.assign({ cooperative: c }, body) : body;
  }

  function needCoop(box) {
    if (isAdmin() && !cooperative()) {
      HX.showProblem(box, { code: 'coop_needed', detail: t('coop.admin.need') });
      $('#coop-code').classList.add('invalid');
      return true;
    }
    $('#coop-code').classList.remove('invalid');
    return false;
  }

  function tender(name) {
    const key = `coop.tender.${name}`;
    const text = t(key);
    return text === key ? name : text;
  }

  function money(text, cls) {
    return el('td', { class: `num ${cls || ''}`.trim() }, HX.yuan(text));
  }

  function loading(box) {
    box.replaceChildren(el('p', { class: 'muted loading' }, t('coop.loading')));
  }

  function figures(rows) {
    return el('dl', { class: 'figures' },
      rows.flatMap(([key, value, id]) => [el('dt', {}, t(key)), el('dd', { id, class: 'num' }, value)]));
  }

  function monthOf(date) {
    return date ? date.slice(0, 7) : '';
  }

  function previousMonth(month) {
    const [y, m] = month.split('-').map((x) => parseInt(x, 10));
    return m === 1 ? `${y - 1}-12` : `${y}-${String(m - 1).padStart(2, '0')}`;
  }

  function nextMonthFirst(month) {
    const [y, m] = month.split('-').map((x) => parseInt(x, 10));
    return m === 12 ? `${y + 1}-01-01` : `${y}-${String(m + 1).padStart(2, '0')}-01`;
  }

  // ---- tabs -----------------------------------------------------------------------------

  function selectTab(name) {
    state.tab = name;
    for (const b of document.querySelectorAll('.coop-tabs button')) {
      b.setAttribute('aria-selected', String(b.dataset.tab === name));
    }
    for (const s of document.querySelectorAll('section.coop-tab')) show(s, s.dataset.tab === name);
    if (name === 'prepaid' && !state.prepaid) loadPrepaid();
    if (name === 'close' && state.today && !state.estimate) loadEstimate();
    if (name === 'settlements' && !state.settlements) loadSettlements();
    if (name === 'pairing') loadPairedTills();
  }

  // ---- daily till report ----------------------------------------------------------------

  async function loadTill() {
    const box = $('#till-report');
    const problem = $('#till-problem');
    if (needCoop(problem)) return;
    const date = $('#till-date').value;
    HX.showProblem(problem, null, $('#till-form'));
    loading(box);
    const seq = ++state.tillSeq;
    const r = await HX.api('GET', `/v1/reports/till${query({ date })}`);
    if (seq !== state.tillSeq) return; // a later request (another date) answers instead
    if (!r.ok) {
      box.replaceChildren();
      HX.showProblem(problem, r.problem, $('#till-form'));
      return;
    }
    state.till = r.data;
    state.tillDate = date;
    renderTill();
    const list = $('#pair-shops');
    list.replaceChildren(...r.data.shops.map((s) => el('option', { value: s.shop }, s.name)));
  }

  function renderTill() {
    const box = $('#till-report');
    const report = state.till;
    const csv = $('#till-csv');
    csv.classList.toggle('disabled', !report);
    if (!report) return;
    // The same report as a spreadsheet, its headers in the page's language.
    csv.href = `/v1/reports/till${query({ date: state.tillDate, format: 'csv', lang: HX.lang() })}`;
    if (!report.shops.length) {
      box.replaceChildren(el('p', { class: 'muted empty' }, t('coop.till.none')));
      return;
    }
    const total = report.shops.length > 1 ? renderShop(report.total, true) : null;
    box.replaceChildren(total || '', el('div', { class: 'grid till-grid' }, report.shops.map((s) => renderShop(s))));
  }

  // One shop's till, or (`total`) every shop added up by the server.
  function renderShop(s, total) {
    const quiet = s.topups.count === 0 && s.sales.count === 0 && s.refunds.count === 0;
    const asVouchers = s.topups.by_method.reduce((n, m) => n + m.as_vouchers, 0);
    return el('article', total ? { class: 'card till-total', id: 'till-total' } : { class: 'card shop-till', dataset: { shop: s.shop } },
      total
        ? el('h2', {}, t('coop.till.total'), ' ', el('span', { class: 'muted' }, t('coop.till.total_shops', { n: s.shops })))
        : el('h2', {}, `${s.shop} `, el('span', { class: 'muted' }, s.name)),
      quiet ? el('p', { class: 'muted quiet' }, t('coop.till.quiet')) : null,
      el('h3', {}, t('coop.till.topups'), ' ',
        el('span', { class: 'pill topups-count' }, t('coop.count', { n: s.topups.count }))),
      el('dl', { class: 'figures' },
        el('dt', {}, t('coop.till.paid')), el('dd', { class: 'num topups-paid' }, HX.yuan(s.topups.paid)),
        el('dt', {}, t('coop.till.bonus')), el('dd', { class: 'num topups-bonus' }, HX.yuan(s.topups.bonus)),
        el('dt', {}, t('coop.till.credited')),
        el('dd', { class: 'num topups-credited' }, HX.yuan(s.topups.credited))),
      asVouchers ? el('p', { class: 'muted' }, t('coop.till.as_vouchers', { n: asVouchers })) : null,
      s.topups.by_method.length ? el('table', { class: 'topups-by-method' },
        el('thead', {}, el('tr', {}, el('th', {}, t('coop.till.method')),
          el('th', { class: 'num' }, t('coop.till.paid')), el('th', { class: 'num' }, t('coop.till.bonus')))),
        el('tbody', {}, s.topups.by_method.map((m) => el('tr', { dataset: { method: m.method } },
          el('td', {}, tender(m.method), ' ', el('span', { class: 'muted' }, `×${m.count}`)),
          money(m.paid, 'paid'), money(m.bonus, 'bonus'))))) : null,
      el('h3', {}, t('coop.till.sales'), ' ',
        el('span', { class: 'pill sales-count' }, t('coop.count', { n: s.sales.count })),
        ' ', el('span', { class: 'num sales-total' }, HX.yuan(s.sales.total))),
      s.sales.by_tender.length ? el('table', { class: 'sales-by-tender' },
        el('tbody', {}, s.sales.by_tender.map((x) => el('tr', { dataset: { tender: x.tender } },
          el('td', {}, tender(x.tender), ' ', el('span', { class: 'muted' }, `×${x.count}`)),
          money(x.amount, 'amount'))))) : null,
      el('h3', {}, t('coop.till.refunds'), ' ',
        el('span', { class: 'pill refunds-count' }, t('coop.count', { n: s.refunds.count })),
        ' ', el('span', { class: 'num refunds-amount' }, HX.yuan(s.refunds.amount))),
      s.refunds.by_tender.length ? el('table', { class: 'refunds-by-tender' },
        el('tbody', {}, s.refunds.by_tender.map((x) => el('tr', { dataset: { tender: x.tender } },
          el('td', {}, tender(x.tender)), money(x.amount, 'amount'))))) : null,
      el('h3', {}, t('coop.till.vouchers')),
      el('dl', { class: 'figures' },
        el('dt', {}, t('coop.till.vouchers_count',
          { n: s.vouchers_redeemed.count, v: s.vouchers_redeemed.vouchers })),
        el('dd', { class: 'num vouchers-amount' }, HX.yuan(s.vouchers_redeemed.amount)),
        el('dt', {}, t('coop.till.paid')),
        el('dd', { class: 'num vouchers-paid' }, HX.yuan(s.vouchers_redeemed.paid)),
        el('dt', {}, t('coop.till.bonus')),
        el('dd', { class: 'num vouchers-bonus' }, HX.yuan(s.vouchers_redeemed.bonus))),
      s.drawer.length ? [
        el('h3', {}, t('coop.till.drawer')),
        el('table', { class: 'drawer' },
          el('thead', {}, el('tr', {}, el('th', {}, t('coop.till.method')),
            el('th', { class: 'num' }, t('coop.till.topups')), el('th', { class: 'num' }, t('coop.till.sales')),
            el('th', { class: 'num' }, t('coop.till.refunds')), el('th', { class: 'num' }, t('coop.till.net')))),
          el('tbody', {}, s.drawer.map((d) => el('tr', { dataset: { method: d.method } },
            el('td', {}, tender(d.method)), money(d.topups, 'topups'), money(d.sales, 'sales'),
            money(d.refunds, 'refunds'), money(d.net, 'net'))))),
      ] : null);
  }

  // ---- the running estimate of this month's close ----------------------------------------

  async function loadEstimate() {
    if (!state.today) return;
    const month = monthOf(state.today);
    const r = await HX.api('GET', `/v1/months/${month}/close${query({ estimate: 'true' })}`);
    // A month that cannot be estimated yet (an earlier month still open) shows nothing.
    state.estimate = r.ok && r.data.estimated_to ? r.data : null;
    renderEstimate();
  }

  function renderEstimate() {
    const e = state.estimate;
    show($('#estimate'), Boolean(e));
    if (!e) return;
    $('#estimate-title').textContent = t('coop.estimate.title', { month: e.month });
    $('#estimate-note').textContent = t('coop.estimate.note', { date: e.estimated_to });
    $('#estimate-body').replaceChildren(figures([
      ['coop.close.sales', HX.yuan(e.sales), 'estimate-sales'],
      ['coop.close.profit', HX.yuan(e.profit), 'estimate-profit'],
      ['coop.close.distributed', HX.yuan(e.distributed), 'estimate-distributed'],
      ['coop.close.reserve_in', HX.yuan(e.reserve_in), 'estimate-reserve-in'],
      ['coop.close.pool', HX.yuan(e.pool), 'estimate-pool'],
      ['coop.close.households', String(e.households), 'estimate-households'],
    ]));
  }

  // ---- month close ----------------------------------------------------------------------

  async function previewClose() {
    const problem = $('#close-problem');
    const form = $('#close-form');
    if (needCoop(problem)) return;
    const month = $('#close-month').value.trim();
    HX.showProblem(problem, null, form);
    show($('#close-actions'), false);
    if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(month)) {
      state.close = { month, problem: { code: 'invalid_input', field: 'month' } };
      renderClose();
      return;
    }
    loading($('#close-result'));
    const r = await HX.api('GET', `/v1/months/${encodeURIComponent(month)}/close${query()}`);
    state.close = r.ok ? { month, data: r.data } : { month, problem: r.problem };
    renderClose();
  }

  function closeProblemText(month, problem) {
    if (problem.field === 'month' && problem.code === 'invalid_input') {
      if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(month)) return t('coop.close.bad_month');
      // The server refuses a month that has not ended; say from when it can be closed.
      if (state.today && nextMonthFirst(month) > state.today) {
        return t('coop.close.not_over', { month, today: state.today, from: nextMonthFirst(month) });
      }
    }
    return HX.problemText(problem);
  }

  function renderClose() {
    const box = $('#close-result');
    const problem = $('#close-problem');
    const c = state.close;
    if (!c) return;
    if (c.problem) {
      box.replaceChildren();
      show($('#close-actions'), false);
      HX.showProblem(problem, null, $('#close-form'));
      HX.showProblem(problem, c.problem, $('#close-form'));
      problem.textContent = closeProblemText(c.month, c.problem);
      problem.dataset.code = c.problem.code;
      return;
    }
    HX.showProblem(problem, null);
    const d = c.data;
    const closed = !d.dry_run;
    const basisKey = `coop.basis.${d.basis}`;
    box.replaceChildren(el('div', { class: 'card close-card' },
      el('h2', {}, d.month, ' ',
        el('span', { id: 'close-status', class: `pill ${closed ? 'ok' : 'warn'}`, dataset: { closed: String(closed) } },
          closed ? t('coop.close.closed', { entry: d.entry }) : t('coop.close.preview_state'))),
      el('div', { class: 'grid' },
        figures([
          ['coop.close.sales', HX.yuan(d.sales), 'close-sales'],
          ['coop.close.cogs', HX.yuan(d.cogs), 'close-cogs'],
          ['coop.close.promotion', HX.yuan(d.promotion), 'close-promotion'],
          ['coop.close.expenses', HX.yuan(d.expenses), 'close-expenses'],
          ['coop.close.profit', HX.yuan(d.profit), 'close-profit'],
          ['coop.close.loss_carried_in', HX.yuan(d.loss_carried_in), 'close-loss-in'],
          ['coop.close.loss_carried_out', HX.yuan(d.loss_carried_out), 'close-loss-out'],
        ]),
        figures([
          ['coop.close.distributed', HX.yuan(d.distributed), 'close-distributed'],
          ['coop.close.reserve_in', HX.yuan(d.reserve_in), 'close-reserve-in'],
          ['coop.close.pool', HX.yuan(d.pool), 'close-pool'],
          ['coop.close.allocated', HX.yuan(d.allocated), 'close-allocated'],
          ['coop.close.reserve', HX.yuan(d.reserve), 'close-reserve'],
          ['coop.close.households', String(d.households), 'close-households'],
          ['coop.close.basis', t(basisKey) === basisKey ? d.basis : t(basisKey), 'close-basis'],
          ['coop.close.policy', d.policy, 'close-policy'],
        ])),
      el('h3', {}, t('coop.close.companies')),
      d.companies.length
        ? el('div', { class: 'table-wrap' }, el('table', { id: 'close-companies' },
          el('thead', {}, el('tr', {}, el('th', {}, t('coop.close.company')),
            el('th', { class: 'num' }, t('coop.close.households')),
            el('th', { class: 'num' }, t('coop.close.allocated')))),
          el('tbody', {}, d.companies.map((k) => el('tr', { dataset: { company: k.company } },
            el('td', {}, k.company), el('td', { class: 'num households' }, String(k.households)),
            money(k.amount, 'amount')))),
          el('tfoot', {}, el('tr', {}, el('td', {}, t('coop.settle.total')),
            el('td', { class: 'num' }, String(d.households)), money(d.allocated, 'amount')))))
        : el('p', { class: 'muted empty' }, t('coop.close.no_companies'))));
    show($('#close-actions'), !closed);
    show($('#close-start'), true);
    show($('#close-confirm'), false);
    HX.showProblem($('#close-action-problem'), null);
  }

  function askClose() {
    const d = state.close && state.close.data;
    if (!d) return;
    $('#close-confirm-text').textContent = t('coop.close.confirm_text', {
      month: d.month, households: d.households, allocated: HX.yuan(d.allocated), reserve: HX.yuan(d.reserve),
    });
    show($('#close-start'), false);
    show($('#close-confirm'), true);
  }

  async function doClose() {
    const d = state.close && state.close.data;
    if (!d || closeAttempt.busy) return;
    const button = $('#close-do');
    button.disabled = true;
    const r = await closeAttempt.post(`/v1/months/${encodeURIComponent(d.month)}/close`, withCoop({}));
    button.disabled = false;
    if (!r.ok) {
      HX.showProblem($('#close-action-problem'), r.problem);
      return;
    }
    state.close = { month: d.month, data: r.data };
    renderClose();
    state.settlements = null; // the close changed what is owed
  }

  // ---- prepaid liability ----------------------------------------------------------------

  async function loadPrepaid() {
    const box = $('#prepaid-report');
    const problem = $('#prepaid-problem');
    if (needCoop(problem)) return null;
    HX.showProblem(problem, null);
    loading(box);
    const r = await HX.api('GET', `/v1/reports/prepaid${query()}`);
    if (!r.ok) {
      box.replaceChildren();
      HX.showProblem(problem, r.problem);
      return null;
    }
    state.prepaid = r.data;
    state.today = r.data.as_of;
    renderPrepaid();
    return r.data;
  }

  function renderPrepaid() {
    const p = state.prepaid;
    if (!p) return;
    const line = (name, l) => el('tr', { dataset: { line: name } },
      el('th', {}, t(`coop.prepaid.${name}`)), el('td', { class: 'num count' }, String(l.count)),
      money(l.paid, 'paid'), money(l.bonus, 'bonus'), money(l.total, 'total'));
    const c = p.custody;
    $('#prepaid-report').replaceChildren(
      el('div', { class: 'card' },
        el('p', { class: 'muted', id: 'prepaid-as-of' }, t('coop.prepaid.as_of', { date: p.as_of })),
        el('div', { class: 'table-wrap' }, el('table', { id: 'prepaid-table' },
          el('thead', {}, el('tr', {}, el('th', {}, t('coop.prepaid.line')),
            el('th', { class: 'num' }, t('coop.prepaid.count')), el('th', { class: 'num' }, t('coop.prepaid.paid')),
            el('th', { class: 'num' }, t('coop.prepaid.bonus')), el('th', { class: 'num' }, t('coop.prepaid.sum')))),
          el('tbody', {}, line('wallets', p.wallets), line('vouchers', p.vouchers),
            line('expired_vouchers', p.expired_vouchers)),
          el('tfoot', {}, line('total', p.total))))),
      el('div', { class: 'card breakage' },
        el('h2', {}, t('coop.breakage.title')),
        el('p', { class: 'muted' }, t('coop.breakage.explain')),
        figures([
          ['coop.breakage.paid', HX.yuan(p.breakage.paid), 'breakage-paid'],
          ['coop.breakage.bonus', HX.yuan(p.breakage.bonus), 'breakage-bonus'],
        ])),
      el('div', { class: 'card custody' },
        el('h2', {}, t('coop.custody.title')),
        el('p', { class: 'big', id: 'custody-deposit' }, HX.yuan(c.deposit)),
        figures([
          ['coop.custody.quarter', c.quarter_end, 'custody-quarter'],
          ['coop.prepaid.wallets', HX.yuan(c.wallets_paid), 'custody-wallets'],
          ['coop.custody.vouchers', HX.yuan(c.vouchers_paid), 'custody-vouchers'],
          ['coop.custody.balance', HX.yuan(c.prepaid_balance), 'custody-balance'],
          ['coop.custody.ratio', c.ratio, 'custody-ratio'],
          ['coop.custody.policy', c.policy, 'custody-policy'],
        ])));
  }

  // ---- settlements ----------------------------------------------------------------------

  async function loadSettlements() {
    const box = $('#settlements-report');
    const problem = $('#settlements-problem');
    if (needCoop(problem)) return;
    const month = $('#settlements-month').value.trim();
    HX.showProblem(problem, null, $('#settlements-form'));
    loading(box);
    const seq = ++state.settlementsSeq;
    const r = await HX.api('GET', `/v1/settlements${query({ month })}`);
    if (seq !== state.settlementsSeq) return;
    if (!r.ok) {
      box.replaceChildren();
      HX.showProblem(problem, r.problem, $('#settlements-form'));
      return;
    }
    state.settlements = r.data;
    if (!$('#settlements-month').value) $('#settlements-month').value = r.data.month;
    renderSettlements();
  }

  function renderSettlements() {
    const s = state.settlements;
    if (!s) return;
    const row = (p, attrs) => el('tr', attrs,
      el('td', {}, p.company || t('coop.settle.total')), money(p.opening, 'opening'),
      money(p.allocated, 'allocated'), money(p.settled, 'settled'), money(p.outstanding, 'outstanding'));
    $('#settlements-report').replaceChildren(s.companies.length
      ? el('div', { class: 'card table-wrap' }, el('table', { id: 'settlements-table' },
        el('thead', {}, el('tr', {}, el('th', {}, t('coop.settle.company')),
          ['opening', 'allocated', 'settled', 'outstanding'].map((k) =>
            el('th', { class: 'num' }, t(`coop.settle.${k}`))))),
        el('tbody', {}, s.companies.map((p) => row(p, { dataset: { company: p.company } }))),
        el('tfoot', {}, row(s.total, { class: 'total' }))))
      : el('p', { class: 'muted empty card' }, t('coop.settle.none')));
    // The form offers the companies owed; the current month's outstanding is what is owed now.
    const select = $('#settle-company');
    const chosen = select.value;
    select.replaceChildren(el('option', { value: '' }, t('coop.settle.pick')),
      ...s.companies.map((p) => el('option', { value: p.company },
        `${p.company} — ${t('coop.settle.outstanding')} ${HX.yuan(p.outstanding)}`)));
    select.value = s.companies.some((p) => p.company === chosen) ? chosen : '';
    renderSettleHint();
  }

  function renderSettleHint() {
    const s = state.settlements;
    const p = s && s.companies.find((x) => x.company === $('#settle-company').value);
    $('#settle-hint').textContent = p ? t('coop.settle.owed', { amount: HX.yuan(p.outstanding) }) : '';
    const done = state.lastSettlement;
    const box = $('#settle-done');
    box.textContent = done ? t('coop.settle.done', {
      company: done.company, amount: HX.yuan(done.amount), outstanding: HX.yuan(done.outstanding),
    }) : '';
    show(box, Boolean(done));
  }

  async function settle(ev) {
    ev.preventDefault();
    const form = $('#settle-form');
    const button = $('#settle-submit');
    const problem = $('#settle-problem');
    // A second tap while the first is on its way is the same payment: ignore it.
    if (settleAttempt.busy || button.disabled) return;
    if (needCoop(problem)) return;
    const company = form.elements.company.value;
    const amountText = form.elements.amount.value.trim();
    const reference = form.elements.reference.value.trim();
    if (!company) {
      HX.showProblem(problem, { code: 'invalid_input', field: 'company', detail: t('coop.settle.pick') }, form);
      problem.textContent = t('coop.settle.pick');
      return;
    }
    const fen = HX.fen(amountText);
    if (fen === null || fen <= 0n) {
      HX.showProblem(problem, { code: 'invalid_amount', field: 'amount' }, form);
      return;
    }
    if (!reference) {
      HX.showProblem(problem, { code: 'invalid_input', field: 'reference' }, form);
      problem.textContent = t('coop.settle.need_reference');
      return;
    }
    HX.showProblem(problem, null, form);
    state.lastSettlement = null;
    renderSettleHint();
    button.disabled = true;
    const r = await settleAttempt.post('/v1/settlements',
      withCoop({ company, amount: HX.amount(fen), reference }));
    button.disabled = false;
    if (!r.ok) {
      HX.showProblem(problem, r.problem, form);
      return;
    }
    state.lastSettlement = r.data;
    form.elements.amount.value = '';
    form.elements.reference.value = '';
    await loadSettlements();
    renderSettleHint();
  }

  // ---- till pairing ---------------------------------------------------------------------

  async function makePairing(ev) {
    ev.preventDefault();
    const form = $('#pair-form');
    const problem = $('#pair-problem');
    const button = $('#pair-make');
    const shop = form.elements.shop.value.trim();
    if (!shop) {
      HX.showProblem(problem, { code: 'invalid_input', field: 'shop' }, form);
      return;
    }
    HX.showProblem(problem, null, form);
    button.disabled = true;
    const r = await HX.api('POST', '/web/pairings', { shop });
    button.disabled = false;
    if (!r.ok) {
      state.pairing = null;
      show($('#pair-result'), false);
      HX.showProblem(problem, r.problem, form);
      return;
    }
    state.pairing = r.data;
    renderPairing();
    loadPairedTills();
  }

  function renderPairing() {
    const p = state.pairing;
    show($('#pair-result'), Boolean(p));
    if (!p) return;
    const expires = new Date(p.expires_at);
    const over = expires.getTime() <= Date.now();
    $('#pair-code').textContent = p.code;
    $('#pair-code').classList.toggle('expired', over);
    $('#pair-for').textContent = t('coop.pair.for', { shop: p.shop });
    $('#pair-expires').textContent = over ? t('coop.pair.expired')
      : t('coop.pair.expires', { time: expires.toLocaleTimeString(HX.lang(), { hour: '2-digit', minute: '2-digit' }) });
  }

  // The tills signed in with a pairing code, each with a button that signs it out.
  async function loadPairedTills() {
    const r = await HX.api('GET', '/web/pairings');
    HX.showProblem($('#paired-problem'), r.ok ? null : r.problem);
    const tills = r.ok ? r.data.tills : [];
    const body = $('#paired-tills tbody');
    body.replaceChildren(...tills.map((till) => el('tr', {},
      el('td', {}, till.shop || ''),
      el('td', {}, till.expires_at ? new Date(till.expires_at).toLocaleString(HX.lang()) : ''),
      el('td', {}, el('button', { type: 'button', class: 'paired-end', dataset: { id: till.id },
        onclick: () => endPairedTill(till.id) }, t('coop.paired.end'))))));
    show($('#paired-tills'), tills.length > 0);
    show($('#paired-none'), r.ok && tills.length === 0);
  }

  async function endPairedTill(id) {
    const r = await HX.api('POST', `/web/pairings/${id}/end`, {});
    HX.showProblem($('#paired-problem'), r.ok ? null : r.problem);
    await loadPairedTills();
  }

  // ---- start ----------------------------------------------------------------------------

  async function onReady(session) {
    state.session = session;
    state.till = state.close = state.prepaid = state.settlements = null;
    state.lastSettlement = state.pairing = null;
    show($('#coop-admin'), session.role === 'admin');
    selectTab(state.tab);
    if (isAdmin() && !cooperative()) {
      needCoop($('#till-problem'));
      return;
    }
    await loadAll();
  }

  // The prepaid report tells the business date, which the other sections default to.
  async function loadAll() {
    const p = await loadPrepaid();
    if (!p) return;
    if (!$('#till-date').value) $('#till-date').value = p.as_of;
    if (!$('#close-month').value) $('#close-month').value = previousMonth(monthOf(p.as_of));
    loadTill();
    if (state.tab === 'settlements') loadSettlements();
    if (state.tab === 'close') loadEstimate();
  }

  document.addEventListener('DOMContentLoaded', () => {
    for (const b of document.querySelectorAll('.coop-tabs button')) {
      b.addEventListener('click', () => selectTab(b.dataset.tab));
    }
    $('#till-form').addEventListener('submit', (ev) => { ev.preventDefault(); loadTill(); });
    $('#close-form').addEventListener('submit', (ev) => { ev.preventDefault(); previewClose(); });
    $('#close-start').addEventListener('click', askClose);
    $('#close-cancel').addEventListener('click', () => renderClose());
    $('#close-do').addEventListener('click', doClose);
    $('#settlements-form').addEventListener('submit', (ev) => { ev.preventDefault(); loadSettlements(); });
    $('#settle-form').addEventListener('submit', settle);
    $('#settle-company').addEventListener('change', renderSettleHint);
    $('#pair-form').addEventListener('submit', makePairing);
    $('#coop-code').addEventListener('change', () => {
      state.till = state.close = state.prepaid = state.settlements = null;
      if (cooperative()) loadAll();
    });
    setInterval(() => { if (state.pairing) renderPairing(); }, 15000);
    document.addEventListener('hx:lang', () => {
      renderEstimate();
      renderTill();
      renderClose();
      renderPrepaid();
      renderSettlements();
      renderPairing();
    });
    HX.boot({ roles: ['coop_accountant', 'admin'], signInForm: $('#sign-in'), main: $('#coop-main'), onReady });
  });
})();
