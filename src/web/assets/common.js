// hongxin 红心 — what every page shares: language (zh-CN by default, English a switch away),
// the session (an HttpOnly cookie; this script only ever sees the CSRF token), calls to the
// /v1 API with problem+json errors, Idempotency-Keys made once per attempt, exact money as
// strings and BigInt fen (never floating point), and building DOM without innerHTML.
'use strict';

(function () {
  const dict = { 'zh-CN': {}, en: {} };
  const state = { csrf: null, session: null };

  // ---- language -------------------------------------------------------------------------

  function strings(table) {
    for (const lang of Object.keys(table)) {
      dict[lang] = Object.assign(dict[lang] || {}, table[lang]);
    }
  }

  function storedLang() {
    try {
      return localStorage.getItem('hx-lang');
    } catch (_) {
      return null;
    }
  }

  function lang() {
    const asked = new URLSearchParams(location.search).get('lang');
    if (asked === 'en' || asked === 'zh-CN') return asked;
    const kept = storedLang();
    return kept === 'en' ? 'en' : 'zh-CN';
  }

  // t('topup.preview', {paid: '100.00'}) — the phrase in the page's language, {names} filled.
  function t(key, vars) {
    const l = lang();
    let text = (dict[l] && dict[l][key]) ?? dict['zh-CN'][key] ?? key;
    if (vars) {
      text = text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
    }
    return text;
  }

  function applyI18n(root) {
    const scope = root || document;
    document.documentElement.lang = lang();
    for (const el of scope.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
    for (const el of scope.querySelectorAll('[data-i18n-placeholder]')) {
      el.placeholder = t(el.dataset.i18nPlaceholder);
    }
    for (const el of scope.querySelectorAll('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle);
    const sw = document.getElementById('lang-switch');
    if (sw) sw.textContent = lang() === 'en' ? '中文' : 'English';
  }

  function setLang(l) {
    try {
      localStorage.setItem('hx-lang', l);
    } catch (_) {
      /* private mode: the choice lasts for this page only */
    }
    const url = new URL(location.href);
    if (url.searchParams.has('lang')) {
      url.searchParams.set('lang', l);
      history.replaceState(null, '', url.pathname + url.search);
    }
    applyI18n();
    document.dispatchEvent(new CustomEvent('hx:lang', { detail: l }));
  }

  // ---- DOM ------------------------------------------------------------------------------

  // el('button', {class: 'primary', onclick: f, dataset: {id: 3}}, 'text', child, ...)
  function el(tag, attrs, ...children) {
    const node = tag === 'svg' || (attrs && attrs.svg)
      ? document.createElementNS('http://www.w3.org/2000/svg', tag)
      : document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false || name === 'svg') continue;
      if (name.startsWith('on') && typeof value === 'function') {
        node.addEventListener(name.slice(2), value);
      } else if (name === 'dataset') {
        Object.assign(node.dataset, value);
      } else if (name === 'text') {
        node.textContent = value;
      } else {
        node.setAttribute(name, value === true ? '' : String(value));
      }
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function $(selector, root) {
    return (root || document).querySelector(selector);
  }

  function show(node, visible) {
    if (node) node.hidden = !visible;
  }

  // ---- money: strings in, strings out, BigInt fen in between ----------------------------

  // '12.3' → 1230n; null when it is not an amount with at most two decimals.
  function fen(text) {
    const s = String(text ?? '').trim();
    const m = /^(-)?(\d+)(?:\.(\d{1,2}))?$/.exec(s);
    if (!m) return null;
    const value = BigInt(m[2]) * 100n + BigInt((m[3] || '').padEnd(2, '0') || '0');
    return m[1] ? -value : value;
  }

  // 1230n → '12.30'
  function amount(f) {
    const v = BigInt(f);
    const neg = v < 0n;
    const abs = neg ? -v : v;
    const s = `${abs / 100n}.${String(abs % 100n).padStart(2, '0')}`;
    return neg ? `-${s}` : s;
  }

  // '12345.60' → '¥12,345.60' (grouping by string, not by arithmetic)
  function yuan(text) {
    if (text === undefined || text === null || text === '') return '—';
    const s = String(text);
    const neg = s.startsWith('-');
    const [whole, frac] = (neg ? s.slice(1) : s).split('.');
    const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
    return `${neg ? '-' : ''}¥${grouped}${frac !== undefined ? '.' + frac : ''}`;
  }

  // ---- the API --------------------------------------------------------------------------

  function newKey() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return 'web-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  // → {ok, status, data, replayed} or {ok: false, status, problem, network}
  async function api(method, path, body, opts) {
    const o = opts || {};
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (method !== 'GET' && method !== 'HEAD' && state.csrf) headers['X-CSRF-Token'] = state.csrf;
    if (o.key) headers['Idempotency-Key'] = o.key;
    let res;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'same-origin',
        cache: 'no-store',
      });
    } catch (e) {
      return { ok: false, status: 0, network: true, problem: { code: 'network', detail: String(e) } };
    }
    let data = null;
    if ((res.headers.get('content-type') || '').includes('json')) {
      try {
        data = await res.json();
      } catch (_) {
        data = null;
      }
    }
    if (res.status === 401 && !o.quiet) {
      document.dispatchEvent(new CustomEvent('hx:signed-out'));
    }
    if (res.ok) {
      return {
        ok: true,
        status: res.status,
        data,
        replayed: res.headers.get('idempotent-replayed') === 'true',
      };
    }
    return {
      ok: false,
      status: res.status,
      problem: data || { code: `http_${res.status}`, detail: res.statusText },
    };
  }

  // One attempt at a money action: its Idempotency-Key is made when the attempt starts and
  // kept for every retry of the same request, so a double tap or a resend after a dropped
  // connection cannot post twice. A definitive answer (success, or a refusal) ends the
  // attempt; changing what is sent starts a new one.
  class Attempt {
    constructor() {
      this.key = null;
      this.sent = null;
      this.busy = false;
    }

    async post(path, body) {
      const sent = path + '\n' + JSON.stringify(body);
      if (this.key === null || this.sent !== sent) {
        this.key = newKey();
        this.sent = sent;
      }
      this.busy = true;
      try {
        const r = await api('POST', path, body, { key: this.key });
        const retryable = r.network || r.status === 409 || r.status === 429 || r.status >= 500;
        if (!retryable) this.key = null;
        return r;
      } finally {
        this.busy = false;
      }
    }
  }

  // The problem in words: a translation of its code when there is one, else the server's detail.
  function problemText(problem) {
    if (!problem) return t('problem.unknown');
    const key = `problem.${problem.code}`;
    const known = t(key);
    // The field at fault is marked on the form (showProblem), not named in the words.
    return known !== key ? known : (problem.detail || problem.code);
  }

  // Shows a problem in `box` and marks the input named by its field.
  function showProblem(box, problem, form) {
    if (form) {
      for (const bad of form.querySelectorAll('.invalid')) bad.classList.remove('invalid');
      if (problem && problem.field) {
        const root = problem.field.split(/[.[]/)[0];
        const input = form.querySelector(`[name="${CSS.escape(problem.field)}"]`) ||
          form.querySelector(`[name="${CSS.escape(root)}"]`);
        if (input) input.classList.add('invalid');
      }
    }
    if (!box) return;
    box.textContent = problem ? problemText(problem) : '';
    box.hidden = !problem;
    box.classList.toggle('error', Boolean(problem));
  }

  // ---- session --------------------------------------------------------------------------

  async function session() {
    const r = await api('GET', '/web/session', undefined, { quiet: true });
    state.session = r.ok ? r.data : null;
    state.csrf = r.ok ? r.data.csrf : null;
    return state.session;
  }

  async function signIn(body) {
    const r = await api('POST', '/web/session', body, { quiet: true });
    if (r.ok) {
      state.session = r.data;
      state.csrf = r.data.csrf;
    }
    return r;
  }

  async function signOut() {
    await api('DELETE', '/web/session', undefined, { quiet: true });
    state.session = null;
    state.csrf = null;
  }

  // A staff page: shows `signInForm` until a session with one of `roles` exists, then `main`,
  // and calls onReady(session). The form's inputs named `token` and `pairing_code` (either
  // may be absent) are sent as they are filled in. When the session ends (a 401 anywhere),
  // the form comes back with a message.
  function boot({ roles, signInForm, main, onReady }) {
    const problemBox = signInForm.querySelector('.problem');
    const who = document.getElementById('who');
    const out = document.getElementById('sign-out');

    let current = null;
    function renderWho() {
      if (!who || !current) return;
      const s = current;
      const scope = s.scope_name || s.shop || s.company || s.cooperative || s.household || '';
      who.textContent = `${t('role.' + s.role)} ${scope}`.trim();
    }
    document.addEventListener('hx:lang', renderWho);

    function enter(s) {
      show(signInForm, false);
      show(main, true);
      show(out, true);
      current = s;
      renderWho();
      onReady(s);
    }

    function leave(message) {
      current = null;
      show(main, false);
      show(out, false);
      show(signInForm, true);
      if (who) who.textContent = '';
      showProblem(problemBox, message ? { code: message } : null);
    }

    signInForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const body = {};
      for (const name of ['token', 'pairing_code']) {
        const input = signInForm.elements[name];
        if (input && input.value.trim()) body[name] = input.value.trim();
      }
      if (!Object.keys(body).length) {
        showProblem(problemBox, { code: 'sign_in_empty' });
        return;
      }
      const button = signInForm.querySelector('button[type=submit]');
      if (button) button.disabled = true;
      const r = await signIn(body);
      if (button) button.disabled = false;
      if (!r.ok) {
        showProblem(problemBox, r.problem, signInForm);
        return;
      }
      if (!roles.includes(r.data.role)) {
        await signOut();
        showProblem(problemBox, { code: 'wrong_role' });
        return;
      }
      signInForm.reset();
      enter(r.data);
    });

    if (out) {
      out.addEventListener('click', async () => {
        await signOut();
        leave(null);
      });
    }
    document.addEventListener('hx:signed-out', () => leave('session_expired'));

    session().then((s) => {
      if (s && roles.includes(s.role)) enter(s);
      else leave(null);
    });
  }

  // ---- strings every page uses ----------------------------------------------------------

  strings({
    'zh-CN': {
      'app.name': '红心',
      'nav.till': '收银台',
      'nav.resident': '居民',
      'nav.office': '物业公司',
      'nav.coop': '合作社财务',
      'sign_in.title': '登录',
      'sign_in.token': '令牌',
      'sign_in.pairing_code': '配对码',
      'sign_in.submit': '登录',
      'sign_out': '退出',
      'role.admin': '管理员',
      'role.cashier': '收银员',
      'role.coop_accountant': '合作社会计',
      'role.company': '物业公司',
      'role.resident': '居民',
      'problem.unknown': '出了点问题，请重试',
      'problem.network': '网络中断：请检查连接后重试（不会重复记账）',
      'problem.sign_in_empty': '请输入令牌或配对码',
      'problem.sign_in_failed': '令牌、配对码、链接或密码无效',
      'problem.wrong_role': '此账号不能使用本页面',
      'problem.session_expired': '登录已过期，请重新登录',
      'problem.unauthorized': '请先登录',
      'problem.forbidden': '无权进行此操作',
      'problem.csrf_failed': '页面已过期，请刷新后重试',
      'problem.rate_limited': '尝试次数过多，请稍后再试',
      'problem.request_timeout': '请求超时，请重试（同一操作不会重复记账）',
      'problem.resident_required': '用钱包付款须住户在场：请扫描住户卡，或请住户输入密码',
      'problem.resident_proof_failed': '住户卡或密码不对，请住户重新出示或输入',
      'problem.not_found': '未找到',
      'problem.invalid_input': '输入有误',
      'problem.invalid_amount': '金额格式不对：最多两位小数，例如 12.50',
      'problem.insufficient_funds': '余额不足',
      'problem.not_whole_units': '充值金额须为整份（例如 50 元的整数倍）',
      'problem.cap_exceeded': '超过上限',
      'problem.not_eligible': '该住户不在本政策范围内',
      'problem.no_policy': '该日期没有适用的政策',
      'problem.tender_mismatch': '各付款方式之和与应付金额不符',
      'problem.method_not_accepted': '不接受此付款方式',
      'problem.not_refundable': '无法退款（已退或超过可退金额）',
      'problem.not_voidable': '无法作废（已作废、余额已使用，或已过当日；请改为退还余额）',
      'problem.arrears_outstanding': '该住户尚欠物业费：请先结清，或选择欠费转由新住户名下保留追缴',
      'problem.voucher_invalid': '券码无效',
      'problem.voucher_typo': '券码有输入错误，请核对',
      'problem.voucher_exchanged': '此券已换新券，旧券码作废，请使用新券',
      'problem.voucher_not_exchangeable': '此券不能换新：未过期或已无余额',
      'problem.period_closed': '该月已结账，不能再记入',
      'problem.already_exists': '已存在',
      'problem.idempotency_in_flight': '上一次提交仍在处理中，请稍候',
      'problem.idempotency_key_reused': '请求已变更，请重新提交',
      'problem.household': '住户有误',
      'problem.import_failed': '导入失败：文件中有错误的行',
      'problem.bad_body': '请求内容有误，请刷新页面后重试',
      'problem.bad_idempotency_key': '页面出错，请刷新后重试',
      'problem.bad_path_parameter': '地址中的编号有误',
      'problem.body_too_large': '内容太大，请分批提交',
      'problem.idempotency_key_required': '页面出错，请刷新后重试',
      'problem.internal': '服务器暂时出错，请再试一次（不会重复记账）',
      'problem.malformed_json': '请求内容有误，请刷新页面后重试',
      'problem.method_not_allowed': '不能这样操作',
      'problem.unsupported_media_type': '请求内容有误，请刷新页面后重试',
    },
    en: {
      'app.name': 'Hongxin',
      'nav.till': 'Till',
      'nav.resident': 'Resident',
      'nav.office': 'Company office',
      'nav.coop': 'Cooperative',
      'sign_in.title': 'Sign in',
      'sign_in.token': 'Token',
      'sign_in.pairing_code': 'Pairing code',
      'sign_in.submit': 'Sign in',
      'sign_out': 'Sign out',
      'role.admin': 'Admin',
      'role.cashier': 'Cashier',
      'role.coop_accountant': 'Cooperative accountant',
      'role.company': 'Property company',
      'role.resident': 'Resident',
      'problem.unknown': 'Something went wrong; try again',
      'problem.network': 'Connection lost: check it and retry (nothing is posted twice)',
      'problem.sign_in_empty': 'Enter a token or a pairing code',
      'problem.sign_in_failed': 'The token, pairing code, link or PIN is not valid',
      'problem.wrong_role': 'This sign-in cannot use this page',
      'problem.session_expired': 'Your session has ended; sign in again',
      'problem.unauthorized': 'Sign in first',
      'problem.forbidden': 'You may not do this',
      'problem.csrf_failed': 'The page is out of date; reload it and retry',
      'problem.rate_limited': 'Too many attempts; wait a minute',
      'problem.request_timeout': 'The request took too long; try again (it will not be booked twice)',
      'problem.resident_required': 'Paying from the wallet needs the resident: scan the household card or have the resident type the PIN',
      'problem.resident_proof_failed': 'That household card or PIN is not right; ask the resident again',
      'problem.not_found': 'Not found',
      'problem.invalid_input': 'Check the input',
      'problem.invalid_amount': 'Not an amount: at most two decimals, e.g. 12.50',
      'problem.insufficient_funds': 'Not enough balance',
      'problem.not_whole_units': 'Top-ups come in whole units (e.g. multiples of 50.00)',
      'problem.cap_exceeded': 'Over the limit',
      'problem.not_eligible': 'This household is not in the programme',
      'problem.no_policy': 'No policy applies on that date',
      'problem.tender_mismatch': 'The tenders do not add up to the total',
      'problem.method_not_accepted': 'That payment method is not accepted',
      'problem.not_refundable': 'Cannot be refunded (already refunded or more than is left)',
      'problem.not_voidable': 'Cannot be voided (already voided, credit already used, or not today’s; refund what is left instead)',
      'problem.arrears_outstanding': 'The household owes property fees: settle them first, or carry them for the company to pursue',
      'problem.voucher_invalid': 'Not a valid voucher code',
      'problem.voucher_typo': 'The voucher code has a typo; check it',
      'problem.voucher_exchanged': 'This voucher was exchanged for a new one; use the new code',
      'problem.voucher_not_exchangeable': 'This voucher cannot be exchanged: not expired yet, or nothing left on it',
      'problem.period_closed': 'That month is closed; nothing more can be posted into it',
      'problem.already_exists': 'Already exists',
      'problem.idempotency_in_flight': 'The last attempt is still being processed; wait',
      'problem.idempotency_key_reused': 'The request changed; submit again',
      'problem.household': 'Check the household',
      'problem.import_failed': 'Import failed: some rows of the file are wrong',
      'problem.bad_body': 'The request was not understood; reload the page and retry',
      'problem.bad_idempotency_key': 'The page went wrong; reload it and retry',
      'problem.bad_path_parameter': 'A number in the address is wrong',
      'problem.body_too_large': 'Too much at once; send it in parts',
      'problem.idempotency_key_required': 'The page went wrong; reload it and retry',
      'problem.internal': 'The server had a problem; try again (nothing is posted twice)',
      'problem.malformed_json': 'The request was not understood; reload the page and retry',
      'problem.method_not_allowed': 'That cannot be done here',
      'problem.unsupported_media_type': 'The request was not understood; reload the page and retry',
    },
  });

  document.addEventListener('DOMContentLoaded', () => {
    const sw = document.getElementById('lang-switch');
    if (sw) sw.addEventListener('click', () => setLang(lang() === 'en' ? 'zh-CN' : 'en'));
    applyI18n();
  });

  window.HX = {
    strings, t, lang, setLang, applyI18n,
    el, $, show,
    fen, amount, yuan,
    newKey, api, Attempt, problemText, showProblem,
    session, signIn, signOut, boot,
    get csrf() { return state.csrf; },
  };
})();
