// The printable statement's 打印 button: shown only when this script runs (without it the
// page says to use the browser's print command).
(function () {
  "use strict";
  var button = document.getElementById("print-button");
  if (!button || !window.print) { return; }
  button.hidden = false;
  button.addEventListener("click", function () { window.print(); });
})();
