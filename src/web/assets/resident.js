// The resident's page (居民): a household's shopping credit, vouchers, property fees and recent
// history on a phone, without an account. The household card's signed link (/r/{household}?v=…&s=…)
// signs in once and is dropped from the address bar and history at once; household code + PIN
// is the other way in. Everything shown comes from the /v1 API of the session's own household.
'use strict';

(function () {
  const { el, $, show, t, yuan, fen, amount } = HX;

  HX.strings({
    'zh-CN': {
      'resident.page_title': '红心 · 居民',
      'resident.sign_in.title': '查看我家的账户',
      'resident.sign_in.hint': '用手机扫描住户卡上的二维码即可查看；也可以输入住户编号和密码。',
      'resident.household': '住户编号',
      'resident.household.example': '例如 HX01-0001',
      'resident.pin': '密码',
      'resident.sign_in.submit': '查看',
      'resident.loading': '正在加载…',
      'resident.refresh': '刷新',
      'resident.as_of': '截至 {date}',
      'resident.title': '住户 {household}',
      'resident.wallet': '购物余额',
      'resident.wallet.paid': '本金（已付）',
      'resident.wallet.bonus': '赠送',
      'resident.vouchers': '购物券',
      'resident.vouchers.empty': '没有购物券',
      'resident.voucher.balance': '余额',
      'resident.voucher.expires': '有效期至 {date}',
      'resident.voucher.show': '显示券码',
      'resident.voucher.hide': '隐藏券码',
      'resident.voucher.status.active': '可用',
      'resident.voucher.status.void': '已作废',
      'resident.voucher.status.expired': '已过期',
      'resident.fees': '物业费',
      'resident.fees.arrears': '欠费',
      'resident.fees.prepaid': '预交余额',
      'resident.fees.status.owing': '欠费 {amount}',
      'resident.fees.status.prepaid': '已预交',
      'resident.fees.status.clear': '已结清',
      'resident.fees.months': '最近账单',
      'resident.fees.months.empty': '最近没有物业费账单',
      'resident.col.month': '月份',
      'resident.col.billed': '应缴',
      'resident.col.paid': '已缴',
      'resident.col.covered': '合作社抵扣',
      'resident.col.outstanding': '未缴',
      'resident.covered': '合作社利润为您抵扣的物业费',
      'resident.covered.empty': '暂无抵扣',
      'resident.covered.month': '{month}利润',
      'resident.covered.total': '累计抵扣',
      'resident.history': '最近记录',
      'resident.history.empty': '还没有记录',
      'resident.history.more': '更早的记录',
      'resident.month': '{year}年{month}月',
      'resident.group.wallet': '余额',
      'resident.group.voucher': '购物券',
      'resident.group.fees': '物业费欠款',
      'resident.kind.top_up': '充值',
      'resident.kind.sale': '购物',
      'resident.kind.sale_refund': '退货退款',
      'resident.kind.credit_refund': '余额退还',
      'resident.kind.voucher_void': '购物券作废',
      'resident.kind.voucher_expiry': '购物券过期',
      'resident.kind.reversal': '更正',
      'resident.kind.fee_bill': '物业费账单',
      'resident.kind.fee_payment': '缴物业费',
      'resident.kind.profit_allocation': '合作社利润抵扣物业费',
      'problem.resident_link_failed': '这个链接已失效（住户卡可能已更换）。请用住户编号和密码登录，或向物业索取新卡。',
      'problem.resident_household_empty': '请输入住户编号',
      'problem.resident_pin_empty': '请输入密码',
      'problem.resident_pin_failed': '住户编号或密码不对，请再试一次。忘记密码请到物业办公室重设。',
      'resident.group.fees_owed': '新增欠费',
      'resident.group.fees_less': '欠费减少',
      'resident.card': '我的住户卡',
      'resident.card.hint': '在合作社门店付款时，把这个二维码给收银员扫。',
      'resident.card.show': '出示住户卡二维码',
      'resident.card.hide': '收起二维码',
      'resident.voucher.qr': '出示券二维码',
      'resident.voucher.qr_hide': '收起二维码',
    },
    en: {
      'resident.page_title': 'Hongxin · Resident',
      'resident.sign_in.title': 'Your household account',
      'resident.sign_in.hint': 'Scan the QR code on your household card with your phone, or enter the household code and PIN.',
      'resident.household': 'Household code',
      'resident.household.example': 'e.g. HX01-0001',
      'resident.pin': 'PIN',
      'resident.sign_in.submit': 'Show',
      'resident.loading': 'Loading…',
      'resident.refresh': 'Refresh',
      'resident.as_of': 'As of {date}',
      'resident.title': 'Household {household}',
      'resident.wallet': 'Shopping credit',
      'resident.wallet.paid': 'Paid',
      'resident.wallet.bonus': 'Bonus',
      'resident.vouchers': 'Vouchers',
      'resident.vouchers.empty': 'No vouchers',
      'resident.voucher.balance': 'Balance',
      'resident.voucher.expires': 'Valid until {date}',
      'resident.voucher.show': 'Show code',
      'resident.voucher.hide': 'Hide code',
      'resident.voucher.status.active': 'Active',
      'resident.voucher.status.void': 'Void',
      'resident.voucher.status.expired': 'Expired',
      'resident.fees': 'Property fees',
      'resident.fees.arrears': 'Arrears',
      'resident.fees.prepaid': 'Paid ahead',
      'resident.fees.status.owing': 'Owing {amount}',
      'resident.fees.status.prepaid': 'Paid ahead',
      'resident.fees.status.clear': 'All paid',
      'resident.fees.months': 'Recent bills',
      'resident.fees.months.empty': 'No recent property-fee bills',
      'resident.col.month': 'Month',
      'resident.col.billed': 'Billed',
      'resident.col.paid': 'Paid',
      'resident.col.covered': 'Co-op covered',
      'resident.col.outstanding': 'Unpaid',
      'resident.covered': 'What the cooperative’s profit paid toward your fees',
      'resident.covered.empty': 'Nothing yet',
      'resident.covered.month': 'Profit of {month}',
      'resident.covered.total': 'Total covered',
      'resident.history': 'Recent history',
      'resident.history.empty': 'Nothing yet',
      'resident.history.more': 'Older',
      'resident.month': '{mon} {year}',
      'resident.group.wallet': 'Credit',
      'resident.group.voucher': 'Voucher',
      'resident.group.fees': 'Fees owed',
      'resident.kind.top_up': 'Top-up',
      'resident.kind.sale': 'Purchase',
      'resident.kind.sale_refund': 'Refund',
      'resident.kind.credit_refund': 'Credit paid back',
      'resident.kind.voucher_void': 'Voucher voided',
      'resident.kind.voucher_expiry': 'Voucher expired',
      'resident.kind.reversal': 'Correction',
      'resident.kind.fee_bill': 'Property-fee bill',
      'resident.kind.fee_payment': 'Fee payment',
      'resident.kind.profit_allocation': 'Cooperative profit toward fees',
      'problem.resident_link_failed': 'This link no longer works (the card may have been replaced). Sign in with the household code and PIN, or ask the property office for a new card.',
      'problem.resident_household_empty': 'Enter the household code',
      'problem.resident_pin_empty': 'Enter the PIN',
      'problem.resident_pin_failed': 'The household code or PIN is not right; try again. Forgot the PIN? The property office can set a new one.',
      'resident.group.fees_owed': 'Fees now owed',
      'resident.group.fees_less': 'Fees owed less',
      'resident.card': 'My household card',
      'resident.card.hint': 'When paying at a cooperative shop, let the cashier scan this QR code.',
      'resident.card.show': 'Show the card’s QR code',
      'resident.card.hide': 'Hide the QR code',
      'resident.voucher.qr': 'Show the voucher’s QR code',
      'resident.voucher.qr_hide': 'Hide the QR code',
    },
  });

  const MONTHS_EN = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const HISTORY_PAGE = 20;

  const signInBox = $('#resident-sign-in');
  const notice = $('#resident-notice');
  const form = $('#resident-pin-form');
  const formProblem = form.querySelector('.problem');
  const loading = $('#resident-loading');
  const main = $('#resident-main');
  const pageProblem = $('#res-problem');
  const who = $('#who');
  const out = $('#sign-out');

  // What the page shows, kept to draw again in the other language.
  let view = null; // {household, fees, history: [], nextBefore}
  let session = null;
  let expiryTimer = null;
  let loadSeq = 0;

  // ---- formatting ---------------------------------------------------------------------

  function monthLabel(ym) {
    const [year, month] = String(ym).split('-');
    return t('resident.month', { year, month: String(Number(month)), mon: MONTHS_EN[Number(month) - 1] || month });
  }

  // '55.00' → '+¥55.00', '-4.70' → '-¥4.70', zero → '¥0.00'
  function signed(text) {
    const f = fen(text);
    return f !== null && f > 0n ? `+${yuan(text)}` : yuan(text);
  }

  // The printed code, all but its last group hidden: '•••• SN20B'.
  function maskCode(code) {
    if (!code) return '—';
    return `•••• ${String(code).split('-').pop()}`;
  }

  // ---- session --------------------------------------------------------------------------

  function clearView() {
    view = null;
    $('#card-qr').replaceChildren();
    show($('#card-qr'), false);
    for (const sel of ['#vouchers', '#fee-months tbody', '#covered', '#history']) $(sel).replaceChildren();
    for (const sel of ['#wallet-total', '#wallet-paid', '#wallet-bonus', '#fees-arrears', '#fees-prepaid',
      '#fees-status', '#covered-total', '#res-household', '#res-compound', '#res-as-of']) {
      $(sel).textContent = '';
    }
  }

  function leave(problem) {
    session = null;
    if (expiryTimer) clearTimeout(expiryTimer);
    expiryTimer = null;
    loadSeq += 1;
    clearView();
    show(main, false);
    show(loading, false);
    show(out, false);
    if (who) who.textContent = '';
    show(signInBox, true);
    HX.showProblem(notice, problem || null);
  }

  function watchExpiry(s) {
    if (expiryTimer) clearTimeout(expiryTimer);
    expiryTimer = null;
    if (!s.expires_at) return;
    const ms = Date.parse(s.expires_at) - Date.now();
    // Ask the server when the session should have ended; it decides.
    expiryTimer = setTimeout(checkSession, Math.max(0, Math.min(ms + 500, 2 ** 31 - 1)));
  }

  async function checkSession() {
    if (!session) return;
    const s = await HX.session();
    if (!s || s.role !== 'resident' || s.household !== session.household) leave({ code: 'session_expired' });
    else watchExpiry(s);
  }

  function enter(s) {
    session = s;
    show(signInBox, false);
    HX.showProblem(notice, null);
    show(out, true);
    if (who) who.textContent = `${t('role.resident')} ${s.household}`;
    watchExpiry(s);
    load();
  }

  // ---- loading --------------------------------------------------------------------------

  async function load() {
    if (!session) return;
    const seq = ++loadSeq;
    const h = encodeURIComponent(session.household);
    const refresh = $('#res-refresh');
    refresh.disabled = true;
    if (!view) {
      show(main, false);
      show(loading, true);
    }
    const [household, fees, history] = await Promise.all([
      HX.api('GET', `/v1/households/${h}`),
      HX.api('GET', `/v1/households/${h}/fees`),
      HX.api('GET', `/v1/households/${h}/history?limit=${HISTORY_PAGE}`),
    ]);
    if (seq !== loadSeq) return; // signed out or reloaded meanwhile
    refresh.disabled = false;
    show(loading, false);
    const failed = [household, fees, history].find((r) => !r.ok);
    if (failed) {
      if (failed.status === 401) return; // the sign-in form is back already
      show(main, Boolean(view));
      if (!view) {
        show(signInBox, true);
        HX.showProblem(notice, failed.problem);
      } else {
        HX.showProblem(pageProblem, failed.problem);
      }
      return;
    }
    HX.showProblem(pageProblem, null);
    view = {
      household: household.data,
      fees: fees.data,
      history: history.data.items,
      nextBefore: history.data.next_before,
    };
    render();
    show(main, true);
  }

  async function more() {
    if (!session || !view || view.nextBefore === null) return;
    const button = $('#history-more');
    button.disabled = true;
    const h = encodeURIComponent(session.household);
    const r = await HX.api('GET', `/v1/households/${h}/history?limit=${HISTORY_PAGE}&before=${view.nextBefore}`);
    button.disabled = false;
    if (!r.ok) {
      if (r.status !== 401) HX.showProblem(pageProblem, r.problem);
      return;
    }
    view.history = view.history.concat(r.data.items);
    view.nextBefore = r.data.next_before;
    renderHistory();
  }

  // ---- drawing --------------------------------------------------------------------------

  function render() {
    if (!view) return;
    const hh = view.household;
    $('#res-household').textContent = t('resident.title', { household: hh.household });
    $('#res-compound').textContent = [hh.compound_name, hh.company_name].filter(Boolean).join(' · ');
    $('#res-as-of').textContent = t('resident.as_of', { date: view.fees.as_of });
    $('#wallet-total').textContent = yuan(hh.wallet.total);
    $('#wallet-paid').textContent = yuan(hh.wallet.paid);
    $('#wallet-bonus').textContent = yuan(hh.wallet.bonus);
    renderVouchers();
    renderFees();
    renderHistory();
    renderCard();
  }

  // The household card's QR code (its signed link), shown on the phone for the till to scan.
  function renderCard() {
    const box = $('#card-qr');
    const open = !box.hidden;
    $('#card-toggle').textContent = t(open ? 'resident.card.hide' : 'resident.card.show');
  }

  function toggleCard() {
    if (!session) return;
    const box = $('#card-qr');
    if (box.hidden && !box.firstChild) {
      const h = encodeURIComponent(session.household);
      box.append(el('img', { id: 'card-qr-img', src: `/v1/households/${h}/link/qr.svg`, alt: session.household }));
    }
    show(box, box.hidden);
    renderCard();
  }

  function renderVouchers() {
    const list = $('#vouchers');
    const vouchers = view.household.vouchers || [];
    list.replaceChildren(...vouchers.map((v) => {
      const code = el('span', { class: 'voucher-code' }, maskCode(v.code));
      const reveal = v.code ? el('button', {
        type: 'button',
        class: 'link voucher-reveal',
        onclick: () => {
          const hidden = code.textContent === maskCode(v.code);
          code.textContent = hidden ? v.code : maskCode(v.code);
          reveal.textContent = t(hidden ? 'resident.voucher.hide' : 'resident.voucher.show');
        },
      }, t('resident.voucher.show')) : null;
      const statusClass = v.status === 'active' ? 'pill ok' : 'pill';
      // An active voucher's QR code, for the till's scanner.
      const qr = el('div', { class: 'qr res-qr voucher-qr', hidden: true });
      const qrButton = v.code && v.status === 'active' ? el('button', {
        type: 'button',
        class: 'link voucher-qr-show',
        onclick: () => {
          const hidden = qr.hidden;
          if (hidden && !qr.firstChild) {
            qr.append(el('img', { src: `/v1/vouchers/${encodeURIComponent(v.code)}/qr.svg`, alt: v.code }));
          }
          show(qr, hidden);
          qrButton.textContent = t(hidden ? 'resident.voucher.qr_hide' : 'resident.voucher.qr');
        },
      }, t('resident.voucher.qr')) : null;
      return el('li', { class: `voucher${v.status === 'active' ? '' : ' res-dim'}`, dataset: { status: v.status } },
        el('div', { class: 'res-line' },
          el('span', { class: 'res-code-wrap' }, code, ' ', reveal),
          el('strong', { class: 'voucher-balance num' }, yuan(v.balance))),
        el('div', { class: 'res-line muted' },
          el('span', { class: 'voucher-expires' }, t('resident.voucher.expires', { date: v.expires_on })),
          el('span', { class: `voucher-status ${statusClass}` }, t(`resident.voucher.status.${v.status}`))),
        qrButton, qr);
    }));
    show($('#vouchers-empty'), vouchers.length === 0);
  }

  function renderFees() {
    const f = view.fees;
    $('#fees-arrears').textContent = yuan(f.arrears);
    $('#fees-prepaid').textContent = yuan(f.prepaid);
    const status = $('#fees-status');
    const owing = fen(f.arrears) > 0n;
    const ahead = fen(f.prepaid) > 0n;
    status.className = `pill ${owing ? 'warn' : 'ok'}`;
    status.dataset.state = owing ? 'owing' : ahead ? 'prepaid' : 'clear';
    status.textContent = owing ? t('resident.fees.status.owing', { amount: yuan(f.arrears) })
      : t(ahead ? 'resident.fees.status.prepaid' : 'resident.fees.status.clear');
    $('#fees-arrears').classList.toggle('res-owing', owing);

    const rows = f.months.map((m) => el('tr', { dataset: { month: m.month } },
      el('td', { class: 'month' }, monthLabel(m.month)),
      el('td', { class: 'num billed' }, yuan(m.billed)),
      el('td', { class: 'num paid' }, yuan(m.paid)),
      el('td', { class: 'num covered' }, yuan(m.covered)),
      el('td', { class: `num outstanding${fen(m.outstanding) > 0n ? ' res-owing' : ''}` }, yuan(m.outstanding))));
    $('#fee-months tbody').replaceChildren(...rows);
    show($('#fee-months'), rows.length > 0);
    show($('#fee-months-empty'), rows.length === 0);

    const covered = f.covered.map((c) => el('li', { class: 'cover', dataset: { month: c.month, cooperative: c.cooperative } },
      el('div', { class: 'res-line' },
        el('span', { class: 'cover-month' }, t('resident.covered.month', { month: monthLabel(c.month) }),
          el('span', { class: 'muted' }, ` · ${c.cooperative}`)),
        el('strong', { class: 'cover-amount num' }, yuan(c.amount)))));
    $('#covered').replaceChildren(...covered);
    show($('#covered-empty'), covered.length === 0);
    $('#covered-total').textContent = yuan(f.covered_total);
    show($('#covered-total-row'), covered.length > 0);
  }

  // A history entry's changes, summed by what they touch: the wallet, a voucher, the fees owed.
  function groups(changes) {
    const sums = new Map();
    for (const c of changes) {
      const g = c.account === 'fees' ? 'fees' : c.account.startsWith('wallet:') ? 'wallet' : 'voucher';
      sums.set(g, (sums.get(g) || 0n) + (fen(c.amount) || 0n));
    }
    return ['wallet', 'voucher', 'fees'].filter((g) => sums.has(g)).map((g) => [g, amount(sums.get(g))]);
  }

  // One line of an entry's changes in words: credit up or down for the wallet and a voucher;
  // for the fees, a bill is money owed and a payment or the cooperative's cover owes less.
  function change(group, a) {
    const f = fen(a);
    if (group === 'fees') {
      const owed = f > 0n;
      return el('span', { class: `hist-change ${owed ? 'res-owe' : 'res-pos'}`, dataset: { group, amount: a } },
        el('span', { class: 'muted' }, t(owed ? 'resident.group.fees_owed' : 'resident.group.fees_less')), ' ',
        el('strong', { class: 'num' }, yuan(amount(owed ? f : -f))));
    }
    return el('span', { class: `hist-change ${f < 0n ? 'res-neg' : 'res-pos'}`, dataset: { group, amount: a } },
      el('span', { class: 'muted' }, t(`resident.group.${group}`)), ' ', el('strong', { class: 'num' }, signed(a)));
  }

  function renderHistory() {
    const items = view.history.map((i) => el('li', { class: 'history-item', dataset: { entry: String(i.entry), kind: i.kind } },
      el('div', { class: 'res-line' },
        el('span', { class: 'hist-kind' }, t(`resident.kind.${i.kind}`)),
        el('span', { class: 'hist-date muted' }, i.business_date)),
      el('div', { class: 'res-changes' }, groups(i.changes).map(([g, a]) => change(g, a)))));
    $('#history').replaceChildren(...items);
    show($('#history-empty'), items.length === 0);
    show($('#history-more'), view.nextBefore !== null && view.nextBefore !== undefined);
  }

  // ---- the ways in ----------------------------------------------------------------------

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const household = form.elements.household.value.trim().toUpperCase();
    const pin = form.elements.pin.value.trim();
    if (!household) return HX.showProblem(formProblem, { code: 'resident_household_empty', field: 'household' }, form);
    if (!pin) return HX.showProblem(formProblem, { code: 'resident_pin_empty', field: 'pin' }, form);
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    const r = await HX.signIn({ household, pin });
    button.disabled = false;
    if (!r.ok) {
      const refused = r.problem && r.problem.code === 'sign_in_failed';
      HX.showProblem(formProblem, refused ? { code: 'resident_pin_failed' } : r.problem, form);
      // A refusal names no field (it must not tell which part was wrong): mark the PIN, the
      // likelier mistake, and clear it for the next try.
      if (r.problem && r.problem.code === 'sign_in_failed') form.elements.pin.classList.add('invalid');
      form.elements.pin.value = '';
      return;
    }
    if (r.data.role !== 'resident') {
      await HX.signOut();
      HX.showProblem(formProblem, { code: 'wrong_role' }, form);
      return;
    }
    HX.showProblem(formProblem, null, form);
    form.reset();
    enter(r.data);
  });

  $('#res-refresh').addEventListener('click', () => load());
  $('#card-toggle').addEventListener('click', toggleCard);
  $('#history-more').addEventListener('click', () => more());
  if (out) {
    out.addEventListener('click', async () => {
      await HX.signOut();
      leave(null);
    });
  }
  document.addEventListener('hx:signed-out', () => {
    if (session) leave({ code: 'session_expired' });
  });
  document.addEventListener('hx:lang', () => {
    render();
    if (session && who) who.textContent = `${t('role.resident')} ${session.household}`;
  });
  // A phone wakes up long after the session ended: check at once rather than show stale money.
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && session && session.expires_at &&
        Date.parse(session.expires_at) <= Date.now()) {
      checkSession();
    }
  });

  async function start() {
    show(loading, true);
    const link = /^\/r\/([^/]+)\/?$/.exec(location.pathname);
    if (link) {
      const params = new URLSearchParams(location.search);
      const household = decodeURIComponent(link[1]);
      const version = Number(params.get('v'));
      const signature = params.get('s') || '';
      // The link is a secret: out of the address bar and the history before anything else.
      const lang = params.get('lang');
      history.replaceState(null, '', '/resident' + (lang ? `?lang=${encodeURIComponent(lang)}` : ''));
      const r = await HX.signIn({ household, version, signature });
      show(loading, false);
      if (r.ok && r.data.role === 'resident') return enter(r.data);
      const problem = r.ok ? { code: 'wrong_role' }
        : r.problem && r.problem.code === 'sign_in_failed' ? { code: 'resident_link_failed' }
          : r.problem;
      return leave(problem);
    }
    const s = await HX.session();
    show(loading, false);
    if (s && s.role === 'resident') enter(s);
    else leave(null);
  }

  start();
})();
