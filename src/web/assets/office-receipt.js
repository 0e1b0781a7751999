// hongxin 红心 — the office's fee receipts (/office, #fee-receipt): the numbered 收据 of the
// payment the desk just recorded, ready to print, and any earlier receipt of the company printed
// again by its number (GET /v1/companies/{company}/fee-receipts/{number}), those its
// cooperative's tills collected included. The figures, the amount in capitals (大写) and the
// number as printed are the server's; the page only lays them out for paper.
'use strict';

(function () {
  const { el, $, show, t, fen, yuan } = HX;

  HX.strings({
    'zh-CN': {
      'fr.title': '物业费收据',
      'fr.hint': '刚记录的缴费可直接打印收据；也可按收据号补打（包括合作社门店代收的）。',
      'fr.number': '收据号',
      'fr.number_placeholder': '例如 No. 000012 中的 12',
      'fr.reprint': '补打收据',
      'fr.print': '打印收据',
      'fr.receipt': '收据',
      'fr.reprinted': '（补打）',
      'fr.date': '日期',
      'fr.household': '住户',
      'fr.item': '收款事由',
      'fr.item_value': '物业费',
      'fr.amount': '金额',
      'fr.words': '大写',
      'fr.bill': '{month} 物业费',
      'fr.prepaid': '预交',
      'fr.method': '付款方式',
      'fr.collected': '收款处',
      'fr.office': '物业公司服务台',
      'fr.collected_by': '{cooperative} 代收',
      'fr.entry': '凭证号',
      'fr.sign': '收款人（签章）：',
      'fr.m.cash': '现金',
      'fr.m.wechat': '微信',
      'fr.m.alipay': '支付宝',
      'fr.m.bank': '银行转账',
      'problem.fr_number': '请输入收据号（正整数）',
      'problem.fr_company': '请先在上方输入物业公司代码',
    },
    en: {
      'fr.title': 'Fee receipts',
      'fr.hint': 'Print the receipt of the payment just recorded, or print any receipt again by its number (those taken at a cooperative’s till too).',
      'fr.number': 'Receipt No.',
      'fr.number_placeholder': 'e.g. 12 for No. 000012',
      'fr.reprint': 'Print again',
      'fr.print': 'Print receipt',
      'fr.receipt': 'Receipt (收据)',
      'fr.reprinted': '(copy)',
      'fr.date': 'Date',
      'fr.household': 'Household',
      'fr.item': 'For',
      'fr.item_value': 'Property fees',
      'fr.amount': 'Amount',
      'fr.words': 'In words (大写)',
      'fr.bill': 'Fee {month}',
      'fr.prepaid': 'Paid ahead',
      'fr.method': 'Method',
      'fr.collected': 'Received at',
      'fr.office': 'the company’s office',
      'fr.collected_by': 'collected by {cooperative}',
      'fr.entry': 'Entry',
      'fr.sign': 'Received by (signature):',
      'fr.m.cash': 'Cash',
      'fr.m.wechat': 'WeChat',
      'fr.m.alipay': 'Alipay',
      'fr.m.bank': 'Bank transfer',
      'problem.fr_number': 'Enter the receipt number (a whole number)',
      'problem.fr_company': 'Enter the company code above first',
    },
  });

  // {view: GET …/fee-receipts/{n}, payment: the desk's payment answer (its bills) or null,
  //  reprint: whether it was asked for by number}
  const state = { shown: null, session: null };

  async function company() {
    if (!state.session) state.session = await HX.session();
    const s = state.session || {};
    if (s.company) return s.company;
    return ($('#company') ? $('#company').value : '').trim().toUpperCase();
  }

  function render() {
    const x = state.shown;
    show($('#fr-print'), Boolean(x));
    if (!x) return;
    const v = x.view;
    const row = (id, label, value) => [el('dt', {}, t(label)), el('dd', { id: 'fr-' + id }, value)];
    $('#fr-company').textContent = `${v.company_name}（${v.company}）`;
    $('#fr-number').textContent = v.printed_number + (x.reprint ? ' ' + t('fr.reprinted') : '');
    const lines = [
      row('date', 'fr.date', v.business_date),
      row('household', 'fr.household', v.household),
      row('item', 'fr.item', t('fr.item_value')),
      row('amount', 'fr.amount', yuan(v.amount)),
      row('words', 'fr.words', v.amount_in_words),
    ];
    // The bills it settled are known for the payment just recorded.
    if (x.payment) {
      for (const a of x.payment.applied) {
        lines.push([el('dt', {}, t('fr.bill', { month: a.month })), el('dd', { id: 'fr-bill-' + a.month }, yuan(a.amount))]);
      }
      if (fen(x.payment.prepaid) > 0n) lines.push(row('prepaid', 'fr.prepaid', yuan(x.payment.prepaid)));
    }
    lines.push(
      row('method', 'fr.method', t('fr.m.' + v.method)),
      row('collected', 'fr.collected', v.cooperative
        ? t('fr.collected_by', { cooperative: v.cooperative_name ? `${v.cooperative_name}（${v.cooperative}）` : v.cooperative })
          + (v.shop ? ' · ' + v.shop : '')
        : t('fr.office')),
      row('entry', 'fr.entry', String(v.entry)),
    );
    $('#fr-lines').replaceChildren(...lines.flat());
  }

  async function load(companyCode, number, payment, reprint) {
    const r = await HX.api('GET', `/v1/companies/${encodeURIComponent(companyCode)}/fee-receipts/${number}`);
    if (!r.ok) {
      HX.showProblem($('#fr-problem'), Object.assign({}, r.problem, { field: 'number' }), $('#fr-reprint'));
      state.shown = null;
      render();
      return;
    }
    HX.showProblem($('#fr-problem'), null, $('#fr-reprint'));
    state.shown = { view: r.data, payment, reprint };
    render();
  }

  // The desk recorded a payment: its receipt, ready to print.
  function onPaid(ev) {
    const d = ev.detail;
    if (!d || !d.receipt) return;
    load(d.company, d.receipt, d, false);
  }

  async function reprint(ev) {
    ev.preventDefault();
    const form = $('#fr-reprint');
    const text = $('#fr-number-input').value.trim().replace(/^no\.?\s*/i, '');
    if (!/^\d+$/.test(text) || Number(text) < 1) {
      HX.showProblem($('#fr-problem'), { code: 'fr_number', field: 'number' }, form);
      return;
    }
    const code = await company();
    if (!code) {
      HX.showProblem($('#fr-problem'), { code: 'fr_company', field: 'company' }, $('#pick'));
      return;
    }
    await load(code, Number(text), null, true);
  }

  function printReceipt() {
    if (!state.shown) return;
    document.body.classList.add('printing-fee-receipt');
    window.print();
    document.body.classList.remove('printing-fee-receipt');
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('#fr-reprint').addEventListener('submit', reprint);
    $('#fr-print-go').addEventListener('click', printReceipt);
    document.addEventListener('hx:fee-paid', onPaid);
    document.addEventListener('hx:signed-out', () => {
      state.session = null;
      state.shown = null;
      render();
    });
    document.addEventListener('hx:lang', render);
  });
})();
