// hongxin 红心 — the till 收银台: a cashier on a tablet looks up a household (typed, or a
// keyboard-wedge scanner that types the code and Enter), tops up under spend-50-get-55 with a
// preview computed by the server, sells with a split tender, refunds, checks vouchers, and
// prints a receipt. Every money action goes through an HX.Attempt, so a double tap or a retry
// after a dropped connection posts once.
'use strict';

(function () {
  const { el, $, show, t, fen, amount, yuan } = HX;

  HX.strings({
    'zh-CN': {
      'till.title': '收银台',
      'till.or_pairing': '或输入合作社会计给出的八位配对码：',
      'till.scan': '住户码或券码（可扫码）',
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
      'till.receipt.topup': '充值小票',
      'till.receipt.sale': '销售小票',
      'till.receipt.refund': '退款小票',
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
      'till.problem.not_whole_units': '充值须为 {unit} 的整数倍，例如 {suggest}',
      'till.problem.cap.per_topup': '单次充值最多 {limit}',
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
      'till.or_pairing': 'or the eight-digit pairing code from the cooperative’s accountant:',
      'till.scan': 'Household or voucher code (scan or type)',
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
      'till.receipt.topup': 'Top-up receipt',
      'till.receipt.sale': 'Sale receipt',
      'till.receipt.refund': 'Refund receipt',
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
      'till.problem.not_whole_units': 'Top-ups are whole units of {unit}; try e.g. {suggest}',
      'till.problem.cap.per_topup': 'One top-up is at most {limit}',
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

  const state = {
    household: null, // GET /v1/households/{code}
    receipt: null, // {kind, data, replayed}
    catalog: [], // GET /v1/catalog items
    lines: [], // {sku, name, unit, qty, amount}: each priced by the server
    quoteSeq: 0,
  };
  const attempts = { topup: new HX.Attempt(), sale: new HX.Attempt(), refund: new HX.Attempt() };

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
    if (!h) return;
    $('#hh-code').textContent = h.household;
    $('#hh-name').textContent = [h.name, h.compound].filter(Boolean).join(' · ');
    const pill = $('#hh-eligible');
    pill.textContent = t(h.eligible ? 'till.eligible' : 'till.not_eligible');
    pill.className = 'pill ' + (h.eligible ? 'ok' : 'warn');
    $('#hh-wallet').textContent = yuan(h.wallet.total);
    $('#hh-wallet-paid').textContent = yuan(h.wallet.paid);
    $('#hh-wallet-bonus').textContent = yuan(h.wallet.bonus);
  }

  async function loadHousehold(code) {
    show($('#household-loading'), true);
    const r = await HX.api('GET', '/v1/households/' + encodeURIComponent(code));
    show($('#household-loading'), false);
    if (!r.ok) {
      showProblem($('#scan-problem'), Object.assign({}, r.problem, { field: 'household' }), $('#scan-form'));
      return false;
    }
    showProblem($('#scan-problem'), null, $('#scan-form'));
    state.household = r.data;
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
      renderHousehold();
    }
    clearTimeout(quoteTimer);
    state.quoteSeq += 1; // a quote still on its way is for the customer who left
    show($('#topup-quoting'), false);
    for (const form of ['#topup-form', '#sale-form', '#refund-form', '#voucher-form']) $(form).reset();
    setTopupProblem(null);
    show($('#topup-preview'), false);
    showProblem($('#sale-problem'), null, $('#sale-form'));
    showProblem($('#refund-problem'), null, $('#refund-form'));
    showProblem($('#voucher-problem'), null, $('#voucher-form'));
    show($('#voucher-result'), false);
    state.lines = [];
    renderLines();
    $('#scan').focus();
  }

  // ---- tabs -----------------------------------------------------------------------------

  function selectTab(name) {
    for (const b of document.querySelectorAll('.tabs [data-tab]')) {
      b.setAttribute('aria-selected', String(b.dataset.tab === name));
    }
    for (const p of document.querySelectorAll('[data-panel]')) show(p, p.dataset.panel === name);
  }

  // ---- top-up ---------------------------------------------------------------------------

  function topupBody() {
    const paid = fen($('#topup-paid').value);
    return {
      household: state.household ? state.household.household : '',
      paid: paid === null ? $('#topup-paid').value.trim() : amount(paid),
      method: $('#topup-method').value,
      deliver: $('#topup-deliver').value,
    };
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
    show($('#topup-quoting'), true);
    const r = await HX.api('GET', '/v1/topups/quote?' + q.toString());
    if (seq !== state.quoteSeq) return; // a newer amount was typed meanwhile
    show($('#topup-quoting'), false);
    if (!r.ok) {
      setTopupProblem(r.problem);
      return;
    }
    setTopupProblem(null);
    $('#topup-bonus').textContent = yuan(r.data.bonus);
    $('#topup-credited').textContent = yuan(r.data.credited);
    $('#topup-wallet-after').textContent = yuan(r.data.wallet_after);
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
    if (attempt.busy) return;
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
      return;
    }
    showReceipt('topup', r.data, r.replayed);
    endCustomer(served);
  }

  // ---- sale -----------------------------------------------------------------------------

  function renderTenders() {
    const box = $('#tenders');
    if (box.childElementCount) return;
    for (const type of TENDERS) {
      box.append(el('div', { class: 'till-tender', dataset: { tender: type } },
        el('label', { for: 'tender-' + type, 'data-i18n': 'till.m.' + type }, t('till.m.' + type)),
        el('input', {
          id: 'tender-' + type,
          name: 'tender-' + type,
          inputmode: 'decimal',
          placeholder: '0.00',
          oninput: updateRemaining,
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

  // Amount due minus every tender entered, in fen; null while an entry is not an amount.
  function remainingFen() {
    const due = fen($('#sale-amount').value || '0');
    if (due === null) return null;
    let left = due;
    for (const type of TENDERS) {
      const v = $('#tender-' + type).value.trim();
      if (!v) continue;
      const f = fen(v);
      if (f === null) return null;
      left -= f;
    }
    return left;
  }

  function updateRemaining() {
    const left = remainingFen();
    const out = $('#sale-remaining');
    out.classList.toggle('till-over', left !== null && left < 0n);
    if (left === null) out.textContent = '—';
    else if (left < 0n) out.textContent = `${t('till.sale.over')} ${yuan(amount(-left))}`;
    else out.textContent = yuan(amount(left));
    show($('#sale-voucher-field'), Boolean($('#tender-voucher').value.trim()));
    show($('#sale-resident-field'), Boolean($('#tender-wallet').value.trim()));
  }

  function fillRest(type) {
    const input = $('#tender-' + type);
    const left = remainingFen();
    if (left === null) return;
    const mine = fen(input.value || '0') ?? 0n;
    const value = mine + left;
    input.value = value > 0n ? amount(value) : '';
    updateRemaining();
  }

  // ---- sale by catalogue lines: each line priced by the server, the page only adds ------

  async function loadCatalog() {
    show($('#catalog-loading'), true);
    const r = await HX.api('GET', '/v1/catalog');
    show($('#catalog-loading'), false);
    state.catalog = r.ok ? r.data.items : [];
    const select = $('#catalog-sku');
    select.replaceChildren(...state.catalog.map((i) => el('option', { value: i.sku },
      `${i.name} · ${yuan(i.price)}/${i.unit}`)));
    show($('#catalog-empty'), r.ok && !state.catalog.length);
    show($('#catalog-pick'), state.catalog.length > 0);
    if (!r.ok) showProblem($('#sale-problem'), r.problem, $('#sale-form'));
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

  async function addLine() {
    const form = $('#sale-form');
    const box = $('#sale-problem');
    const sku = $('#catalog-sku').value;
    const qty = $('#line-qty').value.trim();
    if (!sku) return;
    const q = new URLSearchParams({ sku, qty });
    const r = await HX.api('GET', '/v1/catalog/price?' + q.toString());
    if (!r.ok) {
      showProblem(box, r.problem, form);
      return;
    }
    showProblem(box, null, form);
    state.lines.push({ sku: r.data.sku, name: r.data.name, unit: r.data.unit, qty: r.data.qty, amount: r.data.amount });
    $('#line-qty').value = '1';
    renderLines();
  }

  async function submitSale(ev) {
    ev.preventDefault();
    const attempt = attempts.sale;
    if (attempt.busy) return;
    const form = $('#sale-form');
    const box = $('#sale-problem');
    const due = fen($('#sale-amount').value);
    if (due === null || due <= 0n) {
      showProblem(box, { code: 'invalid_amount', field: 'amount' }, form);
      return;
    }
    const tenders = [];
    for (const type of TENDERS) {
      const v = $('#tender-' + type).value.trim();
      if (!v) continue;
      const f = fen(v);
      if (f === null || f <= 0n) {
        showProblem(box, { code: 'invalid_amount', field: 'tender-' + type }, form);
        return;
      }
      const tender = { type, amount: amount(f) };
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
    if (remainingFen() !== 0n) {
      showProblem(box, { code: 'remaining', field: 'amount' }, form);
      return;
    }
    const served = state.household;
    const lines = state.lines.map((l) => ({ sku: l.sku, qty: l.qty }));
    const body = lines.length ? { lines, tenders } : { amount: amount(due), tenders };
    if (served) body.household = served.household;
    // Spending the wallet needs the resident: the PIN they typed, unless a card was scanned.
    const pin = $('#sale-resident-pin').value.trim();
    if (pin && tenders.some((x) => x.type === 'wallet') && !body.resident) body.resident = { pin };
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
    showReceipt('sale', Object.assign({ lines: state.lines }, r.data), r.replayed);
    endCustomer(served);
  }

  // ---- refund ---------------------------------------------------------------------------

  async function submitRefund(ev) {
    ev.preventDefault();
    const attempt = attempts.refund;
    if (attempt.busy) return;
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
    showReceipt('refund', r.data, r.replayed);
    endCustomer(served);
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
  }

  // ---- receipt --------------------------------------------------------------------------

  function line(id, label, value) {
    return [el('dt', {}, t(label)), el('dd', { id: 'r-' + id }, value)];
  }

  function tenderLines(tenders) {
    return tenders.map((x) => line('tender-' + x.type, 'till.m.' + x.type, yuan(x.amount)));
  }

  function showReceipt(kind, data, replayed) {
    state.receipt = { kind, data, replayed };
    renderReceipt();
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
    } else if (rc.kind === 'sale') {
      lines.push(line('sale', 'till.r.sale', String(d.sale)));
      (d.lines || []).forEach((l, i) => lines.push([
        el('dt', {}, `${l.name} ${l.qty}${l.unit}`),
        el('dd', { id: 'r-line-' + i }, yuan(l.amount)),
      ]));
      lines.push(line('total', 'till.r.total', yuan(d.total)));
      lines.push(...tenderLines(d.tenders));
      if (d.wallet) lines.push(line('wallet', 'till.r.wallet', yuan(d.wallet.total)));
    } else {
      lines.push(line('sale', 'till.r.sale', String(d.sale)), line('refunded', 'till.r.refunded', yuan(d.amount)));
      lines.push(...tenderLines(d.tenders));
      lines.push(line('remaining', 'till.r.remaining', yuan(d.remaining)));
    }
    lines.push(line('entry', 'till.r.entry', String(d.entry)));
    if (d.business_date) lines.push(line('date', 'till.r.date', d.business_date));
    $('#receipt-title').textContent = t('till.receipt.' + rc.kind) + (rc.replayed ? ' ' + t('till.receipt.replayed') : '');
    $('#receipt-lines').replaceChildren(...lines.flat());
    const s = state.session;
    $('#receipt-foot').textContent = [s && s.shop, new Date().toLocaleString(HX.lang())].filter(Boolean).join(' · ');
  }

  // ---- wiring ---------------------------------------------------------------------------

  function onScan(ev) {
    ev.preventDefault();
    const raw = $('#scan').value.trim();
    if (!raw) {
      showProblem($('#scan-problem'), { code: 'till.problem.household_code', field: 'household' }, $('#scan-form'));
      return;
    }
    const code = raw.toUpperCase();
    if (HOUSEHOLD_CODE.test(code)) {
      loadHousehold(code).then((ok) => {
        if (ok) $('#scan').value = '';
      });
    } else {
      // Anything else is a voucher code: check it.
      showProblem($('#scan-problem'), null, $('#scan-form'));
      $('#voucher-code').value = raw;
      $('#scan').value = '';
      selectTab('voucher');
      checkVoucher();
    }
  }

  let wired = false;
  function wire() {
    if (wired) return;
    wired = true;
    renderTenders();
    quickAmounts();
    $('#scan-form').addEventListener('submit', onScan);
    $('#hh-clear').addEventListener('click', () => {
      state.household = null;
      renderHousehold();
      quoteSoon();
      $('#scan').focus();
    });
    for (const b of document.querySelectorAll('.tabs [data-tab]')) {
      b.addEventListener('click', () => selectTab(b.dataset.tab));
    }
    const topup = $('#topup-form');
    topup.addEventListener('submit', submitTopup);
    for (const input of [$('#topup-paid'), $('#topup-method'), $('#topup-deliver')]) {
      input.addEventListener('input', quoteSoon);
      input.addEventListener('change', quoteSoon);
    }
    $('#sale-form').addEventListener('submit', submitSale);
    $('#sale-amount').addEventListener('input', updateRemaining);
    $('#line-add').addEventListener('click', addLine);
    $('#line-qty').addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        e.preventDefault();
        addLine();
      }
    });
    $('#sale-voucher-code').addEventListener('input', updateRemaining);
    $('#refund-form').addEventListener('submit', submitRefund);
    $('#voucher-form').addEventListener('submit', checkVoucher);
    $('#receipt-print').addEventListener('click', () => window.print());
    $('#receipt-refund').addEventListener('click', () => {
      if (state.receipt && state.receipt.kind === 'sale') {
        $('#refund-sale').value = String(state.receipt.data.sale);
        $('#refund-amount').value = '';
        selectTab('refund');
        $('#refund-amount').focus();
      }
    });
    document.addEventListener('hx:lang', () => {
      renderHousehold();
      renderLines();
      renderReceipt();
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
        loadCatalog();
        renderHousehold();
        updateRemaining();
        $('#scan').focus();
      },
    });
  });
})();
