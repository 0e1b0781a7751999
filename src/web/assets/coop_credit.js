// hongxin 红心 — the cooperative accountant's credit refunds (/coop, tab 储值退款): a household's
// wallet is looked up, and all of its paid credit or a part of it is paid out. The bonus is
// forfeited in proportion; the page shows the server's estimate rule (bonus × amount ÷ paid) as
// a preview only, and the receipt's figures as the answer.
'use strict';

(function () {
  const { el, $, t, show } = HX;

  HX.strings({
    'zh-CN': {
      'coop.tab.credit': '储值退款',
      'coop.credit.title': '储值退款（住户钱包）',
      'coop.credit.household': '住户码',
      'coop.credit.amount': '退还实付金额（元，空 = 全部）',
      'coop.credit.method': '退款方式',
      'coop.credit.submit': '退款',
      'coop.credit.wallet': '钱包：实付 {paid}，赠送 {bonus}，合计 {total}',
      'coop.credit.empty': '该住户钱包没有余额',
      'coop.credit.preview_all': '将退还全部实付 {paid}，赠送 {bonus} 作废',
      'coop.credit.preview_part': '将退还实付 {amount}，赠送约 {bonus} 按比例作废',
      'coop.credit.done': '已退款 {refunded}（{method}），作废赠送 {forfeited}；钱包余额：实付 {paid}，赠送 {bonus}。凭证号 {entry}',
      'coop.void.title': '作废充值（充值时的凭证号；所充余额未被使用时）',
      'coop.void.topup': '充值凭证号',
      'coop.void.submit': '作废',
      'coop.void.done': '已作废充值 {topup}（住户 {household}）：退还实付 {paid}（{method}），收回赠送 {bonus}。凭证号 {entry}',
      'coop.move.title': '住户迁出并退现',
      'coop.move.hint': '旧住户搬走并要求退现：本社钱包的实付余额全部退还，赠送作废；旧住户卡和密码作废。',
      'coop.move.new_occupant': '新住户姓名',
      'coop.move.carry': '欠费留在本户，由物业公司继续追缴',
      'coop.move.review': '办理迁出…',
      'coop.move.check': '请核对后确认',
      'coop.move.confirm': '确认迁出并退款',
      'coop.move.cancel': '取消',
      'coop.move.refund': '退还实付（{method}）',
      'coop.move.forfeit': '赠送作废',
      'coop.move.arrears': '欠费',
      'coop.move.carried': '{amount}（留在本户继续追缴）',
      'coop.move.clear': '无',
      'coop.move.done': '已办理迁出：退还 {refunded}（{method}），作废赠送 {forfeited}，欠费 {arrears} 留在本户；住户卡已换第 {version} 版，密码已清除。凭证号 {entry}',
    },
    en: {
      'coop.tab.credit': 'Credit refunds',
      'coop.credit.title': 'Credit refunds (household wallets)',
      'coop.credit.household': 'Household code',
      'coop.credit.amount': 'Paid credit to pay out (yuan; empty = all)',
      'coop.credit.method': 'Paid back by',
      'coop.credit.submit': 'Pay out',
      'coop.credit.wallet': 'Wallet: paid {paid}, bonus {bonus}, total {total}',
      'coop.credit.empty': 'This household’s wallet is empty',
      'coop.credit.preview_all': 'Pays out all paid credit, {paid}; the bonus {bonus} is forfeited',
      'coop.credit.preview_part': 'Pays out {amount} of paid credit; about {bonus} of bonus is forfeited in proportion',
      'coop.credit.done': 'Paid out {refunded} ({method}), bonus forfeited {forfeited}; wallet left: paid {paid}, bonus {bonus}. Entry {entry}',
      'coop.void.title': 'Void a top-up (its receipt number; while none of its credit was used)',
      'coop.void.topup': 'Top-up receipt number',
      'coop.void.submit': 'Void',
      'coop.void.done': 'Voided top-up {topup} (household {household}): paid {paid} back ({method}), bonus {bonus} withdrawn. Entry {entry}',
      'coop.move.title': 'Move-out with a cash refund',
      'coop.move.hint': 'The leaving occupant wants the credit in money: all paid credit in this cooperative’s wallet is paid back, the bonus forfeited; the old card and PIN stop working.',
      'coop.move.new_occupant': 'New occupant’s name',
      'coop.move.carry': 'Arrears stay on the household for the company to pursue',
      'coop.move.review': 'Move out…',
      'coop.move.check': 'Check, then confirm',
      'coop.move.confirm': 'Confirm move-out and pay out',
      'coop.move.cancel': 'Cancel',
      'coop.move.refund': 'Paid back ({method})',
      'coop.move.forfeit': 'Bonus forfeited',
      'coop.move.arrears': 'Arrears',
      'coop.move.carried': '{amount} (stays on the household)',
      'coop.move.clear': 'none',
      'coop.move.done': 'Moved out: paid back {refunded} ({method}), bonus forfeited {forfeited}, arrears {arrears} stay on the household; card version {version}, PIN cleared. Entry {entry}',
    },
  });

  const state = { household: null, wallet: null, done: null, fees: null, move: null, moved: null };
  const attempt = new HX.Attempt();
  // A move-out with a cash refund: one attempt per confirm step.
  let moveAttempt = new HX.Attempt();

  function cooperative() {
    const input = $('#coop-code');
    return input && !$('#coop-admin').hidden ? input.value.trim() : '';
  }

  function methodName(m) {
    const key = `coop.tender.${m}`;
    const text = t(key);
    return text === key ? m : text;
  }

  async function look(ev) {
    ev.preventDefault();
    const code = $('#credit-household').value.trim();
    const problem = $('#credit-problem');
    state.done = null;
    render();
    if (!code) {
      HX.showProblem(problem, { code: 'invalid_input', field: 'household' }, $('#credit-find'));
      return;
    }
    const r = await HX.api('GET', `/v1/households/${encodeURIComponent(code)}`);
    if (!r.ok) {
      state.household = state.wallet = null;
      HX.showProblem(problem, r.problem, $('#credit-find'));
      render();
      return;
    }
    HX.showProblem(problem, null, $('#credit-find'));
    state.household = r.data.household || code;
    state.wallet = r.data.wallet;
    state.fees = r.data.fees;
    state.move = state.moved = null;
    $('#move-form').reset();
    $('#credit-amount').value = '';
    render();
  }

  // The preview's bonus is paid credit's share by BigInt arithmetic, rounded down; the server's
  // allocator decides the last fen and the receipt shows it.
  function preview() {
    const w = state.wallet;
    const box = $('#credit-preview');
    if (!w) return;
    const text = $('#credit-amount').value.trim();
    if (!text) {
      box.textContent = t('coop.credit.preview_all', { paid: HX.yuan(w.paid), bonus: HX.yuan(w.bonus) });
      return;
    }
    const fen = HX.fen(text);
    const paid = HX.fen(w.paid);
    if (fen === null || fen <= 0n || paid === null || paid === 0n || fen > paid) {
      box.textContent = '';
      return;
    }
    const bonus = (HX.fen(w.bonus) * fen) / paid;
    box.textContent = t('coop.credit.preview_part', { amount: HX.yuan(HX.amount(fen)), bonus: HX.yuan(HX.amount(bonus)) });
  }

  function render() {
    const w = state.wallet;
    const form = $('#credit-form');
    show(form, Boolean(w));
    if (w) {
      const empty = HX.fen(w.total) === 0n;
      $('#credit-wallet').textContent = empty ? t('coop.credit.empty')
        : t('coop.credit.wallet', { paid: HX.yuan(w.paid), bonus: HX.yuan(w.bonus), total: HX.yuan(w.total) });
      $('#credit-submit').disabled = empty;
      preview();
    }
    renderMove();
    const d = state.done;
    const box = $('#credit-done');
    show(box, Boolean(d));
    if (d) {
      box.replaceChildren(el('p', { id: 'credit-receipt' }, t('coop.credit.done', {
        refunded: HX.yuan(d.refunded), method: methodName(d.method), forfeited: HX.yuan(d.forfeited),
        paid: HX.yuan(d.left ? d.left.paid : '0.00'), bonus: HX.yuan(d.left ? d.left.bonus : '0.00'), entry: d.entry,
      })));
    }
  }

  async function payOut(ev) {
    ev.preventDefault();
    const form = $('#credit-form');
    const button = $('#credit-submit');
    const problem = $('#credit-form-problem');
    if (attempt.busy || button.disabled || !state.household) return;
    const body = { method: form.elements.method.value };
    const text = form.elements.amount.value.trim();
    if (text) {
      const fen = HX.fen(text);
      if (fen === null || fen <= 0n) {
        HX.showProblem(problem, { code: 'invalid_amount', field: 'amount' }, form);
        return;
      }
      body.amount = HX.amount(fen);
    }
    const coop = cooperative();
    if (coop) body.cooperative = coop;
    HX.showProblem(problem, null, form);
    button.disabled = true;
    const r = await attempt.post(`/v1/households/${encodeURIComponent(state.household)}/credit-refunds`, body);
    button.disabled = false;
    if (!r.ok) {
      HX.showProblem(problem, r.problem, form);
      return;
    }
    state.done = r.data;
    state.wallet = r.data.left || state.wallet;
    form.elements.amount.value = '';
    render();
  }

  // A top-up voided by its receipt number (the entry its receipt names).
  const voidAttempt = new HX.Attempt();
  let voided = null;

  function renderVoid() {
    const done = $('#void-done');
    show(done, Boolean(voided));
    if (!voided) return;
    done.textContent = t('coop.void.done', {
      topup: voided.topup, household: voided.household, paid: HX.yuan(voided.paid),
      method: methodName(voided.method), bonus: HX.yuan(voided.bonus), entry: voided.entry,
    });
  }

  async function voidTopup(ev) {
    ev.preventDefault();
    const form = $('#void-form');
    const problem = $('#void-problem');
    const button = $('#void-submit');
    if (voidAttempt.busy || button.disabled) return;
    const topup = form.elements.topup.value.trim();
    voided = null;
    renderVoid();
    if (!/^\d{1,18}$/.test(topup)) {
      HX.showProblem(problem, { code: 'invalid_input', field: 'topup' }, form);
      return;
    }
    HX.showProblem(problem, null, form);
    button.disabled = true;
    const r = await voidAttempt.post(`/v1/topups/${topup}/void`, {});
    button.disabled = false;
    if (!r.ok) {
      HX.showProblem(problem, r.problem, form);
      return;
    }
    voided = r.data;
    form.elements.topup.value = '';
    renderVoid();
  }

  // The move-out's confirm step: what is paid back and forfeited, and the arrears, as they
  // stand; nothing is done until it is confirmed.
  function renderMove() {
    const w = state.wallet;
    show($('#move-form'), Boolean(w));
    const m = state.move;
    show($('#move-confirm'), Boolean(m && w));
    const method = methodName($('#credit-method').value);
    const arrears = (f) => (HX.fen(f.arrears) > 0n ? t('coop.move.carried', { amount: HX.yuan(f.arrears) }) : t('coop.move.clear'));
    if (m && w) {
      const row = (id, label, value) => [el('dt', {}, label), el('dd', { id }, value)];
      $('#move-figures').replaceChildren(...[
        row('move-refund', t('coop.move.refund', { method }), HX.yuan(w.paid)),
        row('move-forfeit', t('coop.move.forfeit'), HX.yuan(w.bonus)),
        row('move-arrears', t('coop.move.arrears'), arrears(state.fees)),
      ].flat());
    }
    const d = state.moved;
    show($('#move-done'), Boolean(d));
    if (d) {
      $('#move-done').replaceChildren(el('p', { id: 'move-receipt' }, t('coop.move.done', {
        refunded: HX.yuan(d.refunded), method: methodName(d.method), forfeited: HX.yuan(d.forfeited),
        arrears: HX.yuan(d.arrears), version: d.link_version, entry: d.entry,
      })));
    }
  }

  function reviewMove(ev) {
    ev.preventDefault();
    if (!state.wallet) return;
    const form = $('#move-form');
    const box = $('#move-problem');
    const carry = $('#move-carry').checked;
    if (HX.fen(state.fees.arrears) > 0n && !carry) {
      HX.showProblem(box, { code: 'arrears_outstanding', field: 'fees' }, form);
      return;
    }
    HX.showProblem(box, null, form);
    const body = { wallet: 'cash_out', method: $('#credit-method').value, fees: carry ? 'carry' : 'settled' };
    const name = $('#move-occupant').value.trim();
    if (name) body.new_occupant = name;
    const coop = cooperative();
    if (coop) body.cooperative = coop;
    state.move = { body };
    state.moved = null;
    moveAttempt = new HX.Attempt();
    renderMove();
  }

  async function confirmMove() {
    if (!state.move || moveAttempt.busy) return;
    const button = $('#move-go');
    button.disabled = true;
    const r = await moveAttempt.post(`/v1/households/${encodeURIComponent(state.household)}/move-out`, state.move.body);
    button.disabled = false;
    if (!r.ok) {
      HX.showProblem($('#move-problem'), r.problem, $('#move-form'));
      return;
    }
    state.move = null;
    state.moved = r.data;
    state.wallet = { paid: '0.00', bonus: '0.00', total: '0.00' };
    state.done = null;
    $('#move-form').reset();
    render();
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('#move-form').addEventListener('submit', reviewMove);
    $('#move-go').addEventListener('click', confirmMove);
    $('#move-cancel').addEventListener('click', () => {
      state.move = null;
      renderMove();
    });
    $('#void-form').addEventListener('submit', voidTopup);
    document.addEventListener('hx:lang', renderVoid);
    $('#credit-find').addEventListener('submit', look);
    $('#credit-form').addEventListener('submit', payOut);
    $('#credit-amount').addEventListener('input', preview);
    document.addEventListener('hx:lang', render);
  });
})();
