// hongxin 红心 — the till 收银台: a cashier on a tablet looks up a household (typed, or a
// keyboard-wedge scanner that types the code and Enter), tops up under spend-50-get-55 with a
// preview computed by the server, sells with a split tender, refunds, checks vouchers, and
// prints a receipt; it also takes property-fee payments for the household's company (代收物业费)
// and prints the company's numbered 收据. Every money action goes through an HX.Attempt, so a double tap or a retry
// after a dropped connection posts once.
'use strict';

(function () {
  const { el, $, show, t, fen, amount, yuan } = HX;

  HX.strings({
    'zh-CN': {
      'till.title': '收银台',
      'till.page_title': '红心 · 收银台',
      'till.scan_placeholder': '请扫码或输入',
      'till.card_scanned': '已刷住户卡',
      'till.next_customer': '下一位顾客',
      'till.done.sale': '收款完成',
      'till.done.topup': '充值完成',
      'till.done.refund': '退款完成',
      'till.done.topup_void': '充值已作废',
      'till.done.button': '本单已完成 ✓',
      'till.keys.sale': '收款',
      'till.keys.topup': '充值',
      'till.keys.refund': '退款',
      'till.keys.voucher': '查券',
      'till.keys.print': '打印小票',
      'till.keys.submit': '确认',
      'till.keys.next': '下一位顾客',
      'till.keys.title': '快捷键：',
      'till.topup.paid_placeholder': '输入金额，如 100',
      'till.topup.voucher_value': '券面额（钱包不变）',
      'till.sale.search': '找商品',
      'till.sale.search_placeholder': '名称、拼音首字母或货号',
      'till.sale.no_match': '没有找到这个商品',
      'till.sale.amount_placeholder': '输入金额或选商品',
      'till.sale.change': '找零',
      'till.sale.voucher_scanned': '券 {code}：余额 {balance}',
      'till.m.cash_received': '现金实收',
      'till.r.shop': '门店',
      'till.r.cashier': '收银员',
      'till.r.receipt_no': '小票号',
      'till.r.received': '实收现金',
      'till.r.change': '找零',
      'till.r.voucher_balance': '券余额',
      'till.problem.voucher_not_active': '这张券不能用（{status}）',
      'till.problem.over_paid': '非现金付款超过应收 {over}，请改小',

      'till.or_pairing': '或输入合作社会计给出的八位配对码：',
      'till.scan': '扫码：住户卡、住户码、券码或商品码',
      'till.look_up': '查询',
      'till.clear': '换一户',
      'till.loading': '正在加载…',
      'till.quoting': '正在计算…',
      'till.wallet': '钱包余额',
      'till.wallet_paid': '其中本金',
      'till.wallet_bonus': '其中赠送',
      'till.eligible': '参加交50得55',
      'till.not_eligible': '不在活动范围',
      'till.needs_household': '请先扫描或输入住户码。',
      'till.tab.topup': '充值',
      'till.tab.sale': '收款',
      'till.tab.refund': '退款',
      'till.tab.voucher': '查券',
      'till.topup.title': '充值（交50得55）',
      'till.topup.paid': '实收金额',
      'till.topup.deliver': '存入',
      'till.topup.bonus': '赠送',
      'till.topup.credited': '到账',
      'till.topup.wallet_after': '充值后钱包',
      'till.topup.room': '本月剩余可赠',
      'till.topup.bonus_allowed': '仍然充值：只赠送本月剩余额度',
      'till.topup.capped': '赠送已按本月上限减少',
      'till.topup.submit': '确认充值',
      'till.method': '付款方式',
      'till.m.cash': '现金',
      'till.m.wechat': '微信',
      'till.m.alipay': '支付宝',
      'till.m.wallet': '钱包',
      'till.m.voucher': '券',
      'till.m.bank': '银行',
      'till.deliver.wallet': '住户钱包',
      'till.deliver.voucher': '纸质券（带二维码）',
      'till.sale.title': '收款',
      'till.sale.catalog': '按商品',
      'till.sale.catalog_empty': '本店还没有商品目录，请按金额收款。',
      'till.sale.item': '商品',
      'till.sale.qty': '数量',
      'till.sale.add': '加入',
      'till.sale.line_amount': '金额',
      'till.sale.remove': '删除',
      'till.sale.by_lines': '金额按所选商品计算。',
      'till.sale.amount': '应收金额',
      'till.sale.split': '分开付款',
      'till.sale.voucher_code': '券码',
      'till.sale.remaining': '还差',
      'till.sale.over': '多收',
      'till.sale.resident_pin': '住户密码（请住户本人输入）',
      'problem.resident_required': '用钱包付款须住户在场：请扫描住户卡，或请住户输入密码',
      'problem.resident_proof_failed': '住户卡或密码不对，请住户重新出示或输入',
      'till.sale.rest': '补足',
      'till.sale.submit': '确认收款',
      'till.refund.title': '退款',
      'till.refund.sale': '销售单号',
      'till.refund.amount': '退款金额（留空则全部退）',
      'till.refund.submit': '确认退款',
      'till.voucher.title': '查询券余额',
      'till.voucher.status': '状态',
      'till.voucher.balance': '余额',
      'till.voucher.expires': '有效期至',
      'till.status.active': '有效',
      'till.status.spent': '已用完',
      'till.status.void': '已作废',
      'till.status.expired': '已过期',
      'till.print': '打印小票',
      'till.refund_this': '退这一单',
      'till.void_this': '作废这笔充值',
      'till.void_confirm': '确认作废？钱款退还顾客',
      'till.r.paid_back': '退还实收',
      'till.r.bonus_withdrawn': '收回赠送',
      'till.r.voided_topup': '作废的充值',
      'till.receipt.topup': '充值小票',
      'till.receipt.exchange': '换新券小票',
      'till.voucher.exchange': '换新券',
      'till.today.title': '今日充值',
      'till.today.refresh': '刷新',
      'till.today.receipt': '单号',
      'till.today.holder': '住户 / 券',
      'till.today.paid': '实收',
      'till.today.bonus': '赠送',
      'till.today.time': '时间',
      'till.today.state': '状态',
      'till.today.none': '今天本店还没有充值。',
      'till.today.wallet': '{household} 钱包',
      'till.today.voucher': '{household} 兑换券',
      'till.today.voided': '已作废',
      'till.today.void': '作废',
      'till.r.old_voucher': '原券码',
      'till.r.balance': '余额',
      'till.receipt.sale': '销售小票',
      'till.receipt.refund': '退款小票',
      'till.receipt.topup_void': '充值作废小票',
      'till.receipt.replayed': '（此前已记账，未重复记入）',
      'till.r.entry': '凭证号',
      'till.r.household': '住户',
      'till.r.paid': '实收',
      'till.r.bonus': '赠送',
      'till.r.credited': '到账',
      'till.r.method': '付款方式',
      'till.r.wallet': '钱包余额',
      'till.r.voucher': '券码',
      'till.r.expires': '有效期至',
      'till.r.sale': '销售单号',
      'till.r.total': '合计',
      'till.r.refunded': '退款',
      'till.r.remaining': '尚可退',
      'till.r.date': '营业日',
      'till.r.cashier': '收银员',
      'till.problem.not_whole_units': '充值须为 {unit} 的整数倍，例如 {suggest}',
      'till.problem.cap.per_top_up': '单次充值最多 {limit}',
      'till.problem.cap.monthly_bonus': '超过每月赠送上限 {limit}（本月还可赠 {available}）',
      'till.problem.cap.wallet_balance': '钱包余额上限 {limit}（还可充入 {available}）',
      'till.problem.cap.voucher_face_value': '一张券面额最多 {limit}',
      'till.problem.not_eligible': '住户 {household} 不在交50得55活动范围内，不能充值',
      'till.problem.household_code': '请输入住户码',
      'till.problem.wallet_needs_household': '用钱包付款请先为本单扫描住户码',
      'till.problem.voucher_needs_code': '用券付款请输入券码',
      'till.problem.remaining': '各付款方式之和与应收金额不符（还差 {remaining}）',
    },
    en: {
      'till.title': 'Till',
      'till.page_title': 'Hongxin · Till',
      'till.scan_placeholder': 'Scan or type',
      'till.card_scanned': 'Household card scanned',
      'till.next_customer': 'Next customer',
      'till.done.sale': 'Sale complete',
      'till.done.topup': 'Top-up complete',
      'till.done.refund': 'Refund complete',
      'till.done.topup_void': 'Top-up voided',
      'till.done.button': 'Done ✓',
      'till.keys.sale': 'Sale',
      'till.keys.topup': 'Top up',
      'till.keys.refund': 'Refund',
      'till.keys.voucher': 'Voucher',
      'till.keys.print': 'Print receipt',
      'till.keys.submit': 'Confirm',
      'till.keys.next': 'Next customer',
      'till.keys.title': 'Keys:',
      'till.topup.paid_placeholder': 'Amount, e.g. 100',
      'till.topup.voucher_value': 'Voucher value (wallet unchanged)',
      'till.sale.search': 'Find an item',
      'till.sale.search_placeholder': 'Name, pinyin initials or SKU',
      'till.sale.no_match': 'No such item',
      'till.sale.amount_placeholder': 'Type an amount or pick items',
      'till.sale.change': 'Change',
      'till.sale.voucher_scanned': 'Voucher {code}: {balance} left',
      'till.m.cash_received': 'Cash received',
      'till.r.shop': 'Shop',
      'till.r.cashier': 'Cashier',
      'till.r.receipt_no': 'Receipt no.',
      'till.r.received': 'Cash received',
      'till.r.change': 'Change',
      'till.r.voucher_balance': 'Voucher balance',
      'till.problem.voucher_not_active': 'This voucher cannot be used ({status})',
      'till.problem.over_paid': 'The non-cash tenders exceed the amount due by {over}; lower them',

      'till.or_pairing': 'or the eight-digit pairing code from the cooperative’s accountant:',
      'till.scan': 'Scan: household card or code, voucher, or item',
      'till.look_up': 'Look up',
      'till.clear': 'Another household',
      'till.loading': 'Loading…',
      'till.quoting': 'Working it out…',
      'till.wallet': 'Wallet',
      'till.wallet_paid': 'of which paid',
      'till.wallet_bonus': 'of which bonus',
      'till.eligible': 'In spend-50-get-55',
      'till.not_eligible': 'Not in the programme',
      'till.needs_household': 'Scan or enter a household code first.',
      'till.tab.topup': 'Top up',
      'till.tab.sale': 'Sale',
      'till.tab.refund': 'Refund',
      'till.tab.voucher': 'Voucher',
      'till.topup.title': 'Top up (pay 50, get 55)',
      'till.topup.paid': 'Amount paid',
      'till.topup.deliver': 'Credit to',
      'till.topup.bonus': 'Bonus',
      'till.topup.credited': 'Credited',
      'till.topup.wallet_after': 'Wallet afterwards',
      'till.topup.room': 'Bonus left this month',
      'till.topup.bonus_allowed': 'Top up anyway, with only the bonus left this month',
      'till.topup.capped': 'Bonus reduced to this month\'s cap',
      'till.topup.submit': 'Top up',
      'till.method': 'Paid by',
      'till.m.cash': 'Cash',
      'till.m.wechat': 'WeChat',
      'till.m.alipay': 'Alipay',
      'till.m.wallet': 'Wallet',
      'till.m.voucher': 'Voucher',
      'till.m.bank': 'Bank',
      'till.deliver.wallet': 'Household wallet',
      'till.deliver.voucher': 'Paper voucher (QR code)',
      'till.sale.title': 'Sale',
      'till.sale.catalog': 'From the catalogue',
      'till.sale.catalog_empty': 'This shop has no catalogue yet; sell by amount.',
      'till.sale.item': 'Item',
      'till.sale.qty': 'Qty',
      'till.sale.add': 'Add',
      'till.sale.line_amount': 'Amount',
      'till.sale.remove': 'Remove',
      'till.sale.by_lines': 'The amount is the lines’ total.',
      'till.sale.amount': 'Amount due',
      'till.sale.split': 'Split the payment',
      'till.sale.voucher_code': 'Voucher code',
      'till.sale.remaining': 'Still to pay',
      'till.sale.over': 'Over by',
      'till.sale.resident_pin': 'Household PIN (typed by the resident)',
      'problem.resident_required': 'Paying from the wallet needs the resident: scan the household card or have the resident type the PIN',
      'problem.resident_proof_failed': 'That household card or PIN is not right; ask the resident again',
      'till.sale.rest': 'Rest',
      'till.sale.submit': 'Take payment',
      'till.refund.title': 'Refund',
      'till.refund.sale': 'Sale number',
      'till.refund.amount': 'Amount (blank: everything left)',
      'till.refund.submit': 'Refund',
      'till.voucher.title': 'Voucher balance',
      'till.voucher.status': 'Status',
      'till.voucher.balance': 'Balance',
      'till.voucher.expires': 'Valid until',
      'till.status.active': 'Active',
      'till.status.spent': 'Spent',
      'till.status.void': 'Void',
      'till.status.expired': 'Expired',
      'till.print': 'Print receipt',
      'till.refund_this': 'Refund this sale',
      'till.void_this': 'Void this top-up',
      'till.void_confirm': 'Confirm void? Hand the money back',
      'till.r.paid_back': 'Paid back',
      'till.r.bonus_withdrawn': 'Bonus withdrawn',
      'till.r.voided_topup': 'Top-up voided',
      'till.receipt.topup': 'Top-up receipt',
      'till.receipt.exchange': 'Voucher exchange receipt',
      'till.voucher.exchange': 'Exchange for a new voucher',
      'till.today.title': "Today's top-ups",
      'till.today.refresh': 'Refresh',
      'till.today.receipt': 'Receipt',
      'till.today.holder': 'Household / voucher',
      'till.today.paid': 'Paid',
      'till.today.bonus': 'Bonus',
      'till.today.time': 'Time',
      'till.today.state': 'State',
      'till.today.none': 'No top-ups at this shop today yet.',
      'till.today.wallet': '{household} wallet',
      'till.today.voucher': '{household} voucher',
      'till.today.voided': 'Voided',
      'till.today.void': 'Void',
      'till.r.old_voucher': 'Old voucher',
      'till.r.balance': 'Balance',
      'till.receipt.sale': 'Sale receipt',
      'till.receipt.refund': 'Refund receipt',
      'till.receipt.topup_void': 'Top-up void receipt',
      'till.receipt.replayed': '(already posted; not posted again)',
      'till.r.entry': 'Entry',
      'till.r.household': 'Household',
      'till.r.paid': 'Paid',
      'till.r.bonus': 'Bonus',
      'till.r.credited': 'Credited',
      'till.r.method': 'Paid by',
      'till.r.wallet': 'Wallet',
      'till.r.voucher': 'Voucher',
      'till.r.expires': 'Valid until',
      'till.r.sale': 'Sale',
      'till.r.total': 'Total',
      'till.r.refunded': 'Refunded',
      'till.r.remaining': 'Still refundable',
      'till.r.date': 'Business date',
      'till.r.cashier': 'Cashier',
      'till.problem.not_whole_units': 'Top-ups are whole units of {unit}; try e.g. {suggest}',
      'till.problem.cap.per_top_up': 'One top-up is at most {limit}',
      'till.problem.cap.monthly_bonus': 'Monthly bonus cap of {limit} reached ({available} of bonus left)',
      'till.problem.cap.wallet_balance': 'A wallet holds at most {limit} ({available} more fits)',
      'till.problem.cap.voucher_face_value': 'A voucher carries at most {limit}',
      'till.problem.not_eligible': 'Household {household} is not in spend-50-get-55 and cannot top up',
      'till.problem.household_code': 'Enter a household code',
      'till.problem.wallet_needs_household': 'Scan the household’s code for this sale to pay from its wallet',
      'till.problem.voucher_needs_code': 'Enter the voucher code to pay with it',
      'till.problem.remaining': 'The tenders do not add up to the amount due ({remaining} left)',
    },
  });

  const TENDERS = ['wallet', 'voucher', 'cash', 'wechat', 'alipay'];
  const HOUSEHOLD_CODE = /^[A-Z][A-Z0-9]*-\d+$/;
  // The household card's QR: the resident's signed link, …/r/{household}?v=…&s=….
  const CARD_LINK = /\/r\/([A-Za-z0-9-]+)\?(?:[^#\s]*&)?v=\d+&s=[^&#\s]+/;

  // The till's keys, shown on the page (#till-keys) from this one table.
  const KEYS = [
    { key: 'F1', label: 'till.keys.sale', run: () => selectTab('sale') },
    { key: 'F2', label: 'till.keys.topup', run: () => selectTab('topup') },
    { key: 'F3', label: 'till.keys.refund', run: () => selectTab('refund') },
    { key: 'F4', label: 'till.keys.voucher', run: () => selectTab('voucher') },
    { key: 'F5', label: 'till.keys.fee', run: () => selectTab('fee') },
    { key: 'F8', label: 'till.keys.print', run: () => printReceipt() },
    { key: 'F9', label: 'till.keys.submit', run: () => submitCurrent() },
    { key: 'Escape', shown: 'Esc', label: 'till.keys.next', run: () => nextCustomer() },
  ];

  const state = {
    household: null, // GET /v1/households/{code}
    card: null, // the household card's link as scanned: the resident's presence for wallet spending
    voucher: null, // {code, balance}: a voucher scanned for this sale
    voucherAuto: false, // the voucher tender follows what the voucher covers until edited
    receipt: null, // {kind, data, replayed, lines, received, change}
    done: false, // the confirmation of a finished action is showing
    catalog: [], // GET /v1/catalog items
    lines: [], // {sku, name, unit, qty, amount}: each priced by the server
    hits: [], // catalogue items matching the search box
    tab: 'sale',
    quoteSeq: 0,
  };
  const attempts = {
    topup: new HX.Attempt(),
    sale: new HX.Attempt(),
    refund: new HX.Attempt(),
    void: new HX.Attempt(),
    exchange: new HX.Attempt(),
    fee: new HX.Attempt(),
  };

  // ---- problems in the cashier's words --------------------------------------------------

  // The server's detail carries the numbers (unit, cap, what is left); the page says them in
  // the page's language.
  function explain(problem) {
    if (!problem) return '';
    const detail = problem.detail || '';
    if (problem.code === 'not_whole_units') {
      const m = /whole units of (-?\d+\.\d{2})/.exec(detail);
      if (m) {
        const unit = fen(m[1]);
        const asked = fen($('#topup-paid').value);
        let suggest = unit;
        if (asked !== null && unit > 0n && asked > unit) suggest = (asked / unit) * unit;
        return t('till.problem.not_whole_units', { unit: yuan(m[1]), suggest: yuan(amount(suggest)) });
      }
    }
    if (problem.code === 'cap_exceeded') {
      const m = /(per top-up|monthly bonus|wallet balance|voucher face value) cap of (-?[\d.]+) would be exceeded \((-?[\d.]+) left\)/.exec(detail);
      if (m) {
        const key = 'till.problem.cap.' + m[1].replace(/[ -]/g, '_');
        return t(key, { limit: yuan(m[2]), available: yuan(m[3]) });
      }
    }
    if (problem.code === 'not_eligible') {
      const m = /household (\S+) is not eligible/.exec(detail);
      return t('till.problem.not_eligible', { household: m ? m[1] : '' });
    }
    if (problem.code === 'tender_mismatch' || problem.code === 'remaining') {
      return t('till.problem.remaining', { remaining: yuan(amount(remainingFen() ?? 0n)) });
    }
    if (problem.code === 'till.problem.over_paid') {
      const s = saleSums();
      return t(problem.code, { over: yuan(amount(s ? s.over : 0n)) });
    }
    if (problem.code === 'till.problem.voucher_not_active') {
      return t(problem.code, { status: t('till.status.' + problem.status) });
    }
    if (problem.code.startsWith('till.')) return t(problem.code);
    return HX.problemText(problem);
  }

  // The problem each box shows, so that a change of language says it again in the new one.
  const shown = new Map();

  function showProblem(box, problem, form) {
    HX.showProblem(box, problem, form);
    if (problem) box.textContent = explain(problem);
    if (problem) shown.set(box, problem);
    else shown.delete(box);
  }

  // ---- household ------------------------------------------------------------------------

  function renderHousehold() {
    const h = state.household;
    show($('#household-card'), Boolean(h));
    show($('#topup-needs-household'), !h);
    show($('#hh-card'), Boolean(h && state.card));
    renderFeeOwed();
    if (!h) return;
    $('#hh-code').textContent = h.household;
    $('#hh-name').textContent = [h.name, h.compound_name || h.compound].filter(Boolean).join(' · ');
    const pill = $('#hh-eligible');
    pill.textContent = t(h.eligible ? 'till.eligible' : 'till.not_eligible');
    pill.className = 'pill ' + (h.eligible ? 'ok' : 'warn');
    $('#hh-wallet').textContent = yuan(h.wallet.total);
    $('#hh-wallet-paid').textContent = yuan(h.wallet.paid);
    $('#hh-wallet-bonus').textContent = yuan(h.wallet.bonus);
  }

  // `card` is the household card's link when the card was scanned, null when the code was typed.
  async function loadHousehold(code, card) {
    show($('#household-loading'), true);
    const r = await HX.api('GET', '/v1/households/' + encodeURIComponent(code));
    show($('#household-loading'), false);
    if (!r.ok) {
      showProblem($('#scan-problem'), Object.assign({}, r.problem, { field: 'household' }), $('#scan-form'));
      return false;
    }
    showProblem($('#scan-problem'), null, $('#scan-form'));
    state.household = r.data;
    state.card = card;
    renderHousehold();
    quoteSoon();
    return true;
  }

  // A finished sale, refund or top-up ends its customer on the page: the household and any
  // scanned voucher are forgotten and every form starts empty, so the next sale is booked to
  // nobody until the next customer's card is scanned. The receipt stays, for the one just served.
  // `served` is the household the action was for: one scanned while it was on its way is the
  // next customer's and stays.
  function endCustomer(served) {
    if (state.household === served) {
      state.household = null;
      state.card = null;
      renderHousehold();
    }
    clearTimeout(quoteTimer);
    state.quoteSeq += 1; // a quote still on its way is for the customer who left
    show($('#topup-quoting'), false);
    for (const form of ['#topup-form', '#sale-form', '#refund-form', '#voucher-form', '#fee-form']) $(form).reset();
    showProblem($('#fee-problem'), null, $('#fee-form'));
    setTopupProblem(null);
    show($('#topup-preview'), false);
    show($('#topup-bonus-allowed-field'), false);
    showProblem($('#sale-problem'), null, $('#sale-form'));
    showProblem($('#refund-problem'), null, $('#refund-form'));
    showProblem($('#voucher-problem'), null, $('#voucher-form'));
    show($('#voucher-result'), false);
    state.voucher = null;
    state.voucherAuto = false;
    $('#sale-voucher-note').textContent = '';
    state.lines = [];
    renderHits([]);
    renderLines();
    $('#scan').focus();
  }

  // ---- the finished action: unmistakable, and visibly not to be posted again ---------------

  const SUBMITS = { sale: '#sale-submit', topup: '#topup-submit', refund: '#refund-submit', fee: '#fee-submit' };

  function setDone(done) {
    state.done = done;
    show($('#done'), done);
    for (const sel of Object.values(SUBMITS)) {
      const button = $(sel);
      button.classList.toggle('till-finished', done);
      button.disabled = done;
      const label = button.querySelector('[data-i18n]');
      label.textContent = done ? t('till.done.button') : t(label.dataset.i18n);
    }
    if (done) {
      renderDone();
      window.scrollTo(0, 0);
    }
  }

  // The next customer: the confirmation goes, the forms are ready, the scan box has the focus.
  function nextCustomer() {
    if (state.done) setDone(false);
    if (state.household && !attemptsBusy()) {
      state.household = null;
      state.card = null;
      renderHousehold();
      quoteSoon();
    }
    $('#scan').focus();
  }

  function attemptsBusy() {
    return Object.values(attempts).some((a) => a.busy);
  }

  function doneLine(id, label, value, cls) {
    return [el('dt', {}, t(label)), el('dd', { id: 'done-' + id, class: cls }, value)];
  }

  function renderDone() {
    const rc = state.receipt;
    if (!rc || !state.done) return;
    const d = rc.data;
    const lines = [];
    $('#done-title').textContent = t('till.done.' + rc.kind);
    show($('#done-replayed'), rc.replayed);
    if (rc.kind === 'sale') {
      $('#done-amount').textContent = yuan(d.total);
      for (const x of d.tenders) {
        lines.push(doneLine('tender-' + x.type, 'till.m.' + x.type, yuan(x.amount)));
        if (x.type === 'voucher' && x.voucher_balance !== undefined) {
          lines.push(doneLine('voucher-balance', 'till.r.voucher_balance', yuan(x.voucher_balance)));
        }
      }
      if (rc.received) {
        lines.push(doneLine('received', 'till.r.received', yuan(rc.received)));
        lines.push(doneLine('change', 'till.r.change', yuan(rc.change), 'big'));
      }
      if (d.wallet) lines.push(doneLine('wallet', 'till.r.wallet', yuan(d.wallet.total)));
      lines.push(doneLine('sale', 'till.r.sale', String(d.sale)));
    } else if (rc.kind === 'topup') {
      $('#done-amount').textContent = yuan(d.credited);
      lines.push(doneLine('paid', 'till.r.paid', yuan(d.paid)), doneLine('bonus', 'till.r.bonus', yuan(d.bonus)));
      if (d.voucher) lines.push(doneLine('voucher', 'till.r.voucher', d.voucher.code));
      else lines.push(doneLine('wallet', 'till.r.wallet', yuan(d.wallet.total)));
    } else if (rc.kind === 'topup_void') {
      $('#done-amount').textContent = yuan(d.paid);
      lines.push(doneLine('paid-back', 'till.r.paid_back', yuan(d.paid)),
        doneLine('bonus-withdrawn', 'till.r.bonus_withdrawn', yuan(d.bonus)));
      if (d.wallet) lines.push(doneLine('wallet', 'till.r.wallet', yuan(d.wallet.total)));
    } else if (rc.kind === 'fee') {
      $('#done-amount').textContent = yuan(d.amount);
      lines.push(...feeDoneLines(rc));
    } else {
      $('#done-amount').textContent = yuan(d.amount);
      for (const x of d.tenders) lines.push(doneLine('tender-' + x.type, 'till.m.' + x.type, yuan(x.amount)));
      lines.push(doneLine('sale', 'till.r.sale', String(d.sale)));
    }
    // A fee receipt carries the company's own number instead (feeDoneLines).
    if (rc.kind !== 'fee') lines.push(doneLine('receipt-no', 'till.r.receipt_no', String(d.entry)));
    $('#done-lines').replaceChildren(...lines.flat());
  }

  // ---- tabs and keys --------------------------------------------------------------------

  function selectTab(name) {
    state.tab = name;
    for (const b of document.querySelectorAll('.tabs [data-tab]')) {
      b.setAttribute('aria-selected', String(b.dataset.tab === name));
    }
    for (const p of document.querySelectorAll('[data-panel]')) show(p, p.dataset.panel === name);
  }

  function submitCurrent() {
    const form = { sale: '#sale-form', topup: '#topup-form', refund: '#refund-form', voucher: '#voucher-form', fee: '#fee-form' }[state.tab];
    if (form) $(form).requestSubmit();
  }

  function printReceipt() {
    if (state.receipt) window.print();
  }

  function renderKeys() {
    $('#till-keys').replaceChildren(
      el('span', {}, t('till.keys.title')),
      ...KEYS.map((k) => el('span', { class: 'till-key', dataset: { key: k.key } },
        el('kbd', {}, k.shown || k.key), ' ', t(k.label))));
  }

  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|SELECT|TEXTAREA)$/.test(target.tagName));
  }

  function onKey(ev) {
    if (ev.ctrlKey || ev.altKey || ev.metaKey) return;
    const k = KEYS.find((x) => x.key === ev.key);
    if (k) {
      ev.preventDefault();
      k.run();
      return;
    }
    // A scanner types wherever the focus is: keys that land on no input (a button, the page)
    // go to the scan box, so a scan is never lost.
    if (ev.key.length === 1 && !typing(ev.target)) {
      const scan = $('#scan');
      scan.focus();
      if (state.done) setDone(false);
    }
  }

  // ---- top-up ---------------------------------------------------------------------------

  function topupBody() {
    const paid = fen($('#topup-paid').value);
    return {
      household: state.household ? state.household.household : '',
      paid: paid === null ? $('#topup-paid').value.trim() : amount(paid),
      method: $('#topup-method').value,
      deliver: $('#topup-deliver').value,
      ...($('#topup-bonus-allowed').checked ? { bonus: 'allowed' } : {}),
    };
  }

  // Past the monthly bonus cap the cashier may still top up with the bonus that is left
  // (possibly none), once the resident agrees: the box shows with that refusal, or while ticked.
  function offerBonusAllowed(problem) {
    const capped = Boolean(problem && problem.code === 'cap_exceeded' && /monthly bonus/.test(problem.detail || ''));
    show($('#topup-bonus-allowed-field'), capped || $('#topup-bonus-allowed').checked);
  }

  let quoteTimer = null;
  function quoteSoon() {
    clearTimeout(quoteTimer);
    quoteTimer = setTimeout(quote, 200);
  }

  function setTopupProblem(problem) {
    showProblem($('#topup-problem'), problem, $('#topup-form'));
  }

  // The preview is the server's own computation (GET /v1/topups/quote), never the page's.
  async function quote() {
    const seq = ++state.quoteSeq;
    const paidText = $('#topup-paid').value.trim();
    show($('#topup-preview'), false);
    if (!state.household || !paidText) {
      show($('#topup-quoting'), false);
      setTopupProblem(null);
      return;
    }
    const paid = fen(paidText);
    if (paid === null || paid <= 0n) {
      setTopupProblem({ code: 'invalid_amount', field: 'paid' });
      return;
    }
    const b = topupBody();
    const q = new URLSearchParams({ household: b.household, paid: b.paid, method: b.method, deliver: b.deliver });
    if (b.bonus) q.set('bonus', b.bonus);
    show($('#topup-quoting'), true);
    const r = await HX.api('GET', '/v1/topups/quote?' + q.toString());
    if (seq !== state.quoteSeq) return; // a newer amount was typed meanwhile
    show($('#topup-quoting'), false);
    if (!r.ok) {
      setTopupProblem(r.problem);
      offerBonusAllowed(r.problem);
      return;
    }
    setTopupProblem(null);
    offerBonusAllowed(null);
    for (const id of ['#topup-capped-label', '#topup-capped']) show($(id), Boolean(r.data.bonus_capped));
    $('#topup-bonus').textContent = yuan(r.data.bonus);
    $('#topup-credited').textContent = yuan(r.data.credited);
    // A paper voucher leaves the wallet as it is: say what the voucher carries instead.
    const voucher = b.deliver === 'voucher';
    for (const id of ['#topup-wallet-after-label', '#topup-wallet-after']) show($(id), !voucher);
    for (const id of ['#topup-voucher-label', '#topup-voucher-value']) show($(id), voucher);
    $('#topup-wallet-after').textContent = yuan(r.data.wallet_after);
    $('#topup-voucher-value').textContent = yuan(r.data.credited);
    $('#topup-room').textContent = yuan(r.data.bonus_room_after);
    show($('#topup-preview'), true);
  }

  function quickAmounts() {
    const box = $('#topup-quick');
    box.replaceChildren(...['50.00', '100.00', '200.00', '500.00'].map((a) => el('button', {
      type: 'button',
      class: 'till-chip',
      dataset: { amount: a },
      onclick: () => {
        $('#topup-paid').value = a;
        quoteSoon();
      },
    }, yuan(a))));
  }

  async function submitTopup(ev) {
    ev.preventDefault();
    const attempt = attempts.topup;
    const button = $('#topup-submit');
    if (attempt.busy || state.done) return;
    if (!state.household) {
      setTopupProblem({ code: 'till.problem.household_code', field: 'household' });
      return;
    }
    const served = state.household;
    const body = topupBody();
    if (fen(body.paid) === null) {
      setTopupProblem({ code: 'invalid_amount', field: 'paid' });
      return;
    }
    button.disabled = true;
    const r = await attempt.post('/v1/topups', body);
    button.disabled = false;
    if (!r.ok) {
      setTopupProblem(r.problem);
      offerBonusAllowed(r.problem);
      return;
    }
    showReceipt({ kind: 'topup', data: r.data, replayed: r.replayed });
    endCustomer(served);
  }

  // ---- sale -----------------------------------------------------------------------------

  function renderTenders() {
    const box = $('#tenders');
    if (box.childElementCount) return;
    for (const type of TENDERS) {
      // Cash is what the customer hands over (实收); the change is worked out below.
      const label = type === 'cash' ? 'till.m.cash_received' : 'till.m.' + type;
      box.append(el('div', { class: 'till-tender', dataset: { tender: type } },
        el('label', { for: 'tender-' + type, 'data-i18n': label }, t(label)),
        el('input', {
          id: 'tender-' + type,
          name: 'tender-' + type,
          inputmode: 'decimal',
          oninput: () => {
            if (type === 'voucher') state.voucherAuto = false;
            updateRemaining();
          },
        }),
        el('button', {
          type: 'button',
          id: 'rest-' + type,
          class: 'till-rest',
          'data-i18n': 'till.sale.rest',
          onclick: () => fillRest(type),
        }, t('till.sale.rest'))));
    }
  }

  // The sale's sums in fen: what is due, what the cash and the other tenders bring, what is
  // left to pay, the change, and what the other tenders bring beyond the amount due (never
  // allowed: only cash gives change). null while an entry is not an amount.
  function saleSums() {
    const due = fen($('#sale-amount').value || '0');
    if (due === null) return null;
    let others = 0n;
    let cash = 0n;
    for (const type of TENDERS) {
      const v = $('#tender-' + type).value.trim();
      if (!v) continue;
      const f = fen(v);
      if (f === null) return null;
      if (type === 'cash') cash = f;
      else others += f;
    }
    const over = others > due ? others - due : 0n;
    const cashDue = due > others ? due - others : 0n;
    const left = cashDue > cash ? cashDue - cash : 0n;
    const change = cash > cashDue ? cash - cashDue : 0n;
    return { due, others, cash, cashDue, left, change, over };
  }

  // Amount due minus every tender entered, in fen, counting only the cash that stays (the
  // change goes back); null while an entry is not an amount.
  function remainingFen() {
    const s = saleSums();
    if (s === null) return null;
    return s.over > 0n ? -s.over : s.left;
  }

  function updateRemaining() {
    if (state.voucherAuto) applyVoucher();
    const s = saleSums();
    const out = $('#sale-remaining');
    out.classList.toggle('till-over', s !== null && s.over > 0n);
    if (s === null) out.textContent = '—';
    else if (s.over > 0n) out.textContent = `${t('till.sale.over')} ${yuan(amount(s.over))}`;
    else out.textContent = yuan(amount(s.left));
    const change = s !== null && s.over === 0n && s.change > 0n;
    show($('#sale-change-row'), change);
    $('#sale-change').textContent = change ? yuan(amount(s.change)) : '';
    show($('#sale-voucher-field'), Boolean($('#tender-voucher').value.trim()) || Boolean(state.voucher));
    show($('#sale-resident-field'), Boolean($('#tender-wallet').value.trim()) && !state.card);
  }

  function fillRest(type) {
    const input = $('#tender-' + type);
    const left = remainingFen();
    if (left === null) return;
    const mine = fen(input.value || '0') ?? 0n;
    const value = mine + left;
    if (type === 'voucher') state.voucherAuto = false;
    input.value = value > 0n ? amount(value) : '';
    updateRemaining();
  }

  // A scanned voucher pays for what it covers: the amount due, up to its balance, less what
  // the wallet and the other non-cash tenders already pay.
  function applyVoucher() {
    const v = state.voucher;
    if (!v) return;
    const due = fen($('#sale-amount').value || '0');
    if (due === null) return;
    let others = 0n;
    for (const type of ['wallet', 'wechat', 'alipay']) others += fen($('#tender-' + type).value || '0') ?? 0n;
    const open = due > others ? due - others : 0n;
    const covers = open < v.balance ? open : v.balance;
    $('#tender-voucher').value = covers > 0n ? amount(covers) : '';
  }

  async function scanVoucher(code) {
    const r = await HX.api('GET', '/v1/vouchers/' + encodeURIComponent(code));
    if (!r.ok) {
      showProblem($('#scan-problem'), Object.assign({}, r.problem, { field: 'household' }), $('#scan-form'));
      return false;
    }
    if (r.data.status !== 'active') {
      showProblem($('#scan-problem'), { code: 'till.problem.voucher_not_active', status: r.data.status, field: 'household' }, $('#scan-form'));
      return false;
    }
    showProblem($('#scan-problem'), null, $('#scan-form'));
    state.voucher = { code: r.data.code || code, balance: fen(r.data.balance) };
    state.voucherAuto = true;
    $('#sale-voucher-code').value = state.voucher.code;
    $('#sale-voucher-note').textContent = t('till.sale.voucher_scanned', { code: state.voucher.code, balance: yuan(r.data.balance) });
    selectTab('sale');
    updateRemaining();
    return true;
  }

  // ---- sale by catalogue lines: each line priced by the server, the page only adds ------

  async function loadCatalog() {
    show($('#catalog-loading'), true);
    const r = await HX.api('GET', '/v1/catalog');
    show($('#catalog-loading'), false);
    state.catalog = r.ok ? r.data.items : [];
    show($('#catalog-empty'), r.ok && !state.catalog.length);
    show($('#catalog-pick'), state.catalog.length > 0);
    if (!r.ok) showProblem($('#sale-problem'), r.problem, $('#sale-form'));
  }

  // Items whose SKU, name or pinyin initials (from the server) match what was typed: the SKU
  // itself first, then initials and SKUs that start with it, then any other match.
  function search(text) {
    const q = text.trim().toLowerCase();
    if (!q) return [];
    const scored = [];
    for (const i of state.catalog) {
      const sku = i.sku.toLowerCase();
      const initials = (i.initials || '').toLowerCase();
      let score = null;
      if (sku === q) score = 0;
      else if (sku.startsWith(q) || initials.startsWith(q)) score = 1;
      else if (i.name.toLowerCase().includes(q) || initials.includes(q)) score = 2;
      if (score !== null) scored.push([score, i]);
    }
    scored.sort((a, b) => a[0] - b[0] || a[1].sku.localeCompare(b[1].sku));
    return scored.slice(0, 8).map((x) => x[1]);
  }

  function renderHits(hits) {
    state.hits = hits;
    const list = $('#product-results');
    const q = $('#product-search').value.trim();
    list.replaceChildren(...hits.map((i) => el('li', {},
      el('button', {
        type: 'button',
        class: 'till-hit',
        dataset: { sku: i.sku },
        onclick: () => addLine(i.sku),
      }, el('span', {}, i.name), ' ', el('span', { class: 'muted' }, `${i.sku} · ${yuan(i.price)}/${i.unit}`)))));
    if (q && !hits.length) list.append(el('li', { class: 'muted' }, t('till.sale.no_match')));
    show(list, Boolean(q));
  }

  function linesTotal() {
    return state.lines.reduce((sum, l) => sum + fen(l.amount), 0n);
  }

  function renderLines() {
    const table = $('#sale-lines');
    const body = table.querySelector('tbody');
    body.replaceChildren(...state.lines.map((l, i) => el('tr', { id: 'line-' + i },
      el('td', {}, l.name, ' ', el('span', { class: 'muted' }, l.sku)),
      el('td', { class: 'num' }, `${l.qty} ${l.unit}`),
      el('td', { class: 'num line-amount' }, yuan(l.amount)),
      el('td', {}, el('button', {
        type: 'button',
        class: 'link',
        onclick: () => {
          state.lines.splice(i, 1);
          renderLines();
        },
      }, t('till.sale.remove'))))));
    show(table, state.lines.length > 0);
    const byLines = state.lines.length > 0;
    const input = $('#sale-amount');
    input.readOnly = byLines;
    show($('#sale-by-lines'), byLines);
    if (byLines) input.value = amount(linesTotal());
    updateRemaining();
  }

  async function addLine(sku, qtyText) {
    const form = $('#sale-form');
    const box = $('#sale-problem');
    const qty = qtyText || $('#line-qty').value.trim() || '1';
    if (!sku) return;
    if (state.done) setDone(false);
    const q = new URLSearchParams({ sku, qty });
    const r = await HX.api('GET', '/v1/catalog/price?' + q.toString());
    if (!r.ok) {
      showProblem(box, r.problem.field === 'qty' ? r.problem : Object.assign({}, r.problem, { field: 'qty' }), form);
      return;
    }
    showProblem(box, null, form);
    state.lines.push({ sku: r.data.sku, name: r.data.name, unit: r.data.unit, qty: r.data.qty, amount: r.data.amount });
    $('#line-qty').value = '1';
    $('#product-search').value = '';
    renderHits([]);
    renderLines();
  }

  async function submitSale(ev) {
    ev.preventDefault();
    const attempt = attempts.sale;
    if (attempt.busy || state.done) return;
    const form = $('#sale-form');
    const box = $('#sale-problem');
    const due = fen($('#sale-amount').value);
    if (due === null || due <= 0n) {
      showProblem(box, { code: 'invalid_amount', field: 'amount' }, form);
      return;
    }
    const sums = saleSums();
    const tenders = [];
    for (const type of TENDERS) {
      const v = $('#tender-' + type).value.trim();
      if (!v) continue;
      const f = fen(v);
      if (f === null || f <= 0n) {
        showProblem(box, { code: 'invalid_amount', field: 'tender-' + type }, form);
        return;
      }
      // Of the cash handed over, the sale keeps what is due; the rest is change.
      const kept = type === 'cash' && sums ? sums.cash - sums.change : f;
      if (kept <= 0n) continue;
      const tender = { type, amount: amount(kept) };
      if (type === 'voucher') {
        const code = $('#sale-voucher-code').value.trim();
        if (!code) {
          showProblem(box, { code: 'till.problem.voucher_needs_code', field: 'voucher_code' }, form);
          return;
        }
        tender.code = code;
      }
      tenders.push(tender);
    }
    // The household is only ever the one scanned since the last finished action (endCustomer).
    if (tenders.some((x) => x.type === 'wallet') && !state.household) {
      showProblem(box, { code: 'till.problem.wallet_needs_household', field: 'tender-wallet' }, form);
      $('#scan').focus();
      return;
    }
    if (sums && sums.over > 0n) {
      showProblem(box, { code: 'till.problem.over_paid', field: 'amount' }, form);
      return;
    }
    if (remainingFen() !== 0n) {
      showProblem(box, { code: 'remaining', field: 'amount' }, form);
      return;
    }
    const served = state.household;
    const lines = state.lines.map((l) => ({ sku: l.sku, qty: l.qty }));
    const body = lines.length ? { lines, tenders } : { amount: amount(due), tenders };
    if (served) body.household = served.household;
    // The card scanned for this sale shows the resident is here to spend from the wallet.
    if (served && state.card && tenders.some((x) => x.type === 'wallet')) body.resident = { card: state.card };
    const received = sums && sums.change > 0n ? { received: amount(sums.cash), change: amount(sums.change) } : {};
    // Without a scanned card, the resident shows presence by typing the household PIN.
    const pin = $('#sale-resident-pin').value.trim();
    if (served && pin && tenders.some((x) => x.type === 'wallet') && !body.resident) body.resident = { pin };
    const button = $('#sale-submit');
    button.disabled = true;
    const r = await attempt.post('/v1/sales', body);
    button.disabled = false;
    if (!r.ok) {
      // A tender's field is `tenders[i].amount`: point at that tender's input.
      if (r.problem.field && /^lines\[/.test(r.problem.field)) r.problem.field = 'qty';
      if (r.problem.field && /^resident/.test(r.problem.field)) {
        r.problem.field = 'resident_pin';
        $('#sale-resident-pin').value = '';
      }
      const m = r.problem.field && /^tenders\[(\d+)\]/.exec(r.problem.field);
      const problem = m && tenders[Number(m[1])]
        ? Object.assign({}, r.problem, { field: r.problem.field.endsWith('code') && tenders[Number(m[1])].type === 'voucher' ? 'voucher_code' : 'tender-' + tenders[Number(m[1])].type })
        : r.problem;
      showProblem(box, problem, form);
      return;
    }
    showReceipt(Object.assign({ kind: 'sale', data: r.data, replayed: r.replayed, lines: state.lines }, received));
    endCustomer(served);
  }

  // ---- refund ---------------------------------------------------------------------------

  async function submitRefund(ev) {
    ev.preventDefault();
    const attempt = attempts.refund;
    if (attempt.busy || state.done) return;
    const form = $('#refund-form');
    const box = $('#refund-problem');
    const sale = $('#refund-sale').value.trim();
    if (!/^\d+$/.test(sale)) {
      showProblem(box, { code: 'invalid_input', field: 'sale' }, form);
      return;
    }
    const text = $('#refund-amount').value.trim();
    const body = {};
    if (text) {
      const f = fen(text);
      if (f === null || f <= 0n) {
        showProblem(box, { code: 'invalid_amount', field: 'amount' }, form);
        return;
      }
      body.amount = amount(f);
    }
    const served = state.household;
    const button = $('#refund-submit');
    button.disabled = true;
    const r = await attempt.post(`/v1/sales/${sale}/refunds`, body);
    button.disabled = false;
    if (!r.ok) {
      showProblem(box, r.problem, form);
      return;
    }
    showReceipt({ kind: 'refund', data: r.data, replayed: r.replayed });
    endCustomer(served);
  }

  // ---- void of the top-up just taken -----------------------------------------------------

  async function voidTopup() {
    const rc = state.receipt;
    const attempt = attempts.void;
    if (!rc || rc.kind !== 'topup' || attempt.busy) return;
    const button = $('#receipt-void-confirm');
    button.disabled = true;
    const r = await attempt.post(`/v1/topups/${rc.data.entry}/void`, {});
    button.disabled = false;
    if (!r.ok) {
      showProblem($('#receipt-problem'), r.problem, null);
      return;
    }
    showReceipt({ kind: 'topup_void', data: r.data, replayed: r.replayed });
  }

  // ---- today's top-ups at this till ------------------------------------------------------
  // The top-ups this shop took today (GET /v1/till/topups), newest first, so that a mistaken
  // one can be voided later the same day: 作废 on a row, then the same confirm step and
  // POST /v1/topups/{topup}/void as the receipt's void button (`voidTopup`).

  const today = { rows: [], confirming: null, seq: 0, attempt: new HX.Attempt() };

  async function loadTodayTopups() {
    const seq = ++today.seq;
    const r = await HX.api('GET', '/v1/till/topups');
    if (seq !== today.seq) return;
    if (!r.ok) {
      showProblem($('#today-topups-problem'), r.problem, null);
      return;
    }
    today.rows = r.data.topups;
    today.confirming = null;
    renderTodayTopups();
  }

  function todayTime(at) {
    return new Date(at).toLocaleTimeString(HX.lang(), { hour: '2-digit', minute: '2-digit' });
  }

  function renderTodayTopups() {
    show($('#today-topups-empty'), today.rows.length === 0);
    $('#today-topups-body').replaceChildren(...today.rows.map((x) => {
      let action;
      if (x.voided) {
        action = el('span', { class: 'muted voided' }, t('till.today.voided'));
      } else if (today.confirming === x.topup) {
        action = el('button', {
          type: 'button', class: 'danger today-void-confirm',
          onclick: () => voidTodayTopup(x.topup),
        }, t('till.void_confirm'));
      } else {
        action = el('button', {
          type: 'button', class: 'today-void',
          onclick: () => {
            today.confirming = x.topup;
            showProblem($('#today-topups-problem'), null, null);
            renderTodayTopups();
            $('#today-topups-body .today-void-confirm').focus();
          },
        }, t('till.today.void'));
      }
      return el('tr', { dataset: { topup: String(x.topup) }, class: x.voided ? 'voided' : null },
        el('td', { class: 'receipt-no' }, String(x.topup)),
        el('td', { class: 'holder' }, t('till.today.' + x.deliver, { household: x.household })),
        el('td', { class: 'num paid' }, yuan(x.paid)),
        el('td', { class: 'num bonus' }, yuan(x.bonus)),
        el('td', { class: 'time' }, todayTime(x.at)),
        el('td', { class: 'state' }, action));
    }));
  }

  async function voidTodayTopup(topup) {
    const attempt = today.attempt;
    if (attempt.busy) return;
    const r = await attempt.post(`/v1/topups/${topup}/void`, {});
    if (!r.ok) {
      showProblem($('#today-topups-problem'), r.problem, null);
      return;
    }
    showProblem($('#today-topups-problem'), null, null);
    showReceipt({ kind: 'topup_void', data: r.data, replayed: r.replayed });
  }

  function wireTodayTopups() {
    $('#tab-topup').addEventListener('click', loadTodayTopups);
    $('#today-topups-refresh').addEventListener('click', loadTodayTopups);
    document.addEventListener('hx:lang', renderTodayTopups);
    loadTodayTopups();
  }

  // ---- voucher check --------------------------------------------------------------------

  async function checkVoucher(ev) {
    if (ev) ev.preventDefault();
    const form = $('#voucher-form');
    const box = $('#voucher-problem');
    const code = $('#voucher-code').value.trim();
    show($('#voucher-result'), false);
    if (!code) {
      showProblem(box, { code: 'voucher_invalid', field: 'code' }, form);
      return;
    }
    const r = await HX.api('GET', '/v1/vouchers/' + encodeURIComponent(code));
    if (!r.ok) {
      showProblem(box, r.problem, form);
      return;
    }
    showProblem(box, null, form);
    $('#voucher-status').textContent = t('till.status.' + r.data.status);
    $('#voucher-status').dataset.status = r.data.status;
    $('#voucher-balance').textContent = yuan(r.data.balance);
    $('#voucher-paid').textContent = yuan(r.data.paid);
    $('#voucher-bonus').textContent = yuan(r.data.bonus);
    $('#voucher-expires').textContent = r.data.expires_on;
    show($('#voucher-result'), true);
    state.exchangeCode = r.data.exchangeable ? code : null;
    show($('#voucher-exchange'), Boolean(r.data.exchangeable));
  }

  // An expired voucher with credit left, exchanged for a new one printed like a top-up's.
  async function exchangeVoucher() {
    const attempt = attempts.exchange;
    const code = state.exchangeCode;
    if (!code || attempt.busy || state.done) return;
    const button = $('#voucher-exchange');
    button.disabled = true;
    const r = await attempt.post('/v1/vouchers/' + encodeURIComponent(code) + '/exchange', {});
    button.disabled = false;
    if (!r.ok) {
      showProblem($('#voucher-problem'), r.problem, $('#voucher-form'));
      return;
    }
    state.exchangeCode = null;
    show($('#voucher-exchange'), false);
    showReceipt({ kind: 'exchange', data: r.data, old: code, replayed: r.replayed });
  }

  // ---- property fees (代收物业费) ----------------------------------------------------------
  // The household's company is paid through the cooperative's till: cash, WeChat or Alipay only
  // (the select offers nothing else; shopping credit never pays fees). What the household owes
  // comes from GET /v1/till/households/{code}/fees: the amounts owed, the unpaid bills and the
  // company's name, no more. The receipt is the company's numbered 收据, read back with
  // GET /v1/companies/{company}/fee-receipts/{number} for the amount in capitals (大写).

  HX.strings({
    'zh-CN': {
      'till.tab.fee': '物业费',
      'till.keys.fee': '物业费',
      'till.fee.title': '代收物业费',
      'till.fee.amount': '缴费金额',
      'till.fee.amount_placeholder': '输入金额',
      'till.fee.pay_owed': '付清欠费',
      'till.fee.methods_note': '物业费只收现金、微信或支付宝；购物余额和券不能缴物业费。',
      'till.fee.submit': '确认缴费',
      'till.fee.company': '物业公司',
      'till.fee.arrears': '欠费',
      'till.fee.prepaid': '已预交',
      'till.fee.clear': '已结清',
      'till.fee.bill': '{month} 未缴',
      'till.fee.elsewhere': '欠原物业公司 {company}（{months}，请到该公司缴纳，本单不抵扣）',
      'till.fee.elsewhere_ahead': '在原物业公司 {company} 的预交（不抵本公司物业费）',
      'till.done.fee': '物业费已收',
      'till.receipt.fee': '物业费收据',
      'till.r.fee_number': '收据号',
      'till.r.fee_company': '收款单位',
      'till.r.fee_amount': '金额',
      'till.r.fee_words': '大写',
      'till.r.fee_bill': '{month} 物业费',
      'till.r.fee_prepaid': '预交',
      'till.r.fee_balance': '缴费后',
      'till.r.fee_owes': '尚欠 {amount}',
      'till.r.fee_ahead': '预交余额 {amount}',
      'till.r.fee_collected': '代收单位',
    },
    en: {
      'till.tab.fee': 'Property fee',
      'till.keys.fee': 'Property fee',
      'till.fee.title': 'Property fee (collected for the company)',
      'till.fee.amount': 'Amount paid',
      'till.fee.amount_placeholder': 'Enter the amount',
      'till.fee.pay_owed': 'Pay all owed',
      'till.fee.methods_note': 'Property fees are paid in cash, WeChat or Alipay only; shopping credit and vouchers never pay fees.',
      'till.fee.submit': 'Take fee payment',
      'till.fee.company': 'Property company',
      'till.fee.arrears': 'Owed',
      'till.fee.prepaid': 'Paid ahead',
      'till.fee.clear': 'Nothing owed',
      'till.fee.bill': '{month} unpaid',
      'till.fee.elsewhere': 'Owed to former company {company} ({months}; paid at its office, not settled here)',
      'till.fee.elsewhere_ahead': 'Paid ahead to former company {company} (not set against this company\'s fees)',
      'till.done.fee': 'Property fee received',
      'till.receipt.fee': 'Property fee receipt (收据)',
      'till.r.fee_number': 'Receipt No.',
      'till.r.fee_company': 'Received for',
      'till.r.fee_amount': 'Amount',
      'till.r.fee_words': 'In words (大写)',
      'till.r.fee_bill': 'Fee {month}',
      'till.r.fee_prepaid': 'Paid ahead',
      'till.r.fee_balance': 'After payment',
      'till.r.fee_owes': 'still owes {amount}',
      'till.r.fee_ahead': '{amount} paid ahead',
      'till.r.fee_collected': 'Collected by',
    },
  });

  // The fee read of the household on the page: {of: the household looked up, household, data}
  // (data null while it loads); each look-up reads it afresh.
  let feeOwed = null;

  async function loadFeeOwed(h) {
    const mine = { of: h, household: h.household, data: null };
    feeOwed = mine;
    const r = await HX.api('GET', `/v1/till/households/${encodeURIComponent(h.household)}/fees`);
    if (feeOwed !== mine) return; // another household meanwhile
    if (!r.ok) {
      showProblem($('#fee-problem'), r.problem, $('#fee-form'));
      return;
    }
    feeOwed.data = r.data;
    renderFeeOwed();
  }

  // What the household owes its company, shown on the fee panel: the total, what is paid ahead,
  // and each unpaid bill, oldest first (the order a payment settles them in).
  function renderFeeOwed() {
    const h = state.household;
    const owed = $('#fee-owed');
    if (h && (!feeOwed || feeOwed.of !== h)) loadFeeOwed(h);
    if (!h) feeOwed = null;
    const f = h && feeOwed && feeOwed.data;
    show($('#fee-needs-household'), !h);
    show(owed, Boolean(f));
    show($('#fee-pay-owed'), Boolean(f && fen(f.arrears) > 0n));
    if (!f) {
      owed.replaceChildren();
      return;
    }
    const row = (id, label, value, cls) => [el('dt', {}, label), el('dd', { id: 'fee-' + id, class: cls }, value)];
    const lines = [
      row('company', t('till.fee.company'), f.company_name ? `${f.company_name}（${f.company}）` : f.company),
      row('arrears', t('till.fee.arrears'), fen(f.arrears) > 0n ? yuan(f.arrears) : t('till.fee.clear'), 'big'),
    ];
    if (fen(f.prepaid) > 0n) lines.push(row('prepaid', t('till.fee.prepaid'), yuan(f.prepaid)));
    for (const b of f.bills) {
      lines.push(row('bill-' + b.month, t('till.fee.bill', { month: b.month }), yuan(b.open)));
    }
    // A compound that changed company: what its former company is still owed is not settled by
    // a payment here, so it is shown apart, never in the amount above.
    for (const o of f.owed_elsewhere || []) {
      const company = o.company_name ? `${o.company_name}（${o.company}）` : o.company;
      const owes = fen(o.balance) > 0n;
      const label = owes
        ? t('till.fee.elsewhere', { company, months: o.months.join('、') })
        : t('till.fee.elsewhere_ahead', { company });
      lines.push(row('elsewhere-' + o.company, label, yuan(owes ? o.balance : amount(-fen(o.balance)))));
    }
    owed.replaceChildren(...lines.flat());
  }

  function feeBalanceText(balance) {
    const f = fen(balance);
    if (f > 0n) return t('till.r.fee_owes', { amount: yuan(balance) });
    if (f < 0n) return t('till.r.fee_ahead', { amount: yuan(amount(-f)) });
    return t('till.fee.clear');
  }

  function feeNumberText(rc) {
    return rc.view ? rc.view.printed_number : 'No. ' + String(rc.data.receipt).padStart(6, '0');
  }

  function feeCompanyText(rc) {
    const name = rc.view ? rc.view.company_name : rc.companyName;
    return name ? `${name}（${rc.data.company}）` : rc.data.company;
  }

  // The confirmation on top of the page: the receipt's number and for whom it was taken.
  function feeDoneLines(rc) {
    return [
      doneLine('fee-number', 'till.r.fee_number', feeNumberText(rc), 'big'),
      doneLine('fee-company', 'till.r.fee_company', feeCompanyText(rc)),
      doneLine('household', 'till.r.household', rc.data.household),
      doneLine('method', 'till.r.method', t('till.m.' + rc.data.method)),
    ];
  }

  // The printed 收据: number, company, household, amount in figures and in capitals, the bills
  // it settled, the method, and who collected it (the date, shop and cashier follow as on every
  // till receipt).
  function feeReceiptLines(rc) {
    const d = rc.data;
    const v = rc.view;
    const lines = [
      line('fee-number', 'till.r.fee_number', feeNumberText(rc)),
      line('fee-company', 'till.r.fee_company', feeCompanyText(rc)),
      line('household', 'till.r.household', d.household),
      line('fee-amount', 'till.r.fee_amount', yuan(d.amount)),
    ];
    if (v) lines.push(line('fee-words', 'till.r.fee_words', v.amount_in_words));
    for (const a of d.applied) {
      lines.push([el('dt', {}, t('till.r.fee_bill', { month: a.month })), el('dd', { id: 'r-fee-bill-' + a.month }, yuan(a.amount))]);
    }
    if (fen(d.prepaid) > 0n) lines.push(line('fee-prepaid', 'till.r.fee_prepaid', yuan(d.prepaid)));
    lines.push(
      line('fee-balance', 'till.r.fee_balance', feeBalanceText(d.balance)),
      line('method', 'till.r.method', t('till.m.' + d.method)),
    );
    if (v && v.cooperative) {
      lines.push(line('fee-collected', 'till.r.fee_collected',
        v.cooperative_name ? `${v.cooperative_name}（${v.cooperative}）` : v.cooperative));
    }
    lines.push(line('entry', 'till.r.entry', String(d.entry)));
    return lines;
  }

  async function submitFee(ev) {
    ev.preventDefault();
    const attempt = attempts.fee;
    if (attempt.busy || state.done) return;
    const form = $('#fee-form');
    const box = $('#fee-problem');
    if (!state.household) {
      showProblem(box, { code: 'till.problem.household_code', field: 'household' }, form);
      return;
    }
    const paid = fen($('#fee-amount').value);
    if (paid === null || paid <= 0n) {
      showProblem(box, { code: 'invalid_amount', field: 'amount' }, form);
      return;
    }
    const served = state.household;
    const body = { household: served.household, amount: amount(paid), method: $('#fee-method').value };
    const button = $('#fee-submit');
    button.disabled = true;
    const r = await attempt.post('/v1/till/fee-payments', body);
    if (!r.ok) {
      button.disabled = false;
      showProblem(box, r.problem, form);
      return;
    }
    showProblem(box, null, form);
    // The money is taken: the receipt shows whatever the read of its words answers.
    const v = await HX.api('GET', `/v1/companies/${encodeURIComponent(r.data.company)}/fee-receipts/${r.data.receipt}`);
    button.disabled = false;
    showReceipt({
      kind: 'fee',
      data: r.data,
      view: v.ok ? v.data : null,
      companyName: served.company_name,
      replayed: r.replayed,
    });
    if (!v.ok) showProblem($('#receipt-problem'), v.problem, null);
    endCustomer(served);
  }

  function wireFee() {
    $('#fee-form').addEventListener('submit', submitFee);
    $('#fee-pay-owed').addEventListener('click', () => {
      const h = state.household;
      const f = h && feeOwed && feeOwed.of === h && feeOwed.data;
      if (!f) return;
      if (state.done) setDone(false);
      $('#fee-amount').value = f.arrears;
      $('#fee-amount').focus();
    });
  }

  // ---- receipt --------------------------------------------------------------------------

  function line(id, label, value) {
    return [el('dt', {}, t(label)), el('dd', { id: 'r-' + id }, value)];
  }

  function tenderLines(tenders) {
    return tenders.map((x) => line('tender-' + x.type, 'till.m.' + x.type, yuan(x.amount)));
  }

  // A finished action: its receipt, and the confirmation on top of the page.
  function showReceipt(receipt) {
    state.receipt = receipt;
    renderReceipt();
    setDone(true);
    // Today's top-ups at this till follow a top-up or a void.
    if (receipt.kind === 'topup' || receipt.kind === 'topup_void') loadTodayTopups();
  }

  function renderReceipt() {
    const rc = state.receipt;
    show($('#receipt'), Boolean(rc));
    if (!rc) return;
    const d = rc.data;
    const lines = [];
    const qr = $('#receipt-qr');
    qr.replaceChildren();
    show(qr, false);
    show($('#receipt-refund'), rc.kind === 'sale');
    // A top-up can be voided while the customer is still at the till (two taps: void, confirm).
    show($('#receipt-void'), rc.kind === 'topup');
    show($('#receipt-void-confirm'), false);
    showProblem($('#receipt-problem'), null, null);
    if (rc.kind === 'topup') {
      lines.push(
        line('household', 'till.r.household', d.household),
        line('paid', 'till.r.paid', yuan(d.paid)),
        line('bonus', 'till.r.bonus', yuan(d.bonus)),
        line('credited', 'till.r.credited', yuan(d.credited)),
        line('method', 'till.r.method', t('till.m.' + d.method)),
      );
      if (d.voucher) {
        lines.push(
          line('voucher', 'till.r.voucher', d.voucher.code),
          line('expires', 'till.r.expires', d.voucher.expires_on),
        );
        qr.append(el('img', {
          id: 'receipt-qr-img',
          src: '/v1/vouchers/' + encodeURIComponent(d.voucher.code) + '/qr.svg',
          alt: d.voucher.code,
        }));
        show(qr, true);
      } else {
        lines.push(line('wallet', 'till.r.wallet', yuan(d.wallet.total)));
      }
    } else if (rc.kind === 'exchange') {
      lines.push(
        line('old-voucher', 'till.r.old_voucher', rc.old),
        line('voucher', 'till.r.voucher', d.voucher.code),
        line('balance', 'till.r.balance', yuan(d.voucher.balance)),
        line('paid', 'till.r.paid', yuan(d.paid)),
        line('bonus', 'till.r.bonus', yuan(d.bonus)),
        line('expires', 'till.r.expires', d.voucher.expires_on),
      );
      qr.append(el('img', {
        id: 'receipt-qr-img',
        src: '/v1/vouchers/' + encodeURIComponent(d.voucher.code) + '/qr.svg',
        alt: d.voucher.code,
      }));
      show(qr, true);
    } else if (rc.kind === 'sale') {
      lines.push(line('sale', 'till.r.sale', String(d.sale)));
      (rc.lines || []).forEach((l, i) => lines.push([
        el('dt', {}, `${l.name} ${l.qty}${l.unit}`),
        el('dd', { id: 'r-line-' + i }, yuan(l.amount)),
      ]));
      lines.push(line('total', 'till.r.total', yuan(d.total)));
      lines.push(...tenderLines(d.tenders));
      if (rc.received) {
        lines.push(line('received', 'till.r.received', yuan(rc.received)), line('change', 'till.r.change', yuan(rc.change)));
      }
      if (d.wallet) lines.push(line('wallet', 'till.r.wallet', yuan(d.wallet.total)));
    } else if (rc.kind === 'topup_void') {
      lines.push(
        line('voided-topup', 'till.r.voided_topup', String(d.topup)),
        line('household', 'till.r.household', d.household),
        line('paid-back', 'till.r.paid_back', yuan(d.paid)),
        line('bonus-withdrawn', 'till.r.bonus_withdrawn', yuan(d.bonus)),
        line('method', 'till.r.method', t('till.m.' + d.method)),
      );
      if (d.wallet) lines.push(line('wallet', 'till.r.wallet', yuan(d.wallet.total)));
    } else if (rc.kind === 'fee') {
      lines.push(...feeReceiptLines(rc));
    } else {
      lines.push(line('sale', 'till.r.sale', String(d.sale)), line('refunded', 'till.r.refunded', yuan(d.amount)));
      lines.push(...tenderLines(d.tenders));
      lines.push(line('remaining', 'till.r.remaining', yuan(d.remaining)));
    }
    const s = state.session || {};
    if (rc.kind !== 'fee') lines.push(line('receipt-no', 'till.r.receipt_no', String(d.entry)));
    if (d.business_date) lines.push(line('date', 'till.r.date', d.business_date));
    if (s.staff) lines.push(line('cashier', 'till.r.cashier', s.staff));
    $('#receipt-shop').textContent = s.shop_name ? `${s.shop_name}（${s.shop}）` : (s.shop || '');
    $('#receipt-title').textContent = t('till.receipt.' + rc.kind) + (rc.replayed ? ' ' + t('till.receipt.replayed') : '');
    $('#receipt-lines').replaceChildren(...lines.flat());
    $('#receipt-foot').textContent = new Date().toLocaleString(HX.lang());
  }

  // ---- wiring ---------------------------------------------------------------------------

  // What the scan box understands: the household card's QR (its signed link), a household
  // code, a catalogue SKU or a product's printed barcode, else a voucher code.
  function onScan(ev) {
    ev.preventDefault();
    const raw = $('#scan').value.trim();
    if (state.done) setDone(false);
    if (!raw) {
      showProblem($('#scan-problem'), { code: 'till.problem.household_code', field: 'household' }, $('#scan-form'));
      return;
    }
    const link = CARD_LINK.exec(raw);
    const code = link ? decodeURIComponent(link[1]).toUpperCase() : raw.toUpperCase();
    if (link || HOUSEHOLD_CODE.test(code)) {
      loadHousehold(code, link ? raw : null).then((ok) => {
        if (ok) $('#scan').value = '';
      });
      return;
    }
    // A product: its SKU, or the barcode printed on its package.
    const item = state.catalog.find((i) => i.sku.toUpperCase() === code || (i.barcode && i.barcode === raw));
    if (item) {
      showProblem($('#scan-problem'), null, $('#scan-form'));
      $('#scan').value = '';
      selectTab('sale');
      addLine(item.sku, '1');
      return;
    }
    scanVoucher(raw).then((ok) => {
      if (ok) $('#scan').value = '';
    });
  }

  let wired = false;
  function wire() {
    if (wired) return;
    wired = true;
    renderTenders();
    quickAmounts();
    renderKeys();
    wireFee();
    document.addEventListener('keydown', onKey);
    $('#scan-form').addEventListener('submit', onScan);
    $('#scan').addEventListener('input', () => {
      if (state.done) setDone(false);
    });
    $('#hh-clear').addEventListener('click', () => {
      state.household = null;
      state.card = null;
      renderHousehold();
      quoteSoon();
      $('#scan').focus();
    });
    $('#done-next').addEventListener('click', nextCustomer);
    $('#done-print').addEventListener('click', printReceipt);
    for (const b of document.querySelectorAll('.tabs [data-tab]')) {
      b.addEventListener('click', () => selectTab(b.dataset.tab));
    }
    const topup = $('#topup-form');
    topup.addEventListener('submit', submitTopup);
    for (const input of [$('#topup-paid'), $('#topup-method'), $('#topup-deliver'), $('#topup-bonus-allowed')]) {
      input.addEventListener('input', quoteSoon);
      input.addEventListener('change', quoteSoon);
    }
    // Touching a form again starts the next action: the confirmation steps aside.
    for (const form of ['#sale-form', '#topup-form', '#refund-form', '#fee-form']) {
      $(form).addEventListener('input', () => {
        if (state.done) setDone(false);
      });
    }
    $('#sale-form').addEventListener('submit', submitSale);
    $('#sale-amount').addEventListener('input', updateRemaining);
    $('#product-search').addEventListener('input', () => renderHits(search($('#product-search').value)));
    $('#product-search').addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        e.preventDefault();
        if (state.hits.length) addLine(state.hits[0].sku);
      }
    });
    $('#line-qty').addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        e.preventDefault();
        if (state.hits.length) addLine(state.hits[0].sku);
      }
    });
    $('#sale-voucher-code').addEventListener('input', () => {
      state.voucher = null;
      state.voucherAuto = false;
      $('#sale-voucher-note').textContent = '';
      updateRemaining();
    });
    $('#refund-form').addEventListener('submit', submitRefund);
    $('#voucher-form').addEventListener('submit', checkVoucher);
    $('#voucher-exchange').addEventListener('click', exchangeVoucher);
    $('#receipt-print').addEventListener('click', printReceipt);
    $('#receipt-void').addEventListener('click', () => {
      if (state.receipt && state.receipt.kind === 'topup') {
        show($('#receipt-void'), false);
        show($('#receipt-void-confirm'), true);
        $('#receipt-void-confirm').focus();
      }
    });
    $('#receipt-void-confirm').addEventListener('click', voidTopup);
    $('#receipt-refund').addEventListener('click', () => {
      if (state.receipt && state.receipt.kind === 'sale') {
        if (state.done) setDone(false);
        $('#refund-sale').value = String(state.receipt.data.sale);
        $('#refund-amount').value = '';
        selectTab('refund');
        $('#refund-amount').focus();
      }
    });
    document.addEventListener('hx:lang', () => {
      renderHousehold();
      renderLines();
      renderHits(state.hits);
      renderReceipt();
      renderDone();
      renderKeys();
      for (const sel of Object.values(SUBMITS)) {
        const label = $(sel).querySelector('[data-i18n]');
        if (state.done) label.textContent = t('till.done.button');
      }
      if (state.voucher) {
        $('#sale-voucher-note').textContent = t('till.sale.voucher_scanned', { code: state.voucher.code, balance: yuan(amount(state.voucher.balance)) });
      }
      for (const [box, problem] of shown) {
        if (!box.hidden) box.textContent = explain(problem);
      }
      if (!$('#voucher-result').hidden) checkVoucher();
    });
  }

  document.addEventListener('DOMContentLoaded', () => {
    HX.boot({
      roles: ['cashier'],
      signInForm: $('#sign-in'),
      main: $('#till'),
      onReady: (session) => {
        state.session = session;
        wire();
        wireTodayTopups();
        loadCatalog();
        selectTab('sale');
        renderHousehold();
        updateRemaining();
        $('#scan').focus();
      },
    });
  });
})();
