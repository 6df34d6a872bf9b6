// The console's icons: inline SVG drawn here (24×24, stroked in the text's colour), so a
// delivery tick looks the same on every machine — emoji need an emoji font, and without one
// they show as boxes. Nothing is fetched from anywhere.
const SVG = 'http://www.w3.org/2000/svg';

const PATHS = {
  pin: ['M12 21s-7-6.2-7-11.5a7 7 0 0 1 14 0C19 14.8 12 21 12 21', 'M12 7a2.5 2.5 0 1 0 0 5a2.5 2.5 0 1 0 0-5'], // location
  clock: ['M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18', 'M12 7v5l3 2'],                   // queued
  question: ['M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18', 'M9.5 9.5a2.5 2.5 0 1 1 3.5 2.3c-.7.3-1 .9-1 1.7',
    'M12 17h.01'],                                                                  // uncertain
  check: ['M5 12.5l4.5 4.5L19 7.5'],                                                 // sent
  checks: ['M2 12.5l4.5 4.5L16 7.5', 'M11.5 16l1 1L22 7.5'],                         // delivered, read
  hourglass: ['M7 3h10', 'M7 21h10', 'M8 3c0 5 8 5 8 9s-8 4-8 9', 'M16 3c0 5-8 5-8 9s8 4 8 9'], // delayed
  alert: ['M12 3L2 20h20L12 3', 'M12 10v4', 'M12 17h.01'],                           // failed
  clip: ['M20 11.5l-8 8a5 5 0 0 1-7-7l8.5-8.5a3.3 3.3 0 0 1 4.7 4.7L9.7 17.2a1.7 1.7 0 0 1-2.4-2.4L15 7'],
  bell: ['M6 16V11a6 6 0 0 1 12 0v5l2 2H4l2-2', 'M10 20a2 2 0 0 0 4 0'],           // notifications
  moon: ['M20 14.5A8 8 0 0 1 9.5 4a8 8 0 1 0 10.5 10.5'],                             // dark theme
  sun: ['M12 8a4 4 0 1 0 0 8a4 4 0 1 0 0-8', 'M12 2v2', 'M12 20v2', 'M4.9 4.9l1.4 1.4',
    'M17.7 17.7l1.4 1.4', 'M2 12h2', 'M20 12h2', 'M4.9 19.1l1.4-1.4', 'M17.7 6.3l1.4-1.4'], // light theme
  trend: ['M3 17l6-6 4 4 8-8', 'M15 7h6v6'],                                           // spike alert
};

// An <svg> icon; ``label`` makes it speak to screen readers (else it is decoration).
export function icon(name, label) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', 'icon icon-' + name);
  svg.setAttribute('data-icon', name);
  svg.setAttribute('fill', 'none');
  svg.setAttribute('stroke', 'currentColor');
  svg.setAttribute('stroke-width', '2');
  svg.setAttribute('stroke-linecap', 'round');
  svg.setAttribute('stroke-linejoin', 'round');
  if (label) {
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', label);
  } else {
    svg.setAttribute('aria-hidden', 'true');
  }
  for (const d of PATHS[name] || []) {
    const path = document.createElementNS(SVG, 'path');
    path.setAttribute('d', d);
    svg.append(path);
  }
  return svg;
}

// the icon of each delivery status
export const TICK_ICONS = { queued: 'clock', uncertain: 'question', sent: 'check', delayed: 'hourglass',
  delivered: 'checks', read: 'checks', failed: 'alert' };
