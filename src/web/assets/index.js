// The front door: where each of the programme's people goes.
'use strict';
HX.strings({
  'zh-CN': {
    'index.title': '红心 · 居民购物与物业',
    'index.lead': '居民购物50元换55元；合作社盈利用于物业费。',
    'index.till': '充值、销售、退款、查券',
    'index.resident': '余额、购物券、物业费',
    'index.office': '对账单、欠费、结算',
    'index.coop': '日报、月结、预收款、结算',
    'index.alliance_name': '物业联盟',
    'index.alliance': '收缴率、居民参与、合作社分配',
  },
  en: {
    'index.title': 'Hongxin · shopping credit and property fees',
    'index.lead': 'Pay 50, get 55 of shopping credit; the cooperative’s profit pays toward property fees.',
    'index.till': 'Top-ups, sales, refunds, voucher checks',
    'index.resident': 'Balance, vouchers, property fees',
    'index.office': 'Statements, arrears, settlements',
    'index.coop': 'Till reports, month close, prepaid, settlements',
    'index.alliance_name': 'Property alliance',
    'index.alliance': 'Collection rates, participation, the cooperative’s shares',
  },
});
