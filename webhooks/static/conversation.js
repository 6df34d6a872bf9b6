// The open conversation: header with actions, its timeline or the customer's on every channel
// ("All channels": GET /customers/{id}/timeline), and the reply / note composer (channel picker, canned replies, @mentions).
import { ApiError, get, has, post, query, upload } from './api.js';
import { TICK_ICONS, icon } from './icons.js';
import { createLabels } from './labels.js';
import { $, ask, clear, el, fmtFull, fmtTime, t, tr, uuid } from './ui.js';

const SAFE_URL = /^https?:\/\//i;
// the status each of the sender's reasons goes with (core/pipeline/outbound.py: sw)
const WHY_STATUS = { retrying: 'queued', uncertain_retry: 'queued', uncertain: 'uncertain',
  failed_after_unanswered: 'uncertain', failed: 'failed', sent_after_unanswered: 'sent' };
// feed events whose change wrote a system line into the timeline
const LINES = new Set(['conversation.assigned', 'conversation.escalated', 'conversation.deescalated',
  'conversation.resolved', 'conversation.open', 'conversation.priority_changed', 'conversation.tagged',
  'conversation.untagged']);

function localStore(key) {
  try { return localStorage.getItem(key); } catch { return null; }
}

export function createConversation(ctx) {
  // a label changed: the inbox, the header (and the customer panel's tags), the line it wrote
  const labels = createLabels({ ...ctx, changed: () => {
    ctx.changed();
    loadTimeline(false, true);
    refreshHeader().then(() => { if (conv) ctx.customer.load(conv.customer_id, conv); });
  } });
  const view = $('#conv-view');
  const empty = $('#conv-empty');
  const timeline = $('#timeline');
  const olderBtn = $('#older');
  const draft = $('#draft');
  const picker = $('#channel-pick');
  const sendBtn = $('#send');
  const composerError = $('#composer-error');
  const mentionList = $('#mention-list');
  const cannedPanel = $('#canned-panel');
  let conv = null;
  let intakeInfo = null; // what the bot's intake collected (GET /conversations/{id} `intake`)
  let customerName = '';
  let msgs = [];          // newest first, as the API gives them
  let olderCursor = null;
  // 'conversation': this conversation's timeline; 'all': the customer's on every channel
  // (GET /customers/{id}/timeline), the agent's last choice remembered in this browser
  const canMerge = has('GET', '/customers/{}/timeline');
  let scope = canMerge && localStore('td.scope') === 'all' ? 'all' : 'conversation';
  let mode = 'reply';
  let sending = false;
  let currentKey = null;   // the Idempotency-Key of the draft being written
  const drafts = new Map(); // conversation id -> {text, key, mode}: a draft survives switching

  // -- opening and refreshing ---------------------------------------------------------------
  async function open(id) {
    saveDraft();
    let c;
    try {
      c = await get('/conversations/' + id);
    } catch (e) {
      ctx.error(e);
      return;
    }
    conv = c;
    msgs = [];
    olderCursor = null;
    customerName = '';
    empty.hidden = true;
    view.hidden = false;
    restoreDraft();
    renderHeader();
    clear(timeline);
    ctx.customer.load(c.customer_id, c).then((cust) => {
      customerName = (cust && cust.name) || '';
      renderHeader();
      renderTimeline(false);
    });
    await Promise.all([loadTimeline(false, true), loadChannels()]);
    markRead();
  }

  async function refreshHeader() {
    if (!conv) return;
    try {
      conv = await get('/conversations/' + conv.id);
      renderHeader();
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) close(); // no longer ours to see
    }
  }

  function close() {
    conv = null;
    view.hidden = true;
    empty.hidden = false;
    ctx.customer.clear();
  }

  async function loadTimeline(older, scrollDown) {
    if (!conv) return;
    const id = conv.id;
    const asked = scope;
    const path = asked === 'all' ? `/customers/${encodeURIComponent(conv.customer_id)}/timeline`
      : `/conversations/${id}/messages`;
    let page;
    try {
      page = await get(path + query({ limit: 50, before: older ? olderCursor : undefined }));
    } catch (e) {
      ctx.error(e);
      return;
    }
    if (!conv || conv.id !== id || scope !== asked) return;
    // (message ids are the hub's, unique across conversations; the key says both anyway)
    const key = (m) => `${m.conversation_id || id}:${m.id}`;
    if (older) {
      const had = new Set(msgs.map(key));
      msgs = msgs.concat(page.items.filter((m) => !had.has(key(m))));
      olderCursor = page.next_cursor;
    } else {
      // The newest page replaces what we had of it; anything else we hold is older.
      const fresh = new Set(page.items.map(key));
      msgs = page.items.concat(msgs.filter((m) => !fresh.has(key(m))));
      if (olderCursor === null || scrollDown) olderCursor = page.next_cursor;
    }
    renderTimeline(scrollDown);
  }

  async function loadChannels() {
    clear(picker);
    if (!conv) return;
    let items = [];
    try {
      items = (await get(`/conversations/${conv.id}/channels`)).items;
    } catch (e) {
      if (!(e instanceof ApiError && e.missingRoute)) ctx.error(e);
    }
    for (const c of items) {
      const label = c.reachable ? `${c.channel_id} · ${c.address}`
        : `${c.channel_id} · ${c.address} — ${reachReason(c)}`;
      picker.append(el('option', { value: c.channel_id, disabled: !c.reachable,
        title: c.reachable ? '' : reachReason(c), text: label }));
    }
    // The conversation's own channel while it can send, else the first one that can (the
    // server lists reachable ones first); never another conversation's channel by recency.
    const own = items.find((c) => c.channel_id === conv.channel_id);
    const chosen = own && own.reachable ? own : items.find((c) => c.reachable) || null;
    picker.hidden = items.length === 0;
    if (chosen !== null) picker.value = chosen.channel_id;
    picker.dataset.none = items.length > 0 && chosen === null ? '1' : '';
    // say why the conversation's own channel is not the one chosen
    $('#channel-why').textContent = own && !own.reachable
      ? t('reach.own_unreachable', { channel: own.channel_id, reason: reachReason(own) }) : '';
    updateComposer();
  }

  // why a channel cannot take a reply now, in the console's language when the server says
  // which case it is (reason_code), else its own words
  function reachReason(c) {
    return tr('reach.' + c.reason_code, c.reason_detail, c.reason);
  }

  // -- rendering ------------------------------------------------------------------------------
  function renderHeader() {
    if (!conv) return;
    $('#conv-title').textContent = customerName || t('customer.unnamed', { id: conv.customer_id });
    const meta = clear($('#conv-meta'));
    meta.append(
      el('span', { class: 'conv-id', text: '#' + conv.id }),
      el('span', { class: 'status status-' + conv.status, text: t('status.' + conv.status) }),
      el('span', { class: 'queue', title: conv.queue, text: ctx.queueLabel(conv.queue) }),
      ...(teamOf(conv.queue) ? [el('span', { class: 'tier', title: teamOf(conv.queue).name,
        text: t('tier.badge', { n: teamOf(conv.queue).tier }) })] : []),
      el('span', { class: 'assignee', text: conv.assignee ? '@' + conv.assignee : t('inbox.unassigned') }),
      // (DOM append writes null as the text "null": leave the badge out instead)
      ...(conv.priority ? [el('span', { class: 'priority', text: 'P' + conv.priority })] : []));
    // (action responses carry no `intake`: keep the one the conversation's GET gave)
    if ('intake' in conv) intakeInfo = conv.intake;
    if (intakeInfo) meta.append(intakeBlock(intakeInfo));
    labels.show(conv); // the tags as chips, hand labels apart (labels.js)
    const resolved = conv.status === 'resolved';
    const team = teamOf(conv.queue);
    const show = {
      claim: has('POST', '/conversations/{}/claim') && !resolved && conv.assignee !== ctx.me.name,
      assign: has('POST', '/conversations/{}/assign'),
      // (the server has the last word: 409 at the top or the bottom of the ladder)
      escalate: has('POST', '/conversations/{}/escalate') && !resolved
        && (!team || team.escalates_to.length > 0),
      deescalate: has('POST', '/conversations/{}/deescalate') && !resolved
        && (conv.escalated || !team || team.tier > 1),
      'raise-priority': has('POST', '/conversations/{}/raise-priority') && !resolved,
      snooze: has('POST', '/conversations/{}/snooze') && !resolved,
      resolve: has('POST', '/conversations/{}/resolve') && !resolved,
      reopen: has('POST', '/conversations/{}/reopen') && resolved,
    };
    for (const b of document.querySelectorAll('#conv-actions [data-action]')) {
      b.hidden = !show[b.dataset.action];
    }
  }

  // The intake's answers at the top: "Intake ✓ order_id 123456 · phone +8491… · amount …"
  function intakeBlock(ik) {
    const mark = { complete: '✓', skipped: tr('intake.skipped', null, 'skipped'),
      taken: tr('intake.taken', null, 'stopped'), asking: tr('intake.asking', null, 'asking…') };
    const parts = ik.fields.filter((f) => f.value !== null).map((f) => f.name + ' '
      + (f.kind === 'image' ? tr('intake.image', null, '(image in the timeline)') : f.value));
    const missing = ik.fields.filter((f) => f.value === null && f.required).map((f) => f.name);
    return el('span', { class: 'intake', title: missing.length
      ? tr('intake.missing', null, 'missing') + ': ' + missing.join(', ') : '',
    text: `${tr('intake.title', null, 'Intake')} ${mark[ik.state] || ''} ${parts.join(' · ')}` });
  }

  function teamOf(queue) {
    return (ctx.teams || []).find((x) => (x.queues || []).includes(queue)) || null;
  }

  // the switch above the timeline: this conversation / all the customer's channels
  function setScope(s) {
    if (!canMerge) return;
    scope = s;
    try { localStorage.setItem('td.scope', s); } catch { /* this page only */ }
    showScope();
    msgs = [];
    olderCursor = null;
    clear(timeline);
    loadTimeline(false, true);
  }

  function showScope() {
    $('#timeline-bar').hidden = !canMerge;
    $('#scope-conv').setAttribute('aria-pressed', scope === 'conversation' ? 'true' : 'false');
    $('#scope-all').setAttribute('aria-pressed', scope === 'all' ? 'true' : 'false');
    timeline.dataset.scope = scope;
  }

  function renderTimeline(scrollDown) {
    const box = timeline.parentElement;
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    clear(timeline);
    for (let i = msgs.length - 1; i >= 0; i--) timeline.append(message(msgs[i]));
    olderBtn.hidden = !olderCursor;
    if (scrollDown || atBottom) box.scrollTop = box.scrollHeight;
  }

  function author(m) {
    const a = m.author || {};
    if (m.direction === 'in') return customerName || t('author.customer');
    if (a.kind === 'agent') return a.id || t('author.agent');
    return t('author.' + (a.kind || 'system'));
  }

  function message(m) {
    if (m.direction === 'internal' && m.kind === 'system') return systemLine(m);
    const note = m.direction === 'internal' || m.kind === 'note';
    const cls = note ? 'note' : (m.direction === 'in' ? 'in' : 'out');
    return el('li', { class: `msg ${cls} kind-${m.kind}`, dataset: { id: m.id, status: m.status } },
      el('div', { class: 'msg-head' },
        note ? el('span', { class: 'badge note-badge', text: t('msg.note') })
          : el('span', { class: 'badge channel', text: m.channel_id }),
        el('span', { class: 'msg-author', text: author(m) }),
        el('time', { class: 'msg-time', title: fmtFull(m.platform_ts || m.received_ts),
          text: fmtTime(m.platform_ts || m.received_ts) }),
        fromOther(m),
        m.edited_ts ? el('span', { class: 'edited', title: fmtFull(m.edited_ts), text: t('msg.edited') }) : null),
      m.subject ? el('div', { class: 'msg-subject', text: m.subject }) : null,
      m.text ? el('div', { class: 'msg-text', text: m.text }) : null,
      !m.text && !m.attachments.length && m.kind !== 'message'
        ? el('div', { class: 'msg-kind', text: t('kind.' + m.kind) }) : null,
      m.attachments.length ? el('div', { class: 'attachments' },
        m.attachments.map((a, n) => attachment(m, a, n))) : null,
      el('div', { class: 'msg-foot' }, reactions(m.reactions), m.direction === 'out' ? tick(m) : null));
  }

  // In the customer's timeline, a message of another of their conversations: "#12", opening it
  function fromOther(m) {
    if (!conv || !m.conversation_id || String(m.conversation_id) === String(conv.id)) return null;
    return el('button', { type: 'button', class: 'link msg-conv', text: '#' + m.conversation_id,
      title: t('scope.open', { id: m.conversation_id }), onclick: () => ctx.open(String(m.conversation_id)) });
  }

  // who did what (a claim, a transfer, an escalation): one quiet line across the timeline
  function systemLine(m) {
    const ts = m.platform_ts || m.received_ts;
    return el('li', { class: 'msg system', dataset: { id: m.id } },
      el('span', { class: 'system-text', text: systemText(m) }),
      el('time', { class: 'msg-time', title: fmtFull(ts), text: fmtTime(ts) }));
  }

  // The line in the console's language from what it records (payload: action, queues,
  // people); the person's own words (a reason, a why) follow " — " in the stored text. A line
  // this console does not know is shown as the server wrote it.
  function systemText(m) {
    let p = null;
    try { p = JSON.parse(m.payload || 'null'); } catch { p = null; }
    const text = m.text || '';
    if (!p || !p.action) return text;
    const actor = (m.author && m.author.id) || 'system';
    // a policy acting (policy:sla) or the hub itself, named in words; people by their name
    const by = actor === 'system' || actor.startsWith('policy:') ? tr('actor.' + actor, {}, actor) : actor;
    const cut = text.indexOf(' — ');
    const why = cut >= 0 ? t('line.why', { why: policyWhy(actor, text.slice(cut + 3)) }) : '';
    const team = (id) => ((ctx.teams || []).find((x) => x.id === id) || { name: id }).name;
    let s;
    if (p.action === 'assigned') {
      const vars = { by, new: p.assignee || '', seen: p.previous || '' };
      let k;
      if (p.reason === 'auto') k = 'auto';
      else if (p.reason === 'offline') k = 'offline';
      else if (p.reason === 'claim') k = 'claim';
      else if ((p.assignee || '') === (p.previous || '')) k = 'moved';
      else if (!p.assignee) k = p.previous === by ? 'handed_back' : 'taken_back';
      else if (p.previous) k = 'transferred';
      else k = 'assigned';
      s = t('line.' + k, vars);
      if (p.queue) {
        s += p.team ? t('line.to_team', { team: team(p.team), queue: ctx.queueLabel(p.queue) })
          : t('line.to_queue', { queue: ctx.queueLabel(p.queue) });
      }
    } else if (p.action === 'escalated' || p.action === 'deescalated') {
      s = t('line.' + p.action, { by, from: ctx.queueLabel(p.from_queue), to: ctx.queueLabel(p.to_queue),
        from_tier: p.from_tier, to_tier: p.to_tier });
      if (p.released) s += t('line.released', { who: p.released });
    } else if (p.action === 'priority_raised') {
      s = t('line.priority_raised', { by, priority: (p.priority || [])[1] });
    } else if (p.action === 'resolved' || p.action === 'reopened') {
      s = t('line.' + p.action, { by });
    } else if (p.action === 'labeled' || p.action === 'unlabeled') { // by hand (labels.js)
      s = t('line.' + p.action, { by, tag: p.tag });
    } else if (p.action === 'tagged' && p.lookup) { // a lookup's tag_when rule
      s = t('line.lookup_tagged', { lookup: p.lookup, tag: p.tag });
      if (p.canned) s += t('line.lookup_canned', { canned: p.canned });
    } else {
      return text;
    }
    return s + why;
  }

  // A policy's reason is ours, not a person's: "SLA first_response breached"
  // (core/workspace/sla_actions.py) said in the console's language.
  function policyWhy(actor, why) {
    const m = actor === 'policy:sla' && /^SLA (\w+) (warning|breached)$/.exec(why);
    if (!m) return why;
    return tr('sla.why.' + m[2], { target: tr('sla.target.' + m[1], {}, m[1]) }, why);
  }

  // A file in the timeline: stored ones come from the hub (only to those who may see the
  // conversation); images as thumbnails, audio and video with the browser's player, other
  // files as a download with name and size; a location with its coordinates and a map link.
  function attachment(m, a, n) {
    const meta = a.meta || {};
    if (a.kind === 'location' && Number.isFinite(+meta.latitude) && Number.isFinite(+meta.longitude)) {
      const lat = (+meta.latitude).toFixed(5);
      const lon = (+meta.longitude).toFixed(5);
      const map = `https://www.openstreetmap.org/?mlat=${lat}&mlon=${lon}#map=17/${lat}/${lon}`;
      return el('span', { class: 'attachment location' }, icon('pin'),
        ' ' + [meta.title, meta.address].filter(Boolean).concat([`${lat}, ${lon}`]).join(' · ') + ' ',
        el('a', { href: map, target: '_blank', rel: 'noopener noreferrer', text: t('attachment.map') }));
    }
    const label = a.name || t('attachment.' + a.kind);
    const stored = (a.file_id || '').startsWith('blob:');
    const href = stored ? `/api/v1/conversations/${m.conversation_id || conv.id}/messages/${m.id}/attachments/${n}`
      : (SAFE_URL.test(a.url || '') ? a.url : null);
    const mime = a.mime || '';
    // a stored file is what its bytes are (a Telegram video sticker is WebM, not an image)
    const isImage = stored ? mime.startsWith('image/')
      : a.kind === 'image' || a.kind === 'sticker' || mime.startsWith('image/');
    const size = a.size ? ` (${fileSize(a.size)})` : '';
    if (isImage && href) {
      return el('a', { class: 'attachment image', href, target: '_blank', rel: 'noopener noreferrer' },
        el('img', { src: href, alt: label, loading: 'lazy' }));
    }
    if (stored && (['audio', 'voice'].includes(a.kind) || mime.startsWith('audio/'))) {
      return el('span', { class: 'attachment audio' },
        el('audio', { controls: true, preload: 'none', src: href, title: label }),
        el('a', { href: href + '?download=1', download: a.name || '', class: 'muted' }, icon('clip'), size));
    }
    if (stored && (['video', 'video_note', 'animation'].includes(a.kind) || mime.startsWith('video/'))) {
      return el('span', { class: 'attachment video' },
        el('video', { controls: true, preload: 'metadata', src: href, title: label }));
    }
    if (href) {
      return el('a', { class: 'attachment file', href: stored ? href + '?download=1' : href,
        download: stored ? (a.name || '') : null,
        target: stored ? null : '_blank', rel: 'noopener noreferrer' }, icon('clip'), ' ' + label + size);
    }
    const why = meta.fetch_error ? tr('attachment.fetch.' + meta.fetch_error, {}, t('attachment.fetch.failed'))
      : (a.file_id && m.direction === 'in' ? t('attachment.fetching') : t('attachment.not_stored'));
    return el('span', { class: 'attachment missing', title: why }, icon('clip'), ` ${label}${size} · ${why}`);
  }

  function fileSize(n) {
    return n >= 1048576 ? `${(n / 1048576).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1024))} KB`;
  }

  function reactions(r) {
    const counts = {};
    for (const emoji of Object.values(r || {})) counts[emoji] = (counts[emoji] || 0) + 1;
    const keys = Object.keys(counts);
    if (!keys.length) return null;
    return el('span', { class: 'reactions' },
      keys.map((e) => el('span', { class: 'reaction', text: counts[e] > 1 ? `${e} ${counts[e]}` : e })));
  }

  function tick(m) {
    const label = t('status.' + m.status) + (statusReason(m) ? ': ' + statusReason(m) : '');
    return el('span', { class: 'tick-box' },
      el('span', { class: 'tick tick-' + m.status, title: label },
        TICK_ICONS[m.status] ? icon(TICK_ICONS[m.status], label) : null),
      m.status === 'failed' || m.status === 'delayed' || m.status === 'uncertain'
        || (m.status === 'queued' && m.status_why && WHY_STATUS[m.status_why.code] === 'queued')
        ? el('span', { class: 'tick-reason', text: label }) : null);
  }

  // Why a reply is where it is: the sender's reason in the console's language when it is the
  // current one (status_why matches the status), else the words it came with (a platform's).
  function statusReason(m) {
    const why = m.status_why;
    if (why && WHY_STATUS[why.code] === m.status) {
      return tr('why.' + why.code, { ...why, detail: why.detail || '' }, m.status_reason || '');
    }
    return m.status_reason || '';
  }

  // -- composer -------------------------------------------------------------------------------
  // Files to send with the reply (the reply box's "Attach"): checked here against the hub's
  // request limit, then by the server against what the channel takes (reason said if not).
  const MAX_UPLOAD = 10 * 1024 * 1024;
  const attachInput = $('#attach-input');
  let files = [];

  function setFiles(list) {
    files = list;
    currentKey = null; // other files: another create
    const box = $('#attach-list');
    clear(box);
    files.forEach((f, i) => box.append(el('span', { class: 'chip', title: fileSize(f.size) },
      f.name + ' ',
      el('button', { type: 'button', class: 'link', 'aria-label': t('composer.attach_remove'),
        text: '×', onclick: () => setFiles(files.filter((_, j) => j !== i)) }))));
  }

  function saveDraft() {
    if (conv) drafts.set(conv.id, { text: draft.value, key: currentKey, mode });
  }

  function restoreDraft() {
    const d = drafts.get(conv.id) || { text: '', key: null, mode: 'reply' };
    draft.value = d.text;
    setMode(d.mode, false);
    setFiles([]);
    currentKey = d.key;
    composerError.textContent = '';
    cannedPanel.hidden = true;
    mentionList.hidden = true;
  }

  function setMode(m, focus = true) {
    if (m === 'note' && !has('POST', '/conversations/{}/notes')) m = 'reply';
    if (m !== mode) currentKey = null; // a note and a reply are different creates
    if (m !== mode) hidePick();
    mode = m;
    $('#composer').classList.toggle('note-mode', m === 'note');
    for (const b of document.querySelectorAll('#composer [data-mode]')) {
      b.classList.toggle('active', b.dataset.mode === m);
      b.setAttribute('aria-pressed', b.dataset.mode === m ? 'true' : 'false');
    }
    draft.placeholder = t(m === 'note' ? 'composer.note_placeholder' : 'composer.reply_placeholder');
    updateComposer();
    if (focus) draft.focus();
  }

  function updateComposer() {
    picker.disabled = mode === 'note';
    $('#channel-row').classList.toggle('dim', mode === 'note');
    const blocked = mode === 'reply' && picker.dataset.none === '1';
    sendBtn.disabled = sending || blocked;
    sendBtn.textContent = t(mode === 'note' ? 'composer.add_note' : 'composer.send');
    composerError.textContent = blocked ? t('composer.unreachable') : composerError.textContent;
  }

  async function send() {
    if (sending || !conv) return;
    const text = draft.value;
    const withFiles = mode === 'reply' && files.length > 0;
    if (!text.trim() && !withFiles) return;
    const big = files.find((f) => f.size > MAX_UPLOAD);
    if (withFiles && big) {
      composerError.textContent = t('error.file_too_big', { name: big.name, max_mb: 10 });
      return;
    }
    // One key per draft: a double click or a retry after a lost answer never sends twice.
    currentKey = currentKey || uuid();
    const id = conv.id;
    sending = true;
    sendBtn.disabled = true;
    composerError.textContent = '';
    try {
      if (mode === 'note') {
        const note = await post(`/conversations/${id}/notes`, { text }, currentKey);
        // @names that reached nobody: said, not dropped in silence
        const left = (note && note.not_mentioned) || [];
        if (left.length) {
          ctx.toast(t('mention.not_sent', { names: left.map((x) => `@${x.name}: ${t('mention.' + x.why)}`).join('; ') }));
        }
      } else {
        const body = { text };
        if (picker.value && !picker.hidden) body.channel_id = picker.value;
        if (withFiles) {
          const form = new FormData();
          for (const f of files) form.append('file', f, f.name);
          if (text.trim()) form.append('text', text);
          if (body.channel_id) form.append('channel_id', body.channel_id);
          await upload(`/conversations/${id}/messages/upload`, form, currentKey);
        } else {
          await post(`/conversations/${id}/messages`, body, currentKey);
        }
      }
      drafts.delete(id);
      if (conv && conv.id === id) {
        if (withFiles) setFiles([]);
        draft.value = '';
        currentKey = null;
        await loadTimeline(false, true);
      }
    } catch (e) {
      composerError.textContent = ctx.explain(e);
    } finally {
      sending = false;
      updateComposer();
    }
  }

  // One suggestion list under the draft: in a note, "@" offers the colleagues who may see this
  // conversation (one who may not is shown greyed, with why, rather than offered and then
  // dropped by the server); in a reply, "/" offers the canned replies whose shortcut, title or
  // text holds what follows. Arrow keys move, Enter or Tab picks, Esc closes.
  const NO_PICK = { kind: '', items: [], blocked: [], index: 0, typed: 0 };
  let pick = NO_PICK;
  const mentionable = new Map(); // conversation id -> Promise of [{name, display_name}] | null

  function mentionableFor(id) {
    if (!mentionable.has(id)) {
      mentionable.set(id, has('GET', '/conversations/{}/mentionable')
        ? get(`/conversations/${id}/mentionable`).then((p) => p.items).catch(() => null)
        : Promise.resolve(null));
    }
    return mentionable.get(id);
  }

  const typedNow = () => draft.value.slice(0, draft.selectionStart);
  const AT = /(^|\s)@([\w.-]*)$/;
  const SLASH = /(^|\s)\/([\w-]*)$/;
  // the "@word" or "/word" before the cursor now, its sigil included (a key may beat the
  // list's update: what is replaced is what is there when the agent picks)
  const tokenLength = (re) => { const m = re.exec(typedNow()); return m ? m[2].length + 1 : 0; };
  const shortcut = (c) => '/' + (c.shortcut || '').replace(/^\/+/, ''); // stored as "/chao"

  function suggest() {
    if (!conv) { hidePick(); return; }
    if (mode === 'note') mentions(); else slashCanned();
  }

  async function mentions() {
    const before = typedNow();
    const m = AT.exec(before);
    if (!m) { hidePick(); return; }
    const prefix = m[2].toLowerCase();
    const fits = (u) => u.name.startsWith(prefix) || (u.display_name || '').toLowerCase().startsWith(prefix);
    const [may, everyone] = await Promise.all([mentionableFor(conv.id), ctx.users()]);
    if (typedNow() !== before || mode !== 'note') return; // typing went on meanwhile
    const others = everyone.filter((u) => !u.disabled && u.name !== ctx.me.name);
    const ok = may || others; // a server without /mentionable: offer everyone, as before
    const okNames = new Set(ok.map((u) => u.name));
    pick = { kind: 'mention', items: ok.filter(fits).slice(0, 8), index: 0, typed: m[2].length,
      blocked: may ? others.filter((u) => !okNames.has(u.name) && fits(u)).slice(0, 3) : [],
      label: (u) => [el('strong', { text: '@' + u.name }), ' ', el('span', { text: u.display_name || '' })],
      choose: (u) => insertMention(u.name, Math.max(0, tokenLength(AT) - 1)) };
    renderPick();
  }

  async function slashCanned() {
    const before = typedNow();
    const m = SLASH.exec(before);
    if (!m || !has('GET', '/canned')) { hidePick(); return; }
    const word = m[2].toLowerCase();
    let items = [];
    try {
      items = (await get('/canned' + query({ q: word, limit: 50 }))).items;
    } catch { items = []; }
    if (typedNow() !== before || mode !== 'reply') return;
    const starts = (c) => shortcut(c).slice(1).startsWith(word);
    items.sort((a, b) => Number(!starts(a)) - Number(!starts(b))); // shortcuts first
    pick = { kind: 'canned', items: items.slice(0, 8), blocked: [], index: 0,
      label: (c) => [el('strong', { text: shortcut(c) }), ' ', el('span', { text: c.title || c.text || '' })],
      choose: (c) => useCanned(c, tokenLength(SLASH)) };
    renderPick();
  }

  function renderPick() {
    clear(mentionList);
    mentionList.dataset.kind = pick.kind;
    pick.items.forEach((x, i) => mentionList.append(el('li', {
      role: 'option', class: i === pick.index ? 'active' : null,
      'aria-selected': i === pick.index ? 'true' : 'false',
      onmousedown: (e) => { e.preventDefault(); pick.choose(x); },
    }, pick.label(x))));
    for (const u of pick.blocked) {
      mentionList.append(el('li', { class: 'blocked', 'aria-disabled': 'true' },
        el('strong', { text: '@' + u.name }), ' ', el('span', { text: t('mention.cannot_see') })));
    }
    mentionList.hidden = pick.items.length + pick.blocked.length === 0;
  }

  function hidePick() {
    mentionList.hidden = true;
    pick = NO_PICK;
  }

  // the suggestion list's keys; true when the key was for it
  function pickKey(e) {
    if (mentionList.hidden || !pick.items.length || e.ctrlKey || e.metaKey || e.altKey) return false;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      const n = pick.items.length;
      pick.index = (pick.index + (e.key === 'ArrowDown' ? 1 : n - 1)) % n;
      renderPick();
    } else if (e.key === 'Enter' || e.key === 'Tab') {
      pick.choose(pick.items[pick.index]);
    } else {
      return false;
    }
    e.preventDefault();
    return true;
  }

  function insertMention(name, typed) {
    const pos = draft.selectionStart;
    draft.value = draft.value.slice(0, pos - typed) + name + ' ' + draft.value.slice(pos);
    const at = pos - typed + name.length + 1;
    draft.setSelectionRange(at, at);
    hidePick();
    draft.focus();
  }

  // Canned replies: search, then the server renders the variables for this conversation.
  async function loadCanned() {
    const list = clear($('#canned-list'));
    let items = [];
    try {
      items = (await get('/canned' + query({ q: $('#canned-q').value.trim() }))).items;
    } catch (e) {
      ctx.error(e);
      return;
    }
    if (!items.length) list.append(el('li', { class: 'empty', text: t('canned.none') }));
    for (const c of items) {
      list.append(el('li', { tabindex: 0, onclick: () => useCanned(c),
        onkeydown: (e) => { if (e.key === 'Enter') { e.preventDefault(); useCanned(c); } } },
      el('strong', { text: shortcut(c) }), ' ', el('span', { text: c.text || '' })));
    }
  }

  // The canned reply's text, its variables filled in for this conversation, at the cursor
  // (in place of the "/word" typed to find it: ``replace`` characters before the cursor).
  async function useCanned(c, replace = 0) {
    hidePick();
    let text = c.text || '';
    if (has('POST', '/conversations/{}/canned/{}/render')) {
      try {
        text = (await post(`/conversations/${conv.id}/canned/${encodeURIComponent(c.id)}/render`)).text;
      } catch (e) { ctx.error(e); }
    }
    const pos = draft.selectionStart ?? draft.value.length;
    const start = Math.max(0, pos - replace);
    draft.value = draft.value.slice(0, start) + text + draft.value.slice(pos);
    draft.setSelectionRange(start + text.length, start + text.length);
    cannedPanel.hidden = true;
    draft.focus();
  }

  // -- actions -------------------------------------------------------------------------------
  async function act(name) {
    if (!conv) return;
    const id = conv.id;
    const path = `/conversations/${id}/${name}`;
    if (!has('POST', path.replace(/\/conversations\/[^/]+/, '/conversations/{}'))) return;
    let body = {};
    if (name === 'assign') {
      const people = await ctx.users();
      const v = await ask(t('action.assign'), [
        { name: 'assignee', label: t('assign.agent'), type: 'select', value: conv.assignee || '',
          options: [{ value: '', label: t('assign.nobody') }].concat(people.filter((u) => !u.disabled)
            .map((u) => ({ value: u.name, label: `${u.display_name || u.name} (@${u.name})` }))) },
        { name: 'team', label: t('assign.team'), type: 'select', value: '',
          options: [{ value: '', label: t('assign.same_team') }].concat(ctx.teams.map((x) => ({ value: x.id, label: x.name }))) },
        { name: 'why', label: t('why'), type: 'text' },
      ], t('action.assign'));
      if (!v) return;
      body = { assignee: v.assignee || null, team: v.team || null, why: v.why };
    } else if (name === 'escalate') {
      const ups = (teamOf(conv.queue) || { escalates_to: [] }).escalates_to;
      const fields = [{ name: 'reason', label: t('escalate.why'), type: 'textarea', required: true }];
      if (ups.length > 1) {
        fields.push({ name: 'team', label: t('escalate.to'), type: 'select', value: '',
          options: [{ value: '', label: t('escalate.first_fit') }].concat(ups.map((id) => {
            const x = (ctx.teams || []).find((y) => y.id === id);
            return { value: id, label: x ? `${x.name} (${t('tier.badge', { n: x.tier })})` : id };
          })) });
      }
      const v = await ask(t('action.escalate'), fields, t('action.escalate'));
      if (!v) return;
      body = { reason: v.reason, team: v.team || null };
    } else if (name === 'deescalate') {
      const v = await ask(t('action.deescalate'), [{ name: 'reason', label: t('why'), type: 'textarea' }],
        t('action.deescalate'));
      if (!v) return;
      body = { reason: v.reason };
    } else if (name === 'raise-priority') {
      const v = await ask(t('action.raise_priority'), [{ name: 'why', label: t('why'), type: 'text' }],
        t('action.raise_priority'));
      if (!v) return;
      body = { why: v.why };
    } else if (name === 'snooze') {
      const inAnHour = new Date(Date.now() + 3600e3 - new Date().getTimezoneOffset() * 60e3);
      const v = await ask(t('action.snooze'), [{ name: 'until', label: t('snooze.until'), type: 'datetime',
        value: inAnHour.toISOString().slice(0, 16), required: true }], t('action.snooze'));
      if (!v) return;
      const until = new Date(v.until).getTime();
      if (!until || until <= Date.now()) { ctx.error(new Error(t('snooze.future'))); return; }
      body = { until_ts: until };
    }
    try {
      conv = await post(path, body);
      renderHeader();
      ctx.changed();
      ctx.customer.reload(); // the panel lists this conversation with its status
      if (name === 'claim') ctx.toast(t('claim.done'));
      if (name === 'escalate' || name === 'deescalate') {
        ctx.toast(t(name + '.done', { queue: ctx.queueLabel(conv.queue) }));
        await refreshHeader(); // it may have left your teams' queues: then it closes
      }
      loadTimeline(false, true); // the action's line
    } catch (e) {
      ctx.error(e);
      refreshHeader();
    }
  }

  async function markRead() {
    if (!conv || document.visibilityState !== 'visible' || !has('POST', '/conversations/{}/read')) return;
    const id = conv.id;
    try {
      await post(`/conversations/${id}/read`);
      ctx.read(id);
    } catch { /* unread counts are a hint; never bother the agent */ }
  }

  // -- live events ---------------------------------------------------------------------------
  function onEvent(type, data) {
    if (conv && scope === 'all' && String(data.conversation_id) !== String(conv.id)
        && (type.startsWith('message.') || type === 'note.created')
        && (String(data.customer_id) === String(conv.customer_id)
          || msgs.some((m) => String(m.conversation_id) === String(data.conversation_id)))) {
      loadTimeline(false, false); // another of the customer's conversations
      return;
    }
    if (!conv || String(data.conversation_id) !== String(conv.id)) return;
    if (type.startsWith('message.') || type === 'note.created') {
      loadTimeline(false, false);
      if (type === 'message.created' && !data.author_id) markRead();
    } else if (type.startsWith('conversation.')) {
      // claims, transfers, escalations, resolves... each wrote a line in the timeline
      refreshHeader().then(() => { if (LINES.has(type)) loadTimeline(false, false); });
      ctx.customer.reload();
    }
  }

  // -- wiring --------------------------------------------------------------------------------
  $('#composer').addEventListener('submit', (e) => { e.preventDefault(); send(); });
  attachInput.addEventListener('change', () => {
    setFiles(files.concat(Array.from(attachInput.files || [])));
    attachInput.value = ''; // the same file can be picked again after removing it
  });
  if (!has('POST', '/conversations/{}/messages/upload')) $('#attach-btn').hidden = true;
  draft.addEventListener('keydown', (e) => {
    if (pickKey(e)) return;
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); send(); }
    if (e.key === 'Escape') {
      if (!mentionList.hidden) { hidePick(); e.stopPropagation(); return; } // first Esc: the list
      draft.blur();
    }
  });
  draft.addEventListener('input', () => { composerError.textContent = ''; suggest(); updateComposer(); });
  for (const b of document.querySelectorAll('#composer [data-mode]')) {
    b.addEventListener('click', () => setMode(b.dataset.mode));
  }
  $('#mode-note').hidden = !has('POST', '/conversations/{}/notes');
  const cannedBtn = $('#canned-btn');
  cannedBtn.hidden = !has('GET', '/canned');
  cannedBtn.addEventListener('click', () => {
    cannedPanel.hidden = !cannedPanel.hidden;
    if (!cannedPanel.hidden) { $('#canned-q').focus(); loadCanned(); }
  });
  let cannedTimer = null;
  $('#canned-q').addEventListener('input', () => { clearTimeout(cannedTimer); cannedTimer = setTimeout(loadCanned, 250); });
  olderBtn.addEventListener('click', () => loadTimeline(true, false));
  $('#scope-conv').addEventListener('click', () => setScope('conversation'));
  $('#scope-all').addEventListener('click', () => setScope('all'));
  showScope();
  for (const b of document.querySelectorAll('#conv-actions [data-action]')) {
    b.addEventListener('click', () => act(b.dataset.action));
  }
  picker.addEventListener('change', updateComposer);
  document.addEventListener('visibilitychange', markRead);

  return { open, onEvent, act, setMode, current: () => conv, reload: () => { refreshHeader(); loadTimeline(false, false); } };
}
