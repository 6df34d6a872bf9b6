// The console's theme, read before the page paints (a classic script in <head>, not a
// module): the agent's own choice (light or dark, remembered in localStorage) else the
// system's (prefers-color-scheme, in console.css). console.js wires the toggle button.
(function () {
  var KEY = 'td.theme';
  var root = document.documentElement;
  var saved = null;
  try { saved = localStorage.getItem(KEY); } catch (e) { /* storage off: the system decides */ }
  if (saved === 'dark' || saved === 'light') root.dataset.theme = saved;

  // the theme in force now: the choice, else the system's
  function current() {
    if (root.dataset.theme === 'dark' || root.dataset.theme === 'light') return root.dataset.theme;
    return window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
  }

  // flip to the other one and remember it (a choice equal to the system's is still kept: the
  // agent chose it)
  function toggle() {
    var next = current() === 'dark' ? 'light' : 'dark';
    root.dataset.theme = next;
    try { localStorage.setItem(KEY, next); } catch (e) { /* this page only */ }
    return next;
  }

  window.tongdaiTheme = { current: current, toggle: toggle };
}());
