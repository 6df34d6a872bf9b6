// Small DOM helpers shared by the console's parts. User content only ever goes in as text
// (textContent / text nodes), never as HTML.

let strings = {};
let language = 'vi';
// The locale dates and times are written in: the console's language, with a region where the
// bare code would pick another country's conventions (a language file needs no entry here).
const LOCALES = { vi: 'vi-VN', en: 'en-GB', zh: 'zh-CN', 'zh-Hant': 'zh-TW' };
const locale = () => LOCALES[language] || language;

export function setLanguage(lang, dict) {
  language = lang;
  strings = dict || {};
}

export function t(key, vars) {
  const s = Object.prototype.hasOwnProperty.call(strings, key) ? strings[key] : key;
  // one pass (as core/i18n.py's fill): a value holding "{by}" (someone's text) stays as it is
  const v = vars || {};
  return s.replace(/\{([^{}]+)\}/g,
    (m, k) => (Object.prototype.hasOwnProperty.call(v, k) ? String(v[k]) : m));
}

// t() when the console has a text for ``key``, else ``fallback`` (a server's own words)
export function tr(key, vars, fallback) {
  return Object.prototype.hasOwnProperty.call(strings, key) ? t(key, vars) : (fallback || '');
}

// el('li', {class: 'msg', title: 'x', onclick: fn, dataset: {id: 1}}, 'text', childNode)
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else if (v === true) node.setAttribute(k, '');
    else node.setAttribute(k, String(v));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(node, c);
    else node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

export const $ = (sel, root) => (root || document).querySelector(sel);

export function fmtTime(ms) {
  if (!ms) return '';
  const d = new Date(ms);
  const sameDay = d.toDateString() === new Date().toDateString();
  const opts = sameDay ? { hour: '2-digit', minute: '2-digit' }
    : { day: '2-digit', month: '2-digit', hour: '2-digit', minute: '2-digit' };
  return new Intl.DateTimeFormat(locale(), opts).format(d);
}

export function fmtFull(ms) {
  if (!ms) return '';
  return new Intl.DateTimeFormat(locale(),
    { dateStyle: 'medium', timeStyle: 'medium' }).format(new Date(ms));
}

// "in 5 min" / "3 h ago"
export function fmtRelative(ms) {
  const rtf = new Intl.RelativeTimeFormat(language, { numeric: 'auto' });
  const s = Math.round((ms - Date.now()) / 1000);
  const a = Math.abs(s);
  if (a < 60) return rtf.format(s, 'second');
  if (a < 3600) return rtf.format(Math.round(s / 60), 'minute');
  if (a < 86400) return rtf.format(Math.round(s / 3600), 'hour');
  return rtf.format(Math.round(s / 86400), 'day');
}

// A random UUID v4; crypto.randomUUID exists only in secure contexts (HTTPS, localhost).
export function uuid() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function toast(text, kind, onclick) {
  const box = document.getElementById('toasts');
  const node = el('div', { class: 'toast ' + (kind || 'info'), role: 'status' }, text);
  if (onclick) {
    node.classList.add('clickable');
    node.addEventListener('click', () => { onclick(); node.remove(); });
  }
  // never over the composer's buttons: a visible composer lifts the toasts above its top edge
  const composer = [...document.querySelectorAll('.composer')].find((c) => c.offsetParent);
  box.style.bottom = composer
    ? `${Math.max(16, window.innerHeight - composer.getBoundingClientRect().top + 8)}px` : '';
  box.append(node);
  setTimeout(() => node.remove(), kind === 'error' ? 8000 : 5000);
}

// A modal form: fields [{name, label, type: text|textarea|select|datetime, options, value,
// required}] -> Promise of {name: value} or null when cancelled.
export function ask(title, fields, okLabel) {
  return new Promise((resolve) => {
    const dlg = document.getElementById('ask');
    const form = el('form', { method: 'dialog' });
    dlg.replaceChildren(form);
    form.append(el('h2', { text: title }));
    const inputs = {};
    for (const f of fields) {
      let input;
      if (f.type === 'select') {
        input = el('select', { name: f.name },
          f.options.map((o) => el('option', { value: o.value, disabled: o.disabled, text: o.label })));
        if (f.value !== undefined) input.value = f.value;
      } else if (f.type === 'textarea') {
        input = el('textarea', { name: f.name, rows: 3, required: f.required });
        input.value = f.value || '';
      } else {
        input = el('input', { name: f.name, type: f.type === 'datetime' ? 'datetime-local' : 'text',
          required: f.required });
        input.value = f.value || '';
      }
      inputs[f.name] = input;
      form.append(el('label', { class: 'field' }, el('span', { text: f.label }), input));
    }
    const cancel = el('button', { type: 'button', class: 'secondary', text: t('cancel') });
    const ok = el('button', { type: 'submit', class: 'primary', text: okLabel || t('ok') });
    form.append(el('div', { class: 'dialog-buttons' }, cancel, ok));
    let done = false;
    const finish = (value) => {
      if (done) return;
      done = true;
      dlg.close();
      resolve(value);
    };
    cancel.addEventListener('click', () => finish(null));
    dlg.addEventListener('close', () => finish(null), { once: true });
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const out = {};
      for (const [k, input] of Object.entries(inputs)) out[k] = input.value;
      finish(out);
    });
    dlg.showModal();
    const first = form.querySelector('input, select, textarea');
    if (first) first.focus();
  });
}

export function isTyping(target) {
  const tag = (target && target.tagName) || '';
  return tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT' || (target && target.isContentEditable);
}
