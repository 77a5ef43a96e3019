/* The shared (read-only) checklist page: its one button prints it. No inline script (CSP). */
(function () {
  'use strict';
  var b = document.getElementById('print');
  if (b) b.addEventListener('click', function () { window.print(); });
})();
