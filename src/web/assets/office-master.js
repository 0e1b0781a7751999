// hongxin 红心 — master data changes on the office page (/office): for the household found on
// the household desk, correct its floor area from a billing month (behind a confirm step that
// shows old → new and the month) and its occupant's name, with the household's change history
// below (who, when, old, new, in force from); and, for the admin only (#master-admin), a
// compound's eligibility from a day, its move to another company from a month, its name, and
// the full history. Everything goes through POST /v1/master-changes and GET /v1/master-changes;
// a refusal is shown in the form, its field marked, in words for that field.
//
// The fee difference an area correction makes is not shown: the API gives no compound's rate,
// and a bill's amount (area × rate, rounded once) does not give it back exactly.
'use strict';

(function () {
  const { el, $, show, t } = HX;

  HX.strings({
    'zh-CN': {
      'master.h.title': '住户资料更正',
      'master.area.title': '更正面积（从某个账单月份起）',
      'master.area.hint': '已出的账单不变；从所填月份起的物业费按新面积计算。',
      'master.area.new': '新面积（平方米）',
      'master.area.new_placeholder': '例如 85.50',
      'master.area.from': '从哪个月的账单起',
      'master.area.review': '更正面积…',
      'master.area.confirm': '确认更正面积',
      'master.area.done': '已更正面积：{old} → {new} 平方米，自 {month} 的账单起（凭证号 {entry}）',
      'master.name.title': '更正住户姓名',
      'master.name.new': '正确的姓名',
      'master.name.submit': '保存姓名',
      'master.name.done': '已更正姓名：{old} → {new}（凭证号 {entry}）',
      'master.month_placeholder': '年-月，例如 2026-12',
      'master.day_placeholder': '年-月-日，例如 2026-12-01',
      'master.check': '请核对后确认',
      'master.confirm': '确认更改',
      'master.cancel': '取消',
      'master.review': '核对…',
      'master.history': '更正记录',
      'master.no_changes': '还没有更正记录。',
      'master.f.household': '住户',
      'master.f.name': '住户姓名',
      'master.f.area': '现在面积',
      'master.f.area_value': '{area} 平方米',
      'master.f.nobody': '（未填写）',
      'master.c.subject': '对象',
      'master.c.change': '更改',
      'master.c.from': '生效',
      'master.c.month': '从 {month} 的账单起',
      'master.c.day': '从 {day} 起',
      'master.c.now': '即日起',
      'master.col.at': '记录时间',
      'master.col.who': '经办人',
      'master.col.subject': '对象',
      'master.col.field': '项目',
      'master.col.old': '原来',
      'master.col.new': '更正为',
      'master.col.from': '生效日期',
      'master.col.entry': '凭证号',
      'master.field.name': '名称',
      'master.field.household_name': '姓名',
      'master.field.area_m2': '面积',
      'master.field.eligible': '50换55',
      'master.field.company': '物业公司',
      'master.v.true': '参加 50换55',
      'master.v.false': '不参加 50换55',
      'master.v.area': '{area} 平方米',
      'master.v.none': '—',
      'master.who': '{label}（{role}）',
      'master.s.all': '全部',
      'master.s.compound': '小区',
      'master.s.household': '住户',
      'master.s.company': '物业公司',
      'master.s.cooperative': '合作社',
      'master.s.shop': '门店',
      'master.a.title': '管理 · 小区主数据',
      'master.a.hint': '仅管理员可见。住户的面积和姓名在上面的住户服务台查找住户后更正。',
      'master.a.history': '全部主数据更改记录',
      'master.a.subject': '类别',
      'master.a.code': '代码',
      'master.a.show': '查看',
      'master.a.done': '已更改：{subject} {field}：{old} → {new}，{from}（凭证号 {entry}）',
      'master.compound': '小区代码',
      'master.elig.title': '参加或退出 50换55（从某日起）',
      'master.elig.value': '从该日起',
      'master.elig.from': '生效日期',
      'master.move.title': '小区转给另一家物业公司（从某月起）',
      'master.move.company': '新物业公司代码',
      'master.move.from': '新公司从哪个月的账单起',
      'master.rename.title': '更正小区名称',
      'master.rename.name': '正确的名称',
      'problem.master_area': '面积须为大于零的数，最多两位小数，例如 85.50',
      'problem.master_month': '请填写月份，格式为 年-月，例如 2026-12',
      'problem.master_day': '请填写日期，格式为 年-月-日，例如 2026-12-01',
      'problem.master_empty': '请填写这一项',
      'problem.master_same': '与现在的一样，无须更正',
      'problem.master_from_month': '不能从这个月起：该月已出账单或已结账（已出的账单不变），或早于已登记的更改。请填之后的月份',
      'problem.master_from_day': '不能从这一天起：该月已结账，或早于已登记的更改。请填之后的日期',
      'problem.master_value': '这个值不能用',
      'problem.master_no_company': '没有这个物业公司',
      'problem.master_no_code': '没有这个代码',
    },
    en: {
      'master.h.title': 'Correct the household’s records',
      'master.area.title': 'Correct the floor area (from a billing month)',
      'master.area.hint': 'Bills already issued stay as they are; fees from the month given are billed on the new area.',
      'master.area.new': 'New area (m²)',
      'master.area.new_placeholder': 'e.g. 85.50',
      'master.area.from': 'From the bill of month',
      'master.area.review': 'Correct the area…',
      'master.area.confirm': 'Confirm the new area',
      'master.area.done': 'Area corrected: {old} → {new} m², from the bill of {month} (entry {entry})',
      'master.name.title': 'Correct the occupant’s name',
      'master.name.new': 'Correct name',
      'master.name.submit': 'Save the name',
      'master.name.done': 'Name corrected: {old} → {new} (entry {entry})',
      'master.month_placeholder': 'year-month, e.g. 2026-12',
      'master.day_placeholder': 'year-month-day, e.g. 2026-12-01',
      'master.check': 'Check, then confirm',
      'master.confirm': 'Confirm the change',
      'master.cancel': 'Cancel',
      'master.review': 'Check…',
      'master.history': 'Changes',
      'master.no_changes': 'No changes yet.',
      'master.f.household': 'Household',
      'master.f.name': 'Occupant',
      'master.f.area': 'Area now',
      'master.f.area_value': '{area} m²',
      'master.f.nobody': '(not given)',
      'master.c.subject': 'What',
      'master.c.change': 'Change',
      'master.c.from': 'In force',
      'master.c.month': 'from the bill of {month}',
      'master.c.day': 'from {day}',
      'master.c.now': 'from now on',
      'master.col.at': 'Recorded',
      'master.col.who': 'By',
      'master.col.subject': 'What',
      'master.col.field': 'Field',
      'master.col.old': 'Was',
      'master.col.new': 'Now',
      'master.col.from': 'In force from',
      'master.col.entry': 'Entry',
      'master.field.name': 'Name',
      'master.field.household_name': 'Occupant',
      'master.field.area_m2': 'Area',
      'master.field.eligible': 'Spend 50 get 55',
      'master.field.company': 'Company',
      'master.v.true': 'in spend 50 get 55',
      'master.v.false': 'out of spend 50 get 55',
      'master.v.area': '{area} m²',
      'master.v.none': '—',
      'master.who': '{label} ({role})',
      'master.s.all': 'All',
      'master.s.compound': 'Compound',
      'master.s.household': 'Household',
      'master.s.company': 'Company',
      'master.s.cooperative': 'Cooperative',
      'master.s.shop': 'Shop',
      'master.a.title': 'Admin · compound master data',
      'master.a.hint': 'Shown to the admin only. A household’s area and name are corrected after finding it on the household desk above.',
      'master.a.history': 'All master data changes',
      'master.a.subject': 'Kind',
      'master.a.code': 'Code',
      'master.a.show': 'Show',
      'master.a.done': 'Changed: {subject} {field}: {old} → {new}, {from} (entry {entry})',
      'master.compound': 'Compound code',
      'master.elig.title': 'Into or out of spend 50 get 55 (from a day)',
      'master.elig.value': 'From that day',
      'master.elig.from': 'In force from',
      'master.move.title': 'Move the compound to another company (from a month)',
      'master.move.company': 'New company’s code',
      'master.move.from': 'The new company bills from month',
      'master.rename.title': 'Correct the compound’s name',
      'master.rename.name': 'Correct name',
      'problem.master_area': 'An area is a number above zero with at most two decimals, e.g. 85.50',
      'problem.master_month': 'Enter a month as year-month, e.g. 2026-12',
      'problem.master_day': 'Enter a day as year-month-day, e.g. 2026-12-01',
      'problem.master_empty': 'Fill this in',
      'problem.master_same': 'That is what it is now; nothing to correct',
      'problem.master_from_month': 'Not from that month: it is billed or closed already (bills issued stay as they are), or it comes before a change already recorded. Choose a later month',
      'problem.master_from_day': 'Not from that day: its month is closed, or it comes before a change already recorded. Choose a later day',
      'problem.master_value': 'That value cannot be used',
      'problem.master_no_company': 'No such company',
      'problem.master_no_code': 'No such code',
    },
  });

  const MONTH = /^\d{4}-(0[1-9]|1[0-2])$/;
  const DAY = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/;
  const AREA = /^\d{1,7}(\.\d{1,2})?$/;

  const state = {
    role: null,
    household: null,
    householdHistory: [],
    area: null, // the confirm step's request
    areaDone: null,
    nameDone: null,
    admin: null, // {form, body}
    adminDone: null,
    history: [],
  };
  let areaAttempt = new HX.Attempt();
  let nameAttempt = new HX.Attempt();
  let adminAttempt = new HX.Attempt();

  // ---- words ------------------------------------------------------------------------------

  function fieldName(r) {
    if (r.field === 'name' && r.subject === 'household') return t('master.field.household_name');
    return t('master.field.' + r.field);
  }

  function valueText(field, v) {
    if (v === null || v === undefined || v === '') return t('master.v.none');
    if (field === 'eligible') return t('master.v.' + v);
    if (field === 'area_m2') return t('master.v.area', { area: v });
    return v;
  }

  // In force from: a month's first day for a billing month, a day for eligibility, the day it
  // was made for a name.
  function fromText(field, day) {
    if (field === 'area_m2' || field === 'company') return t('master.c.month', { month: String(day).slice(0, 7) });
    if (field === 'eligible') return t('master.c.day', { day });
    return t('master.c.now');
  }

  // RFC 3339 as the office's clock reads it (Asia/Shanghai): 2026-11-20 14:03.
  function when(at) {
    const d = new Date(at);
    if (Number.isNaN(d.getTime())) return at;
    const parts = new Intl.DateTimeFormat('en-CA', {
      timeZone: 'Asia/Shanghai', year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', hour12: false,
    }).formatToParts(d).reduce((o, p) => Object.assign(o, { [p.type]: p.value }), {});
    return `${parts.year}-${parts.month}-${parts.day} ${parts.hour === '24' ? '00' : parts.hour}:${parts.minute}`;
  }

  // Who: the staff token's label (a person's name) with the role, else the role alone.
  function who(r) {
    const role = r.actor_role ? t('role.' + r.actor_role) : '';
    if (r.actor_label) return role ? t('master.who', { role, label: r.actor_label }) : r.actor_label;
    return role || t('master.v.none');
  }

  // A refusal of POST /v1/master-changes in words for the form's field.
  function problemFor(problem, kind) {
    if (!problem || problem.network) return problem;
    const detail = problem.detail || '';
    if (problem.code === 'invalid_input' && problem.field === 'effective_from') {
      return Object.assign({}, problem, { code: kind === 'day' ? 'master_from_day' : 'master_from_month' });
    }
    if (problem.code === 'invalid_input' && problem.field === 'value') {
      const same = /already/.test(detail);
      return Object.assign({}, problem, { code: same ? 'master_same' : kind === 'area' ? 'master_area' : 'master_value' });
    }
    if (problem.code === 'not_found' && problem.field === 'value') {
      return Object.assign({}, problem, { code: 'master_no_company' });
    }
    if (problem.code === 'not_found' && problem.field === 'code') {
      return Object.assign({}, problem, { code: 'master_no_code' });
    }
    return problem;
  }

  // ---- the history table ------------------------------------------------------------------

  function historyTable(table, rows, withSubject) {
    const head = el('tr', null,
      el('th', { scope: 'col' }, t('master.col.at')),
      el('th', { scope: 'col' }, t('master.col.who')),
      withSubject ? el('th', { scope: 'col' }, t('master.col.subject')) : null,
      el('th', { scope: 'col' }, t('master.col.field')),
      el('th', { scope: 'col' }, t('master.col.old')),
      el('th', { scope: 'col' }, t('master.col.new')),
      el('th', { scope: 'col' }, t('master.col.from')),
      el('th', { scope: 'col', class: 'num' }, t('master.col.entry')));
    // Newest first: the change just made is on top.
    const body = rows.slice().reverse().map((r) => el('tr', { id: `${table.id}-${r.id}` },
      el('td', { class: 'at' }, when(r.recorded_at)),
      el('td', { class: 'who' }, who(r)),
      withSubject ? el('td', { class: 'subject' }, `${t('master.s.' + r.subject)} ${r.code}`) : null,
      el('td', { class: 'field' }, fieldName(r)),
      el('td', { class: 'old' }, valueText(r.field, r.old)),
      el('td', { class: 'new' }, valueText(r.field, r.new)),
      el('td', { class: 'from' }, String(r.effective_from)),
      el('td', { class: 'num entry' }, String(r.entry))));
    table.replaceChildren(el('thead', null, head), el('tbody', null, ...body));
    show(table, rows.length > 0);
  }

  // ---- the household (found on the desk) ----------------------------------------------------

  function renderHousehold() {
    const h = state.household;
    show($('#master-household'), Boolean(h));
    if (!h) return;
    const row = (id, label, value) => [el('dt', {}, t(label)), el('dd', { id: 'master-h-' + id }, value)];
    $('#master-h-facts').replaceChildren(...[
      row('code', 'master.f.household', h.household),
      row('name', 'master.f.name', h.name || t('master.f.nobody')),
      row('area', 'master.f.area', t('master.f.area_value', { area: h.area_m2 })),
    ].flat());
    const a = state.area;
    show($('#area-confirm'), Boolean(a));
    if (a) {
      const line = (id, label, value) => [el('dt', {}, t(label)), el('dd', { id: 'area-f-' + id }, value)];
      $('#area-figures').replaceChildren(...[
        line('household', 'master.f.household', h.household),
        line('change', 'master.c.change', `${t('master.v.area', { area: h.area_m2 })} → ${t('master.v.area', { area: a.value })}`),
        line('from', 'master.c.from', t('master.c.month', { month: a.effective_from })),
      ].flat());
    }
    const d = state.areaDone;
    show($('#area-done'), Boolean(d));
    if (d) {
      $('#area-done').textContent = t('master.area.done',
        { old: d.old, new: d.new, month: String(d.effective_from).slice(0, 7), entry: d.entry });
    }
    const n = state.nameDone;
    show($('#name-done'), Boolean(n));
    if (n) {
      $('#name-done').textContent = t('master.name.done',
        { old: n.old || t('master.f.nobody'), new: n.new, entry: n.entry });
    }
    historyTable($('#master-h-history'), state.householdHistory, false);
    show($('#master-h-empty'), state.householdHistory.length === 0);
  }

  async function loadHousehold(code) {
    const path = '/v1/households/' + encodeURIComponent(code);
    const [h, changes] = await Promise.all([
      HX.api('GET', path),
      HX.api('GET', `/v1/master-changes?subject=household&code=${encodeURIComponent(code)}`),
    ]);
    if (!h.ok) {
      state.household = null;
    } else {
      state.household = h.data;
      state.householdHistory = changes.ok ? changes.data : [];
    }
    renderHousehold();
  }

  function resetHousehold() {
    state.area = null;
    state.areaDone = null;
    state.nameDone = null;
    state.householdHistory = [];
    areaAttempt = new HX.Attempt();
    nameAttempt = new HX.Attempt();
    for (const [form, box] of [['#master-area', '#area-problem'], ['#master-name', '#name-problem']]) {
      $(form).reset();
      HX.showProblem($(box), null, $(form));
    }
  }

  function reviewArea(ev) {
    ev.preventDefault();
    const h = state.household;
    if (!h) return;
    const form = $('#master-area');
    const box = $('#area-problem');
    const value = $('#area-new').value.trim();
    const month = $('#area-from').value.trim();
    state.area = null;
    state.areaDone = null;
    if (!AREA.test(value) || HX.fen(value) === null || HX.fen(value) <= 0n) {
      HX.showProblem(box, { code: 'master_area', field: 'value' }, form);
    } else if (!MONTH.test(month)) {
      HX.showProblem(box, { code: 'master_month', field: 'effective_from' }, form);
    } else if (HX.fen(value) === HX.fen(h.area_m2)) {
      HX.showProblem(box, { code: 'master_same', field: 'value' }, form);
    } else {
      HX.showProblem(box, null, form);
      state.area = { value, effective_from: month };
      areaAttempt = new HX.Attempt();
    }
    renderHousehold();
  }

  async function confirmArea() {
    const h = state.household;
    const a = state.area;
    if (!h || !a || areaAttempt.busy) return;
    const button = $('#area-go');
    button.disabled = true;
    const r = await areaAttempt.post('/v1/master-changes', {
      subject: 'household', code: h.household, field: 'area_m2', value: a.value, effective_from: a.effective_from,
    });
    button.disabled = false;
    const form = $('#master-area');
    if (!r.ok) {
      HX.showProblem($('#area-problem'), problemFor(r.problem, 'area'), form);
      state.area = null;
      renderHousehold();
      return;
    }
    HX.showProblem($('#area-problem'), null, form);
    form.reset();
    state.area = null;
    state.areaDone = r.data;
    await loadHousehold(h.household);
  }

  async function saveName(ev) {
    ev.preventDefault();
    const h = state.household;
    if (!h || nameAttempt.busy) return;
    const form = $('#master-name');
    const box = $('#name-problem');
    const value = $('#name-new').value.trim();
    state.nameDone = null;
    if (!value) {
      HX.showProblem(box, { code: 'master_empty', field: 'value' }, form);
      renderHousehold();
      return;
    }
    const button = $('#name-submit');
    button.disabled = true;
    const r = await nameAttempt.post('/v1/master-changes', {
      subject: 'household', code: h.household, field: 'name', value,
    });
    button.disabled = false;
    if (!r.ok) {
      HX.showProblem(box, problemFor(r.problem, 'name'), form);
      renderHousehold();
      return;
    }
    HX.showProblem(box, null, form);
    form.reset();
    nameAttempt = new HX.Attempt();
    state.nameDone = r.data;
    await loadHousehold(h.household);
  }

  // ---- the admin's compound changes and the full history ----------------------------------

  const ADMIN_FORMS = {
    'compound-eligible': { field: 'eligible', from: 'day' },
    'compound-move': { field: 'company', from: 'month' },
    'compound-rename': { field: 'name', from: null },
  };

  function renderAdmin() {
    const on = state.role === 'admin';
    show($('#master-admin'), on);
    if (!on) return;
    const a = state.admin;
    show($('#admin-confirm'), Boolean(a));
    if (a) {
      const b = a.body;
      const line = (id, label, value) => [el('dt', {}, t(label)), el('dd', { id: 'admin-f-' + id }, value)];
      $('#admin-figures').replaceChildren(...[
        line('subject', 'master.c.subject', `${t('master.s.compound')} ${b.code}`),
        line('change', 'master.c.change', `${fieldName(b)} → ${valueText(b.field, b.value)}`),
        line('from', 'master.c.from', b.effective_from ? fromText(b.field, b.effective_from) : t('master.c.now')),
      ].flat());
    }
    const d = state.adminDone;
    show($('#admin-done'), Boolean(d));
    if (d) {
      $('#admin-done').textContent = t('master.a.done', {
        subject: `${t('master.s.' + d.subject)} ${d.code}`, field: fieldName(d),
        old: valueText(d.field, d.old), new: valueText(d.field, d.new),
        from: fromText(d.field, d.effective_from), entry: d.entry,
      });
    }
    historyTable($('#master-a-history'), state.history, true);
    show($('#master-a-empty'), state.history.length === 0);
  }

  async function loadHistory() {
    if (state.role !== 'admin') return;
    const q = new URLSearchParams();
    const subject = $('#history-subject').value;
    const code = $('#history-code').value.trim().toUpperCase();
    if (subject) q.set('subject', subject);
    if (code) q.set('code', code);
    const query = q.toString();
    const r = await HX.api('GET', '/v1/master-changes' + (query ? '?' + query : ''));
    HX.showProblem($('#history-problem'), r.ok ? null : r.problem, $('#admin-filter'));
    state.history = r.ok ? r.data : [];
    renderAdmin();
  }

  function reviewAdmin(ev) {
    ev.preventDefault();
    const form = ev.target;
    const spec = ADMIN_FORMS[form.id];
    const box = form.querySelector('.problem');
    const code = form.elements.code.value.trim().toUpperCase();
    let value = form.elements.value.value.trim();
    if (spec.field === 'company') value = value.toUpperCase();
    const from = form.elements.effective_from ? form.elements.effective_from.value.trim() : null;
    state.admin = null;
    state.adminDone = null;
    for (const f of Object.keys(ADMIN_FORMS)) {
      if (f !== form.id) HX.showProblem($('#' + f + ' .problem'), null, $('#' + f));
    }
    if (!code) HX.showProblem(box, { code: 'master_empty', field: 'code' }, form);
    else if (!value) HX.showProblem(box, { code: 'master_empty', field: 'value' }, form);
    else if (spec.from === 'day' && !DAY.test(from)) HX.showProblem(box, { code: 'master_day', field: 'effective_from' }, form);
    else if (spec.from === 'month' && !MONTH.test(from)) HX.showProblem(box, { code: 'master_month', field: 'effective_from' }, form);
    else {
      HX.showProblem(box, null, form);
      const body = { subject: 'compound', code, field: spec.field, value };
      if (spec.from) body.effective_from = from;
      state.admin = { form: form.id, body, kind: spec.from };
      adminAttempt = new HX.Attempt();
    }
    renderAdmin();
  }

  async function confirmAdmin() {
    const a = state.admin;
    if (!a || adminAttempt.busy) return;
    const button = $('#admin-go');
    button.disabled = true;
    const r = await adminAttempt.post('/v1/master-changes', a.body);
    button.disabled = false;
    const form = $('#' + a.form);
    state.admin = null;
    if (!r.ok) {
      HX.showProblem(form.querySelector('.problem'), problemFor(r.problem, a.kind), form);
      renderAdmin();
      return;
    }
    HX.showProblem(form.querySelector('.problem'), null, form);
    form.reset();
    state.adminDone = r.data;
    await loadHistory();
  }

  // ---- wiring -------------------------------------------------------------------------------

  // The page shows #office once signed in (office.js boots the session): then this section
  // learns the role, and the admin's part loads.
  async function signedIn() {
    if ($('#office').hidden) {
      state.role = null;
      state.household = null;
      renderHousehold();
      renderAdmin();
      return;
    }
    const s = await HX.session();
    state.role = s ? s.role : null;
    renderAdmin();
    if (state.role === 'admin') loadHistory();
  }

  document.addEventListener('DOMContentLoaded', () => {
    // The household desk's search finds the household for this section too.
    $('#desk-find').addEventListener('submit', () => {
      const code = $('#desk-household').value.trim().toUpperCase();
      resetHousehold();
      state.household = null;
      renderHousehold();
      if (code) loadHousehold(code);
    });
    $('#master-area').addEventListener('submit', reviewArea);
    $('#area-go').addEventListener('click', confirmArea);
    $('#area-cancel').addEventListener('click', () => {
      state.area = null;
      renderHousehold();
    });
    $('#master-name').addEventListener('submit', saveName);
    for (const id of Object.keys(ADMIN_FORMS)) $('#' + id).addEventListener('submit', reviewAdmin);
    $('#admin-go').addEventListener('click', confirmAdmin);
    $('#admin-cancel').addEventListener('click', () => {
      state.admin = null;
      renderAdmin();
    });
    $('#admin-filter').addEventListener('submit', (ev) => {
      ev.preventDefault();
      loadHistory();
    });
    new MutationObserver(signedIn).observe($('#office'), { attributes: true, attributeFilter: ['hidden'] });
    // A move-out at the desk renames the household: show the new name and its history.
    new MutationObserver(() => {
      if (!$('#move-receipt').hidden && state.household) loadHousehold(state.household.household);
    }).observe($('#move-receipt'), { attributes: true, attributeFilter: ['hidden'] });
    document.addEventListener('hx:lang', () => {
      renderHousehold();
      renderAdmin();
    });
  });
})();
