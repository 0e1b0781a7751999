// hongxin 红心 — the office's household desk (/office, #desk): find a household, record a
// resident's property-fee payment (an HX.Attempt: a double click or a retry records it once),
// set or reset the resident's PIN, and show and print the household card with its QR code (the
// signed link), or issue a new card that makes the old one stop working; and a move-out (change
// of occupant, the wallets handed on to the new one) behind a confirm step showing the figures.
'use strict';

(function () {
  const { el, $, show, t, fen, amount, yuan } = HX;

  HX.strings({
    'zh-CN': {
      'desk.title': '住户服务台',
      'desk.household': '住户编号',
      'desk.household_placeholder': '例如 HX01-0001',
      'desk.find': '查找',
      'desk.f.household': '住户',
      'desk.f.name': '住户姓名',
      'desk.f.compound': '小区',
      'desk.f.area': '面积',
      'desk.f.area_value': '{area} 平方米',
      'desk.f.fees': '物业费',
      'desk.f.owes': '欠费 {amount}',
      'desk.f.ahead': '预交 {amount}',
      'desk.f.clear': '已结清',
      'desk.pay.title': '记录物业费缴费',
      'desk.pay.amount': '缴费金额',
      'desk.pay.amount_placeholder': '输入金额',
      'desk.pay.method': '付款方式',
      'desk.pay.reference': '收据号或转账凭证',
      'desk.pay.reference_placeholder': '纸质收据上的编号',
      'desk.pay.submit': '确认收款',
      'desk.pay.done': '已记录',
      'desk.pay.replayed': '（此前已记录，未重复记入）',
      'desk.pay.entry': '凭证号',
      'desk.pay.receipt': '收据号',
      'desk.pay.paid': '缴费',
      'desk.pay.bill': '{month} 账单',
      'desk.pay.prepaid': '预交',
      'desk.pay.balance': '缴费后',
      'desk.m.cash': '现金',
      'desk.m.wechat': '微信',
      'desk.m.alipay': '支付宝',
      'desk.m.bank': '银行转账',
      'desk.pin.title': '设置或重设居民密码',
      'desk.pin.new': '新密码（4–8 位数字）',
      'desk.pin.again': '再输一次',
      'desk.pin.submit': '保存密码',
      'desk.pin.done': '密码已设置。请告诉住户新密码。',
      'desk.card.title': '住户卡',
      'desk.card.hint': '住户用手机扫这个二维码即可查看账户；在合作社门店付款时给收银员扫。',
      'desk.card.issue': '显示并打印住户卡',
      'desk.card.rotate': '补发新卡（旧卡作废）',
      'desk.card.rotate_confirm': '补发新卡后，{household} 的旧卡将不能再用。确定吗？',
      'desk.card.print': '打印',
      'desk.card.version': '第 {version} 版住户卡',
      'problem.desk_household_empty': '请输入住户编号',
      'problem.desk_reference_empty': '请填写收据号或转账凭证',
      'problem.desk_pin_format': '密码须为 4 到 8 位数字',
      'problem.desk_pin_mismatch': '两次输入的密码不一样',
      'desk.move.title': '住户迁出（换住户）',
      'desk.move.hint': '旧住户的购物余额转给新住户（双方同意）；如需退现，请合作社会计办理。旧住户卡和密码将作废。',
      'desk.move.new_occupant': '新住户姓名',
      'desk.move.carry': '欠费留在本户，由物业公司继续追缴',
      'desk.move.review': '办理迁出…',
      'desk.move.check': '请核对后确认',
      'desk.move.confirm': '确认迁出',
      'desk.move.cancel': '取消',
      'desk.move.done': '已办理迁出',
      'desk.move.household': '住户',
      'desk.move.leaving': '迁出住户',
      'desk.move.arriving': '新住户',
      'desk.move.nobody': '（未填写）',
      'desk.move.wallet': '{cooperative} 余额转给新住户',
      'desk.move.wallet_value': '已付 {paid}，赠送 {bonus}',
      'desk.move.no_wallet': '购物余额',
      'desk.move.no_wallet_value': '无',
      'desk.move.refunded': '退还现金',
      'desk.move.forfeited': '赠送部分作废',
      'desk.move.arrears': '欠费',
      'desk.move.arrears_carried': '{amount}（留在本户继续追缴）',
      'desk.move.card': '住户卡',
      'desk.move.card_value': '旧卡和密码作废，须发新卡',
      'desk.move.card_done': '已换第 {version} 版住户卡，密码已清除',
      'desk.move.entry': '凭证号',
    },
    en: {
      'desk.title': 'Household desk',
      'desk.household': 'Household code',
      'desk.household_placeholder': 'e.g. HX01-0001',
      'desk.find': 'Find',
      'desk.f.household': 'Household',
      'desk.f.name': 'Occupant',
      'desk.f.compound': 'Compound',
      'desk.f.area': 'Area',
      'desk.f.area_value': '{area} m²',
      'desk.f.fees': 'Property fees',
      'desk.f.owes': 'Owes {amount}',
      'desk.f.ahead': 'Paid ahead {amount}',
      'desk.f.clear': 'All paid',
      'desk.pay.title': 'Record a fee payment',
      'desk.pay.amount': 'Amount paid',
      'desk.pay.amount_placeholder': 'Amount',
      'desk.pay.method': 'Paid by',
      'desk.pay.reference': 'Receipt or transfer reference',
      'desk.pay.reference_placeholder': 'Number on the paper receipt',
      'desk.pay.submit': 'Record payment',
      'desk.pay.done': 'Recorded',
      'desk.pay.replayed': '(recorded before; not recorded twice)',
      'desk.pay.entry': 'Entry',
      'desk.pay.receipt': 'Receipt No.',
      'desk.pay.paid': 'Paid',
      'desk.pay.bill': 'Bill of {month}',
      'desk.pay.prepaid': 'Paid ahead',
      'desk.pay.balance': 'Afterwards',
      'desk.m.cash': 'Cash',
      'desk.m.wechat': 'WeChat',
      'desk.m.alipay': 'Alipay',
      'desk.m.bank': 'Bank transfer',
      'desk.pin.title': 'Set or reset the resident’s PIN',
      'desk.pin.new': 'New PIN (4–8 digits)',
      'desk.pin.again': 'Again',
      'desk.pin.submit': 'Save PIN',
      'desk.pin.done': 'The PIN is set. Tell the resident the new PIN.',
      'desk.card.title': 'Household card',
      'desk.card.hint': 'The resident scans this QR code to see the account, and shows it at the cooperative’s till.',
      'desk.card.issue': 'Show and print the card',
      'desk.card.rotate': 'Issue a new card (the old one stops working)',
      'desk.card.rotate_confirm': 'After a new card, the old card of {household} stops working. Go ahead?',
      'desk.card.print': 'Print',
      'desk.card.version': 'Card version {version}',
      'problem.desk_household_empty': 'Enter a household code',
      'problem.desk_reference_empty': 'Enter the receipt or transfer reference',
      'problem.desk_pin_format': 'A PIN is 4 to 8 digits',
      'problem.desk_pin_mismatch': 'The two PINs differ',
      'desk.move.title': 'Move-out (change of occupant)',
      'desk.move.hint': 'The leaving occupant’s shopping credit goes to the new occupant (both agree); for a cash refund, the cooperative’s accountant does the move-out. The old card and PIN stop working.',
      'desk.move.new_occupant': 'New occupant’s name',
      'desk.move.carry': 'Arrears stay on the household for the company to pursue',
      'desk.move.review': 'Move out…',
      'desk.move.check': 'Check, then confirm',
      'desk.move.confirm': 'Confirm move-out',
      'desk.move.cancel': 'Cancel',
      'desk.move.done': 'Moved out',
      'desk.move.household': 'Household',
      'desk.move.leaving': 'Leaving',
      'desk.move.arriving': 'Moving in',
      'desk.move.nobody': '(not given)',
      'desk.move.wallet': 'Credit at {cooperative} handed on',
      'desk.move.wallet_value': 'paid {paid}, bonus {bonus}',
      'desk.move.no_wallet': 'Shopping credit',
      'desk.move.no_wallet_value': 'none',
      'desk.move.refunded': 'Paid back',
      'desk.move.forfeited': 'Bonus forfeited',
      'desk.move.arrears': 'Arrears',
      'desk.move.arrears_carried': '{amount} (stays on the household)',
      'desk.move.card': 'Household card',
      'desk.move.card_value': 'The old card and PIN stop working; issue a new card',
      'desk.move.card_done': 'Card version {version}; PIN cleared',
      'desk.move.entry': 'Entry',
    },
  });

  const state = { household: null, payment: null, card: null, move: null, moved: null };
  const attempt = new HX.Attempt();
  // One attempt per confirm step: a move-out refused for arrears and retried after they are
  // paid is a new request, not the remembered refusal.
  let moveAttempt = new HX.Attempt();

  function explainBalance(balance) {
    const f = fen(balance);
    if (f > 0n) return t('desk.f.owes', { amount: yuan(balance) });
    if (f < 0n) return t('desk.f.ahead', { amount: yuan(amount(-f)) });
    return t('desk.f.clear');
  }

  function renderFacts() {
    const h = state.household;
    show($('#desk-body'), Boolean(h));
    if (!h) return;
    const row = (id, label, value) => [el('dt', {}, t(label)), el('dd', { id: 'desk-' + id }, value)];
    $('#desk-facts').replaceChildren(...[
      row('code', 'desk.f.household', h.household),
      h.name ? row('name', 'desk.f.name', h.name) : [],
      row('compound', 'desk.f.compound', h.compound_name ? `${h.compound_name}（${h.compound}）` : h.compound),
      row('area', 'desk.f.area', t('desk.f.area_value', { area: h.area_m2 })),
      row('fees', 'desk.f.fees', explainBalance(h.fees.balance)),
    ].flat());
  }

  function renderPayment() {
    const p = state.payment;
    show($('#pay-receipt'), Boolean(p));
    if (!p) return;
    const d = p.data;
    const row = (id, label, value) => [el('dt', {}, label), el('dd', { id: 'pay-' + id }, value)];
    $('#pay-receipt strong').textContent = t('desk.pay.done') + (p.replayed ? ' ' + t('desk.pay.replayed') : '');
    $('#pay-lines').replaceChildren(...[
      // The company's numbered receipt (收据), one sequence over the office and the tills.
      d.receipt ? row('receipt-no', t('desk.pay.receipt'), 'No. ' + String(d.receipt).padStart(6, '0')) : [],
      row('entry', t('desk.pay.entry'), String(d.entry)),
      row('paid', t('desk.pay.paid'), yuan(d.amount)),
      ...d.applied.map((a) => row('bill-' + a.month, t('desk.pay.bill', { month: a.month }), yuan(a.amount))),
      fen(d.prepaid) > 0n ? row('prepaid', t('desk.pay.prepaid'), yuan(d.prepaid)) : [],
      row('balance', t('desk.pay.balance'), explainBalance(d.balance)),
    ].flat());
  }

  function renderCard() {
    const c = state.card;
    show($('#card-print'), Boolean(c));
    if (!c) return;
    const h = state.household;
    $('#card-name').textContent = [c.household, h && h.name, h && (h.compound_name || h.compound)].filter(Boolean).join(' · ');
    $('#card-version').textContent = t('desk.card.version', { version: c.version });
  }

  // The move-out's confirm step: the figures as they stand, before anything is done.
  function renderMove() {
    const m = state.move;
    const h = state.household;
    show($('#move-confirm'), Boolean(m && h));
    if (m && h) {
      const row = (id, label, value) => [el('dt', {}, label), el('dd', { id: 'move-' + id }, value)];
      const wallets = h.wallets.filter((w) => fen(w.total) !== 0n);
      $('#move-figures').replaceChildren(...[
        row('f-household', t('desk.move.household'), h.household),
        row('f-leaving', t('desk.move.leaving'), h.name || t('desk.move.nobody')),
        row('f-arriving', t('desk.move.arriving'), m.body.new_occupant || t('desk.move.nobody')),
        wallets.length === 0
          ? row('f-wallet', t('desk.move.no_wallet'), t('desk.move.no_wallet_value'))
          : wallets.map((w) => row('f-wallet-' + w.cooperative, t('desk.move.wallet', { cooperative: w.cooperative }),
            t('desk.move.wallet_value', { paid: yuan(w.paid), bonus: yuan(w.bonus) }))).flat(),
        row('f-arrears', t('desk.move.arrears'), fen(h.fees.arrears) > 0n
          ? t('desk.move.arrears_carried', { amount: yuan(h.fees.arrears) }) : t('desk.f.clear')),
        row('f-card', t('desk.move.card'), t('desk.move.card_value')),
      ].flat());
    }
    const d = state.moved;
    show($('#move-receipt'), Boolean(d));
    if (!d) return;
    const row = (id, label, value) => [el('dt', {}, label), el('dd', { id: 'moved-' + id }, value)];
    $('#move-lines').replaceChildren(...[
      row('entry', t('desk.move.entry'), String(d.entry)),
      row('arriving', t('desk.move.arriving'), d.occupant || t('desk.move.nobody')),
      d.wallets.map((w) => row('wallet-' + w.cooperative, t('desk.move.wallet', { cooperative: w.cooperative }),
        t('desk.move.wallet_value', { paid: yuan(w.paid), bonus: yuan(w.bonus) }))).flat(),
      fen(d.refunded) > 0n ? row('refunded', t('desk.move.refunded'), yuan(d.refunded)) : [],
      fen(d.forfeited) > 0n ? row('forfeited', t('desk.move.forfeited'), yuan(d.forfeited)) : [],
      row('arrears', t('desk.move.arrears'), fen(d.arrears) > 0n
        ? t('desk.move.arrears_carried', { amount: yuan(d.arrears) }) : t('desk.f.clear')),
      row('card', t('desk.move.card'), t('desk.move.card_done', { version: d.link_version })),
    ].flat());
  }

  function reviewMove(ev) {
    ev.preventDefault();
    const h = state.household;
    if (!h) return;
    const form = $('#desk-move');
    const box = $('#move-problem');
    const carry = $('#move-carry').checked;
    if (fen(h.fees.arrears) > 0n && !carry) {
      HX.showProblem(box, { code: 'arrears_outstanding', field: 'fees' }, form);
      return;
    }
    HX.showProblem(box, null, form);
    const name = $('#move-occupant').value.trim();
    const body = { wallet: 'transfer', fees: carry ? 'carry' : 'settled' };
    if (name) body.new_occupant = name;
    state.move = { body };
    state.moved = null;
    moveAttempt = new HX.Attempt();
    renderMove();
  }

  async function confirmMove() {
    const h = state.household;
    if (!state.move || !h || moveAttempt.busy) return;
    const button = $('#move-go');
    button.disabled = true;
    const r = await moveAttempt.post(`/v1/households/${encodeURIComponent(h.household)}/move-out`, state.move.body);
    button.disabled = false;
    if (!r.ok) {
      HX.showProblem($('#move-problem'), r.problem, $('#desk-move'));
      return;
    }
    HX.showProblem($('#move-problem'), null, $('#desk-move'));
    state.move = null;
    state.moved = r.data;
    state.card = null;
    $('#card-qr').replaceChildren();
    $('#desk-move').reset();
    renderCard();
    renderMove();
    reload();
  }

  function reset() {
    state.payment = null;
    state.card = null;
    state.move = null;
    state.moved = null;
    $('#desk-move').reset();
    HX.showProblem($('#move-problem'), null, $('#desk-move'));
    renderMove();
    $('#card-qr').replaceChildren();
    for (const f of ['#desk-pay', '#desk-pin']) $(f).reset();
    for (const [box, form] of [['#pay-problem', '#desk-pay'], ['#pin-problem', '#desk-pin'], ['#card-problem', null]]) {
      HX.showProblem($(box), null, form ? $(form) : null);
    }
    show($('#pin-done'), false);
    renderPayment();
    renderCard();
  }

  async function find(ev) {
    ev.preventDefault();
    const code = $('#desk-household').value.trim().toUpperCase();
    const box = $('#desk-problem');
    if (!code) {
      HX.showProblem(box, { code: 'desk_household_empty', field: 'household' }, $('#desk-find'));
      return;
    }
    const r = await HX.api('GET', '/v1/households/' + encodeURIComponent(code));
    if (!r.ok) {
      HX.showProblem(box, Object.assign({}, r.problem, { field: 'household' }), $('#desk-find'));
      return;
    }
    HX.showProblem(box, null, $('#desk-find'));
    state.household = r.data;
    reset();
    renderFacts();
  }

  async function reload() {
    if (!state.household) return;
    const r = await HX.api('GET', '/v1/households/' + encodeURIComponent(state.household.household));
    if (r.ok) {
      state.household = r.data;
      renderFacts();
    }
  }

  async function pay(ev) {
    ev.preventDefault();
    if (attempt.busy || !state.household) return;
    const form = $('#desk-pay');
    const box = $('#pay-problem');
    const paid = fen($('#pay-amount').value);
    if (paid === null || paid <= 0n) {
      HX.showProblem(box, { code: 'invalid_amount', field: 'amount' }, form);
      return;
    }
    const reference = $('#pay-reference').value.trim();
    if (!reference) {
      HX.showProblem(box, { code: 'desk_reference_empty', field: 'reference' }, form);
      return;
    }
    const body = {
      household: state.household.household,
      amount: amount(paid),
      method: $('#pay-method').value,
      reference,
    };
    const button = $('#pay-submit');
    button.disabled = true;
    const r = await attempt.post('/v1/fees/payments', body);
    button.disabled = false;
    if (!r.ok) {
      HX.showProblem(box, r.problem, form);
      return;
    }
    HX.showProblem(box, null, form);
    state.payment = { data: r.data, replayed: r.replayed };
    // Its numbered receipt (收据) is printed from the fee receipt section (office-receipt.js).
    document.dispatchEvent(new CustomEvent('hx:fee-paid', { detail: r.data }));
    form.reset();
    renderPayment();
    reload();
  }

  async function setPin(ev) {
    ev.preventDefault();
    if (!state.household) return;
    const form = $('#desk-pin');
    const box = $('#pin-problem');
    const pin = $('#pin-new').value.trim();
    show($('#pin-done'), false);
    if (!/^\d{4,8}$/.test(pin)) {
      HX.showProblem(box, { code: 'desk_pin_format', field: 'pin' }, form);
      return;
    }
    if ($('#pin-again').value.trim() !== pin) {
      HX.showProblem(box, { code: 'desk_pin_mismatch', field: 'pin_again' }, form);
      return;
    }
    const button = $('#pin-submit');
    button.disabled = true;
    const r = await HX.api('POST', `/v1/households/${encodeURIComponent(state.household.household)}/pin`, { pin });
    button.disabled = false;
    if (!r.ok) {
      HX.showProblem(box, r.problem, form);
      return;
    }
    HX.showProblem(box, null, form);
    form.reset();
    show($('#pin-done'), true);
  }

  // The card: its QR code is the household's signed link, drawn by the server.
  async function showCard(rotate) {
    if (!state.household) return;
    const h = encodeURIComponent(state.household.household);
    if (rotate && !window.confirm(t('desk.card.rotate_confirm', { household: state.household.household }))) return;
    const r = rotate
      ? await HX.api('POST', `/v1/households/${h}/link/rotate`)
      : await HX.api('GET', `/v1/households/${h}/link`);
    if (!r.ok) {
      HX.showProblem($('#card-problem'), r.problem);
      return;
    }
    HX.showProblem($('#card-problem'), null);
    state.card = r.data;
    // The version in the address makes a new card's image a new request, not a cached one.
    $('#card-qr').replaceChildren(el('img', {
      id: 'card-qr-img',
      src: `/v1/households/${h}/link/qr.svg?v=${r.data.version}`,
      alt: r.data.household,
    }));
    renderCard();
  }

  function printCard() {
    document.body.classList.add('printing-card');
    window.print();
    document.body.classList.remove('printing-card');
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('#desk-find').addEventListener('submit', find);
    $('#desk-pay').addEventListener('submit', pay);
    $('#desk-pin').addEventListener('submit', setPin);
    $('#card-issue').addEventListener('click', () => showCard(false));
    $('#card-rotate').addEventListener('click', () => showCard(true));
    $('#card-print-go').addEventListener('click', printCard);
    $('#desk-move').addEventListener('submit', reviewMove);
    $('#move-go').addEventListener('click', confirmMove);
    $('#move-cancel').addEventListener('click', () => {
      state.move = null;
      renderMove();
    });
    document.addEventListener('hx:lang', () => {
      renderFacts();
      renderPayment();
      renderCard();
      renderMove();
    });
  });
})();
